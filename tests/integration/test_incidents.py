"""Incidents on the local control plane: the on-call person paged in seconds, escalation
stopped by an acknowledgement, no page lost or sent twice across a SIGKILL of the controller,
and the controller reading paging Secrets only where the chart's page-secrets role is bound.

The Incident is created by the admin client, as the intake would; the service's
ServiceOnCall names a signed generic webhook pointing at a local receiver.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client

from tests.support.localcluster import LocalCluster
from tests.support.operator import (
    CONTROLLER_SA,
    INTAKE_TOKEN_SECRET,
    NAMESPACE,
    Installation,
    start_controller,
)
from tests.support.polling import wait_for
from tests.support.receivers import Receiver, receiving, valid_signature

SIGNING_KEY = "test-signing-key-0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving("webhook", SIGNING_KEY) as started:
        yield started


def on_call_service(namespace: str, url: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    service = f"svc-{namespace}"
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ServiceOnCall",
        "metadata": {"name": service, "namespace": namespace},
        "spec": {
            "service": {"name": service, "displayName": "Paged", "tier": "Tier1"},
            "team": {"name": "team-payments", "members": [{"user": "oncall-1"}]},
            "environments": [{"name": "production", "namespace": namespace, "production": True}],
            "onCall": {
                "rotations": [
                    {
                        "name": "primary",
                        "type": "Weekly",
                        "participants": ["oncall-1"],
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


def setup_service(
    cluster: LocalCluster, namespace: str, url: str, steps: list[dict[str, Any]]
) -> str:
    cluster.kubectl(
        "-n", namespace, "create", "secret", "generic", "pager",
        f"--from-literal=url={url}/page", f"--from-literal=signingKey={SIGNING_KEY}",
    )  # fmt: skip
    soc = on_call_service(namespace, url, steps)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(soc), user="platform-admin-1")
    return str(soc["spec"]["service"]["name"])


def create_incident(api: client.ApiClient, namespace: str, service: str) -> None:
    body = {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "inc-1", "namespace": namespace},
        "spec": {"service": service, "summary": "5xx above 5%", "severity": "High"},
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "changegate.io", "v1alpha1", namespace, "incidents", body
    )


def incident(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "changegate.io", "v1alpha1", namespace, "incidents", "inc-1"
    )
    return cast(dict[str, Any], found)


def pages_for(receiver: Receiver, namespace: str) -> list[dict[str, Any]]:
    bodies = [p.json() for p in receiver.posts]
    return [b for b in bodies if b["incident"]["namespace"] == namespace]


def acknowledge(cluster: LocalCluster, namespace: str) -> None:
    """oncall-1 acknowledges as themselves: the webhook stamps their name and lets only the
    service's team (and incident managers) act."""
    cluster.kubectl(
        "-n", namespace, "create", "rolebinding", "edit-oncall-1", "--clusterrole=edit",
        "--user=oncall-1",
    )  # fmt: skip
    patch = {"spec": {"acknowledgements": [{"comment": "on it"}]}}
    cluster.kubectl(
        "-n", namespace, "patch", "incident/inc-1", "--type=merge", "-p", json.dumps(patch),
        user="oncall-1",
    )  # fmt: skip


def test_the_on_call_person_is_paged_in_seconds_and_an_ack_stops_escalation(
    cluster: LocalCluster,
    installation: Installation,
    api: client.ApiClient,
    namespace: str,
    receiver: Receiver,
) -> None:
    steps = [
        {"delaySeconds": 0, "targets": [{"type": "OnCall"}]},
        {"delaySeconds": 8, "targets": [{"type": "User", "name": "lead-1"}]},
    ]
    service = setup_service(cluster, namespace, receiver.url, steps)
    wait_for(
        lambda: incident_soc_on_call(api, namespace, service) == "oncall-1",
        timeout=30,
        message="status.onCall names the on-call person",
    )
    create_incident(api, namespace, service)
    wait_for(lambda: pages_for(receiver, namespace), timeout=10, message="the on-call paged")
    page = pages_for(receiver, namespace)[0]
    assert page["user"] == "oncall-1"
    assert all(valid_signature(p, SIGNING_KEY) for p in receiver.posts)
    wait_for(
        lambda: any(
            p.get("channel") == "Webhook" and p.get("result") == "Sent"
            for p in incident(api, namespace).get("status", {}).get("pages", [])
        ),
        timeout=10,
        message="the page recorded in status.pages",
    )
    acknowledge(cluster, namespace)
    wait_for(
        lambda: incident(api, namespace).get("status", {}).get("phase") == "Acknowledged",
        timeout=15,
        message="the incident acknowledged",
    )
    # Past the second step's delay, nobody else was paged.
    deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
    wait_for(lambda: dt.datetime.now(dt.UTC) >= deadline, timeout=15, message="step 2's time")
    assert [p["user"] for p in pages_for(receiver, namespace)] == ["oncall-1"]


