"""PagerDuty Events v2 outbound on the local control plane, against the contract server.

The controller runs as the chart's service account with CHANGEGATE_PAGERDUTY_EVENTS_URL
pointing at tests/support/contracts/pagerduty.py, which checks every request against
PagerDuty's published Events v2 description and keeps one incident per dedup_key.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client

from tests.support.contracts.faults import FaultKind
from tests.support.contracts.pagerduty import PagerDutyServer
from tests.support.localcluster import LocalCluster
from tests.support.operator import Installation, start_controller
from tests.support.polling import wait_for

ROUTING_KEY = "R0123456789abcdef0123456789abcde"  # 32 characters, as PagerDuty's are
CRD = ("changegate.io", "v1alpha1")


def restart_controller(installation: Installation, cluster: LocalCluster, **env: str) -> None:
    """The controller restarted as the installation runs it, with `env` added."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        installation.controller.stop()
        installation.controller = start_controller(
            cluster, installation.workdir, intake=(installation.cert, installation.intake_port)
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def pagerduty(cluster: LocalCluster, installation: Installation) -> Iterator[PagerDutyServer]:
    with PagerDutyServer() as server:
        restart_controller(
            installation, cluster,
            CHANGEGATE_PAGERDUTY_EVENTS_URL=server.url, CHANGEGATE_SYNC_CIRCUIT_SECONDS="2",
        )  # fmt: skip
        yield server
    restart_controller(installation, cluster)


def setup_service(cluster: LocalCluster, namespace: str, routing_key: str = ROUTING_KEY) -> str:
    service = f"svc-{namespace}"
    cluster.kubectl(
        "-n", namespace, "create", "secret", "generic", "pagerduty",
        f"--from-literal=routing-key={routing_key}",
    )  # fmt: skip
    soc = {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ServiceOnCall",
        "metadata": {"name": service, "namespace": namespace},
        "spec": {
            "service": {"name": service, "displayName": "Paged", "tier": "Tier1"},
            "team": {"name": "team-payments", "members": [{"user": "oncall-1"}]},
            "environments": [{"name": "production", "namespace": namespace, "production": True}],
            "dashboards": [{"name": "Payments", "url": "https://grafana.example.com/d/pay"}],
            "integrations": {
                "pagerDuty": {"secretRef": {"name": "pagerduty", "key": "routing-key"}}
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(soc), user="platform-admin-1")
    cluster.kubectl(
        "-n", namespace, "create", "rolebinding", "edit-oncall-1", "--clusterrole=edit",
        "--user=oncall-1",
    )  # fmt: skip
    return service


def create_incident(api: client.ApiClient, namespace: str, service: str, name: str) -> str:
    body = {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"service": service, "summary": f"5xx above 5% ({name})", "severity": "High"},
    }
    created = client.CustomObjectsApi(api).create_namespaced_custom_object(
        *CRD, namespace, "incidents", body
    )
    return str(created["metadata"]["uid"])


def incident(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(api).get_namespaced_custom_object(
        *CRD, namespace, "incidents", name
    )
    return cast(dict[str, Any], found)


def pd_sync(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    entries = incident(api, namespace, name).get("status", {}).get("sync", [])
    return next((s for s in entries if s["system"] == "PagerDuty"), {})


def act(cluster: LocalCluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    cluster.kubectl(
        "-n", namespace, "patch", f"incident/{name}", "--type=merge",
        "-p", json.dumps({"spec": spec}), user="oncall-1",
    )  # fmt: skip


def test_an_incident_is_triggered_acknowledged_and_resolved_under_one_dedup_key(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, pagerduty: PagerDutyServer
) -> None:
    service = setup_service(cluster, namespace)
    uid = create_incident(api, namespace, service, "inc-1")
    wait_for(
        lambda: pagerduty.incident(ROUTING_KEY, uid), timeout=20, message="PagerDuty triggered"
    )
    trigger = pagerduty.incident(ROUTING_KEY, uid).events[0]  # type: ignore[union-attr]
    assert trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["component"] == service
    assert trigger["payload"]["group"] == "team-payments"
    assert trigger["payload"]["custom_details"]["namespace"] == namespace
    assert {"href": "https://grafana.example.com/d/pay", "text": "Payments"} in trigger["links"]
    act(cluster, namespace, "inc-1", {"acknowledgements": [{"comment": "on it"}]})
    wait_for(
        lambda: pagerduty.incident(ROUTING_KEY, uid).status == "acknowledged",  # type: ignore[union-attr]
        timeout=20, message="PagerDuty acknowledged",
    )  # fmt: skip
    act(cluster, namespace, "inc-1", {"resolution": {"code": "Fixed", "note": "rolled back"}})
    wait_for(
        lambda: pd_sync(api, namespace, "inc-1").get("delivered")
        == ["trigger", "acknowledge", "resolve"],
        timeout=20, message="status.sync records the three steps",
    )  # fmt: skip
    found = pagerduty.incidents(ROUTING_KEY, uid)
    assert len(found) == 1
    assert found[0].actions == ["trigger", "acknowledge", "resolve"]
    assert pd_sync(api, namespace, "inc-1")["key"] == uid
    assert pagerduty.rejected == []


def test_429_and_500_are_retried_until_delivered(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, pagerduty: PagerDutyServer
) -> None:
    service = setup_service(cluster, namespace)
    pagerduty.faults.rate_limit(1, retry_after=1, path="/v2/enqueue")
    pagerduty.faults.server_error(1, status=500, path="/v2/enqueue")
    uid = create_incident(api, namespace, service, "inc-retry")
    wait_for(
        lambda: pd_sync(api, namespace, "inc-retry").get("delivered") == ["trigger"],
        timeout=40, message="the trigger delivered after a 429 and a 500",
    )  # fmt: skip
    assert len(pagerduty.incidents(ROUTING_KEY, uid)) == 1
    faults = [
        r.fault for r in pagerduty.requests.all("/v2/enqueue") if r.json()["dedup_key"] == uid
    ]
    assert faults == [FaultKind.RATE_LIMIT, FaultKind.SERVER_ERROR, None]


def test_a_400_is_recorded_in_status_and_not_retried(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, pagerduty: PagerDutyServer
) -> None:
    service = setup_service(cluster, namespace, routing_key="too-short")
    create_incident(api, namespace, service, "inc-bad")
    wait_for(
        lambda: pd_sync(api, namespace, "inc-bad").get("failed") == ["trigger"],
        timeout=20, message="the refused trigger recorded",
    )  # fmt: skip
    state = pd_sync(api, namespace, "inc-bad")
    assert "HTTP 400" in state["lastError"]
    assert "too-short" not in state["lastError"]  # never the routing key
    refused = [r for r in pagerduty.rejected if r[1] and r[1].get("routing_key") == "too-short"]
    act(cluster, namespace, "inc-bad", {"acknowledgements": [{"comment": "on it"}]})
    wait_for(
        lambda: "acknowledge" in pd_sync(api, namespace, "inc-bad").get("failed", []),
        timeout=20, message="the acknowledge refused too",
    )  # fmt: skip
    again = [r for r in pagerduty.rejected if r[1] and r[1].get("routing_key") == "too-short"]
    assert len(refused) == 1
    assert len(again) == 2  # the refused trigger was never sent again


def test_a_sigkilled_controller_loses_no_event_and_applies_none_twice(
    cluster: LocalCluster,
    installation: Installation,
    api: client.ApiClient,
    namespace: str,
    pagerduty: PagerDutyServer,
) -> None:
    service = setup_service(cluster, namespace)
    uids = [create_incident(api, namespace, service, f"burst-{i}") for i in range(20)]
    wait_for(
        lambda: any(pagerduty.incidents(ROUTING_KEY, u) for u in uids),
        timeout=20, message="the burst reaching PagerDuty",
    )  # fmt: skip
    installation.controller.kill()
    restart_controller(
        installation, cluster,
        CHANGEGATE_PAGERDUTY_EVENTS_URL=pagerduty.url, CHANGEGATE_SYNC_CIRCUIT_SECONDS="2",
    )  # fmt: skip
    wait_for(
        lambda: all(pagerduty.incidents(ROUTING_KEY, u) for u in uids),
        timeout=60, message="every incident triggered after the restart",
    )  # fmt: skip
    for i in range(20):
        wait_for(
            lambda i=i: pd_sync(api, namespace, f"burst-{i}").get("delivered") == ["trigger"],
            timeout=30, message=f"burst-{i} recorded",
        )  # fmt: skip
    for uid in uids:
        assert len(pagerduty.incidents(ROUTING_KEY, uid)) == 1  # one PagerDuty incident each
