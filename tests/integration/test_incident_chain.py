"""The whole alert chain on the local control plane: a failing service pages its on-call person.

A metrics endpoint the test flips to failing, real Prometheus evaluating a rule,
real Alertmanager (alone, or a clustered HA pair) posting over HTTPS with the
intake's bearer token and trusting the intake's CA, changegate's intake opening
an Incident, the controller paging the ServiceOnCall's signed webhook (a local
receiver), the on-call persona acknowledging through the CLI's main, and the
endpoint recovering until Alertmanager's resolved post closes the Incident.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from changegate.cli import main
from tests.integration.test_intake import Intake, alert, notification
from tests.support.localcluster import LocalCluster
from tests.support.operator import INTAKE_TOKEN, Installation
from tests.support.polling import wait_for
from tests.support.prometheus import (
    MetricsEndpoint,
    alertmanager,
    alertmanager_config,
    alertmanager_pair,
    prometheus,
    prometheus_config,
)
from tests.support.receivers import Receiver, receiving, valid_signature

pytestmark = pytest.mark.integration

SIGNING_KEY = "chain-signing-key-0123456789"
ON_CALL = "oncall-1"
# Scrape, evaluation, group_wait and group_interval are all 1s: the chain takes seconds.
CHAIN_TIMEOUT = 60.0
# The escalation's second step: long enough for the CLI's ack to come first on a busy
# machine, short enough that the test then waits it out.
SECOND_STEP_SECONDS = 15
# After the first page, how long an HA pair's second member may still post a duplicate:
# its peer timeout (2s) times its position, plus a group_interval, with room to spare.
HA_SETTLE_SECONDS = 8.0


@dataclass(frozen=True)
class Service:
    """The test's service: its name, namespace and the receiver its on-call is paged at."""

    name: str
    namespace: str
    receiver: Receiver


def service_on_call(name: str, namespace: str) -> dict[str, Any]:
    """oncall-1 always on call; a second escalation step names lead-1 after a short delay."""
    steps = [
        {"delaySeconds": 0, "targets": [{"type": "OnCall"}]},
        {"delaySeconds": SECOND_STEP_SECONDS, "targets": [{"type": "User", "name": "lead-1"}]},
    ]
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ServiceOnCall",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "service": {"name": name, "displayName": "Alert chain", "tier": "Tier1"},
            "team": {"name": "team-payments", "members": [{"user": ON_CALL}]},
            "environments": [{"name": "production", "namespace": namespace, "production": True}],
            "onCall": {
                "rotations": [
                    {
                        "name": "primary",
                        "type": "Weekly",
                        "participants": [ON_CALL],
                        "startTime": "2025-01-06T09:00:00Z",
                    }
                ],
                "escalation": {"steps": steps},
            },
            "integrations": {
                "webhook": {
                    "secretRef": {"name": "pager", "key": "url"},
                    "signingSecretRef": {"name": "pager", "key": "signingKey"},
                }
            },
        },
    }


@pytest.fixture
def service(cluster: LocalCluster, installation: Installation, namespace: str) -> Iterator[Service]:
    """A paged service, its team editing in the namespace, known to the intake before the test."""
    name = f"chain-{uuid.uuid4().hex[:8]}"
    cluster.kubectl(
        "-n", namespace, "create", "rolebinding", "edit-team",
        "--clusterrole=edit", "--group=team-payments",
    )  # fmt: skip
    with receiving("webhook", SIGNING_KEY) as receiver:
        cluster.kubectl(
            "-n", namespace, "create", "secret", "generic", "pager",
            f"--from-literal=url={receiver.url}/page", f"--from-literal=signingKey={SIGNING_KEY}",
        )  # fmt: skip
        declared = json.dumps(service_on_call(name, namespace))
        cluster.kubectl("apply", "-f", "-", input=declared, user="platform-admin-1")
        wait_for_intake_to_route(Intake(installation), name)
        yield Service(name, namespace, receiver)


def wait_for_intake_to_route(intake: Intake, name: str) -> None:
    # A resolution with no open incident writes nothing, but its answer names the service.
    probe = notification(f"probe-{name}", alert("00ff", name, resolved=True))

    def routed() -> bool:
        status, answer = intake.post(probe)
        return status == 200 and answer["incidents"][0]["service"] == name

    wait_for(routed, timeout=30, message="the controller's index to know the service")


def rules(service: Service) -> dict[str, Any]:
    """One alert on the endpoint's gauge, labelled with the service and its namespace."""
    rule = {
        "alert": "ServiceDown",
        "expr": "changegate_test_up == 0",
        "labels": {"severity": "critical", "service": service.name, "namespace": service.namespace},
        "annotations": {
            "summary": f"{service.name} is down",
            "runbook_url": "https://run.example/",
        },
    }
    return {"groups": [{"name": "service", "rules": [rule]}]}


def intake_config(installation: Installation) -> dict[str, Any]:
    """Alertmanager posting to the intake as a platform team would configure it."""
    config = alertmanager_config(f"https://127.0.0.1:{installation.intake_port}/alerts")
    webhook = config["receivers"][0]["webhook_configs"][0]
    webhook["http_config"] = {
        "authorization": {"type": "Bearer", "credentials": INTAKE_TOKEN},
        "tls_config": {"ca_file": str(installation.cert.ca_file)},
    }
    return config


def incidents_of(api: client.ApiClient, service: Service) -> list[dict[str, Any]]:
    listed = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "changegate.io", "v1alpha1", service.namespace, "incidents",
        label_selector=f"changegate.io/service={service.name}",
    )  # fmt: skip
    items: list[dict[str, Any]] = listed["items"]
    return items