def incident_soc_on_call(api: client.ApiClient, namespace: str, service: str) -> str | None:
    soc = cast(
        dict[str, Any],
        client.CustomObjectsApi(api).get_namespaced_custom_object(
            "changegate.io", "v1alpha1", namespace, "serviceoncalls", service
        ),
    )
    return (soc.get("status", {}).get("onCall") or {}).get("user")


def test_a_sigkilled_controller_loses_no_page_and_sends_none_twice(
    cluster: LocalCluster,
    installation: Installation,
    api: client.ApiClient,
    namespace: str,
    receiver: Receiver,
) -> None:
    steps = [
        {"delaySeconds": 0, "targets": [{"type": "OnCall"}]},
        {"delaySeconds": 4, "targets": [{"type": "User", "name": "lead-1"}]},
        {"delaySeconds": 4, "targets": [{"type": "User", "name": "lead-2"}]},
    ]
    service = setup_service(cluster, namespace, receiver.url, steps)
    create_incident(api, namespace, service)
    wait_for(lambda: pages_for(receiver, namespace), timeout=15, message="the first page")
    installation.controller.kill()
    # Restarted as the installation runs it, intake included, for the tests after this one.
    installation.controller = start_controller(
        cluster, installation.workdir, intake=(installation.cert, installation.intake_port)
    )
    wait_for(
        lambda: len({p["user"] for p in pages_for(receiver, namespace)}) == 3,
        timeout=40,
        message="every step paged after the restart",
    )
    keys = sorted({p["idempotencyKey"] for p in pages_for(receiver, namespace)})

    def recorded() -> list[str]:
        pages = incident(api, namespace)["status"]["pages"]
        return sorted(p["dedupKey"] for p in pages if p["channel"] == "Webhook")

    # A page is recorded right after it is sent: every page sent gets recorded, once.
    wait_for(lambda: recorded() == keys, timeout=15, message=f"pages {keys} recorded once")
    assert len(keys) == 3  # a page resent after the kill keeps its key: the receiver drops it


def test_the_controller_reads_secrets_only_where_the_page_secrets_role_is_bound(
    cluster: LocalCluster, installation: Installation, namespace: str
) -> None:
    """Least privilege: the test's namespace binds the chart's page-secrets role (as a platform
    team would), the release namespace's other Secrets and an unbound namespace stay closed."""
    controller = f"system:serviceaccount:{NAMESPACE}:{CONTROLLER_SA}"

    def can(*args: str) -> str:
        found = cluster.kubectl("auth", "can-i", *args, f"--as={controller}", check=False)
        return str(found.stdout).strip()

    cluster.kubectl("create", "namespace", f"{namespace}-unbound")
    try:
        assert can("get", "secrets/pager", "-n", namespace) == "yes"
        assert can("list", "secrets", "-n", namespace) == "no"
        assert can("get", "secrets/pager", "-n", f"{namespace}-unbound") == "no"
        assert can("get", "secrets/changegate-webhook-tls", "-n", NAMESPACE) == "no"
        assert can("get", f"secrets/{INTAKE_TOKEN_SECRET}", "-n", NAMESPACE) == "yes"
    finally:
        cluster.kubectl("delete", "namespace", f"{namespace}-unbound", "--wait=false")