def the_incident(api: client.ApiClient, service: Service) -> dict[str, Any] | None:
    found = incidents_of(api, service)
    return found[0] if len(found) == 1 else None


def status_of(api: client.ApiClient, service: Service) -> dict[str, Any]:
    incident = the_incident(api, service)
    status: dict[str, Any] = (incident or {}).get("status", {})
    return status


def pages(service: Service) -> list[dict[str, Any]]:
    return [post.json() for post in service.receiver.posts if post.path == "/page"]


def ack(cluster: LocalCluster, service: Service, name: str) -> int:
    """`changegate incident ack` as the on-call persona, through the CLI's main."""
    kubeconfig = str(cluster.persona_kubeconfig(ON_CALL))
    argv = ["--kubeconfig", kubeconfig, "incident", "ack", name, "-n", service.namespace]
    return main([*argv, "--comment", "looking"])


def wait_until(moment: dt.datetime, message: str) -> None:
    """Let the clock pass `moment` (what must not happen gets its chance), polling."""
    seconds = (moment - dt.datetime.now(dt.UTC)).total_seconds()
    wait_for(
        lambda: dt.datetime.now(dt.UTC) >= moment,
        timeout=max(seconds, 0) + 5,
        interval=0.25,
        message=message,
    )


def parse_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_an_alert_pages_the_on_call_who_acks_and_its_resolution_closes_the_incident(
    cluster: LocalCluster,
    installation: Installation,
    api: client.ApiClient,
    service: Service,
    tmp_path: Path,
) -> None:
    with (
        MetricsEndpoint() as endpoint,
        alertmanager(tmp_path / "alertmanager", intake_config(installation)) as am,
        prometheus(
            tmp_path / "prometheus",
            prometheus_config([endpoint.target], [am], "rules.yml"),
            rules(service),
        ),
    ):
        wait_for(lambda: endpoint.scrapes > 0, timeout=CHAIN_TIMEOUT, message="a scrape")
        failed_at = time.monotonic()
        endpoint.healthy = False

        incident = wait_for(
            lambda: the_incident(api, service), timeout=CHAIN_TIMEOUT, message="an Incident"
        )
        name = incident["metadata"]["name"]
        assert incident["spec"]["origin"] == "Alert"
        assert incident["spec"]["severity"] == "Critical"
        assert incident["spec"]["alert"]["labels"]["alertname"] == "ServiceDown"

        [page] = wait_for(lambda: pages(service), timeout=CHAIN_TIMEOUT, message="a page")
        paged_after = time.monotonic() - failed_at
        assert page["user"] == ON_CALL
        assert page["incident"]["name"] == name
        assert page["action"] == "trigger"
        assert all(valid_signature(post, SIGNING_KEY) for post in service.receiver.posts)
        print(f"\nfailing endpoint to page: {paged_after:.1f}s")

        assert ack(cluster, service, name) == 0
        acked = wait_for(
            lambda: status_of(api, service).get("phase") == "Acknowledged",
            timeout=CHAIN_TIMEOUT,
            message="Acknowledged",
        )
        assert acked
        status = status_of(api, service)
        assert status["acknowledgedBy"] == ON_CALL
        assert status["timeToAcknowledgeSeconds"] >= 0

        # The second step falls due after the ack: it must page nobody.
        second_step = parse_time(status["triggeredTime"]) + dt.timedelta(
            seconds=SECOND_STEP_SECONDS + 2
        )
        wait_until(second_step, "the second escalation step's time")
        assert [p["user"] for p in pages(service)] == [ON_CALL]

        endpoint.healthy = True
        wait_for(
            lambda: status_of(api, service).get("phase") == "Resolved",
            timeout=CHAIN_TIMEOUT,
            message="the Incident AutoResolved by Alertmanager's resolved post",
        )
        (closed,) = incidents_of(api, service)
        assert closed["metadata"]["name"] == name
        assert closed["spec"]["resolution"]["code"] == "AutoResolved"
        assert {a["state"] for a in closed["status"]["alerts"]} == {"Resolved"}
        assert closed["status"]["timeToResolveSeconds"] >= 0
        sent = [p for p in closed["status"]["pages"] if p["channel"] == "Webhook"]
        assert [(p["user"], p["result"]) for p in sent] == [(ON_CALL, "Sent")]


def test_an_ha_pair_posting_the_same_group_gives_one_incident_and_one_page(
    installation: Installation, api: client.ApiClient, service: Service, tmp_path: Path
) -> None:
    with (
        MetricsEndpoint() as endpoint,
        alertmanager_pair(tmp_path, intake_config(installation)) as pair,
        prometheus(
            tmp_path / "prometheus",
            prometheus_config([endpoint.target], pair, "rules.yml"),
            rules(service),
        ),
    ):
        wait_for(lambda: endpoint.scrapes > 0, timeout=CHAIN_TIMEOUT, message="a scrape")
        endpoint.healthy = False
        wait_for(lambda: pages(service), timeout=CHAIN_TIMEOUT, message="a page")
        settled = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=HA_SETTLE_SECONDS)
        wait_until(settled, "the pair's second member to have had its turn")

        (incident,) = incidents_of(api, service)
        assert [p["user"] for p in pages(service)] == [ON_CALL]
        sent = [p for p in incident["status"]["pages"] if p["channel"] == "Webhook"]
        assert len(sent) == 1
        assert [a["state"] for a in incident["status"]["alerts"]] == ["Firing"]
