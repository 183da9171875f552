"""PagerDuty Events v2 outbound on the local control plane, against the contract server.

The controller runs as the chart's service account with CHANGEGATE_PAGERDUTY_EVENTS_URL
pointing at tests/support/contracts/pagerduty.py, which checks every request against
PagerDuty's published Events v2 description and keeps one incident per dedup_key.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
from kubernetes import client

from tests.integration.conftest import service_on_call
from tests.support.contracts.faults import FaultKind
from tests.support.contracts.pagerduty import PagerDutyServer
from tests.support.localcluster import LocalCluster
from tests.support.operator import Installation, start_controller
from tests.support.polling import wait_for
from tests.support.scenario import IMAGE_V2, change_request, decide, deployment, get, set_image

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


def pagerduty_of(service: str) -> dict[str, Any]:
    """spec.integrations of a service paged through PagerDuty with its own Secret."""
    return {"pagerDuty": {"secretRef": {"name": f"pd-{service}", "key": "routing-key"}}}


def setup_service(
    cluster: LocalCluster,
    namespace: str,
    routing_key: str = ROUTING_KEY,
    *,
    service: str | None = None,
    paged: bool = True,
    production: str | None = None,
) -> str:
    """A ServiceOnCall whose team oncall-1 is on, paged through PagerDuty unless not `paged`;
    its production is `namespace` unless another (one namespace, one production service)."""
    service = service or f"svc-{namespace}"
    cluster.kubectl(
        "-n", namespace, "create", "secret", "generic", f"pd-{service}",
        f"--from-literal=routing-key={routing_key}",
    )  # fmt: skip
    soc = {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ServiceOnCall",
        "metadata": {"name": service, "namespace": namespace},
        "spec": {
            "service": {"name": service, "displayName": "Paged", "tier": "Tier1"},
            "team": {"name": "team-payments", "members": [{"user": "oncall-1"}]},
            "environments": [
                {"name": "production", "namespace": production or namespace, "production": True}
            ],
            "dashboards": [{"name": "Payments", "url": "https://grafana.example.com/d/pay"}],
            "integrations": pagerduty_of(service) if paged else {},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(soc), user="platform-admin-1")
    cluster.kubectl(
        "-n", namespace, "create", "rolebinding", f"edit-oncall-1-{service}",
        "--clusterrole=edit", "--user=oncall-1",
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


def govern(cluster: LocalCluster, ns: str, service: str) -> None:
    """payments-api runs in `ns` at IMAGE_V1, then `ns` becomes `service`'s production,
    paged through PagerDuty with change events on (their default)."""
    cluster.kubectl(
        "-n", ns, "create", "secret", "generic", f"pd-{service}",
        f"--from-literal=routing-key={ROUTING_KEY}",
    )  # fmt: skip
    cluster.kubectl(
        "-n", ns, "create", "rolebinding", "edit-team", "--clusterrole=edit", "--group=team-payments"
    )  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=deployment(ns), user="product-dev-1")
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/payments-api", "--timeout=60s")
    soc = service_on_call(ns, service=service)
    soc["spec"]["integrations"] = pagerduty_of(service)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(soc), user="platform-admin-1")
    cluster.kubectl("label", "namespace", ns, "changegate.io/governed=true")
    wait_for(
        lambda: (
            "denied the request"
            in set_image(cluster, ns, IMAGE_V2, "product-dev-1", "--dry-run=server").stderr
        ),
        message="the webhook to govern the namespace",
    )


def record_sync(api: client.ApiClient, name: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(api).get_cluster_custom_object(*CRD, "deploymentrecords", name)
    entries = found.get("status", {}).get("sync", [])
    return next((s for s in entries if s["system"] == "PagerDuty"), {})


def test_a_production_rollout_sends_one_change_event_with_its_record(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, pagerduty: PagerDutyServer
) -> None:
    service = f"chg-{namespace}"
    govern(cluster, namespace, service)
    raised = change_request(namespace, "roll-1", IMAGE_V2, service=service)
    cluster.kubectl("apply", "-f", "-", input=raised, user="product-dev-1")
    assert decide(cluster, namespace, "roll-1", "change-manager-1").returncode == 0
    wait_for(
        lambda: get(cluster, namespace, "changerequest/roll-1")["status"]["phase"] == "Approved",
        timeout=60, message="the change approved",
    )  # fmt: skip
    rolled = set_image(cluster, namespace, IMAGE_V2, "product-dev-1")
    assert rolled.returncode == 0, rolled.stderr
    name = wait_for(
        lambda: next(
            r["deploymentRecord"]
            for r in get(cluster, namespace, "changerequest/roll-1")["status"]["rollouts"]
            if r.get("deploymentRecord")
        ),
        timeout=120, message="the rollout's DeploymentRecord",
    )  # fmt: skip
    wait_for(
        lambda: record_sync(api, name).get("delivered") == ["change"],
        timeout=30, message="the record's status.sync says delivered",
    )  # fmt: skip
    sent = [e for e in pagerduty.change_events if e["payload"]["custom_details"]["record"] == name]
    assert len(sent) == 1
    record = client.CustomObjectsApi(api).get_cluster_custom_object(*CRD, "deploymentrecords", name)
    details = sent[0]["payload"]["custom_details"]
    assert sent[0]["routing_key"] == ROUTING_KEY
    assert details["commit"] == record["spec"]["source"]["commit"] == "4f2c9a1e0b7d3c58"
    assert details["change"] == record["spec"]["changeRequest"]["name"] == "roll-1"
    assert details["deployer"] == record["spec"]["deployer"] == "product-dev-1"
    assert details["service"] == service
    assert record_sync(api, name)["key"] == record["metadata"]["uid"]


def test_a_hung_pagerduty_call_for_one_service_does_not_hold_anothers_incident(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, pagerduty: PagerDutyServer
) -> None:
    first = setup_service(cluster, namespace, service=f"a-{namespace}")
    second_key = "S0123456789abcdef0123456789abcde"
    second = setup_service(
        cluster, namespace, second_key, service=f"b-{namespace}", production=f"{namespace}-b"
    )
    # The first service's next call is held unanswered for 30 s (the client gives up at 5 s).
    pagerduty.faults.timeout(1, seconds=30, path="/v2/enqueue")
    stuck = create_incident(api, namespace, first, "inc-stuck")
    wait_for(
        lambda: any(r.json()["dedup_key"] == stuck for r in pagerduty.requests.all("/v2/enqueue")),
        timeout=20, message="the first service's trigger held by PagerDuty",
    )  # fmt: skip
    started = time.monotonic()
    other = create_incident(api, namespace, second, "inc-other")
    wait_for(
        lambda: pagerduty.incident(second_key, other), timeout=20, message="the other triggered"
    )
    took = time.monotonic() - started
    assert took < 4.0, f"the other service's incident took {took:.1f} s to reach PagerDuty"
    assert pd_sync(api, namespace, "inc-stuck").get("delivered", []) == []  # still held
    wait_for(
        lambda: pd_sync(api, namespace, "inc-stuck").get("delivered") == ["trigger"],
        timeout=40, message="the held trigger retried and delivered",
    )  # fmt: skip
    assert len(pagerduty.incidents(ROUTING_KEY, stuck)) == 1


def test_a_dead_pagerduty_opens_the_circuit_and_every_incident_arrives_once_it_is_back(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, pagerduty: PagerDutyServer
) -> None:
    service = setup_service(cluster, namespace)
    pagerduty.faults.server_error(None, status=503, path="/v2/enqueue")
    first = create_incident(api, namespace, service, "inc-dead-1")
    wait_for(
        lambda: pd_sync(api, namespace, "inc-dead-1").get("attempts", 0) >= 3,
        timeout=40, message="three failures in a row, opening the circuit",
    )  # fmt: skip
    later = create_incident(api, namespace, service, "inc-dead-2")
    # An open circuit answers at once, without a call: status.sync says so.
    wait_for(
        lambda: "circuit open" in (pd_sync(api, namespace, "inc-dead-2").get("lastError") or ""),
        timeout=20, message="the later incident failing fast on the open circuit",
    )  # fmt: skip
    pagerduty.faults.clear()
    for name, uid in (("inc-dead-1", first), ("inc-dead-2", later)):
        wait_for(
            lambda name=name: pd_sync(api, namespace, name).get("delivered") == ["trigger"],
            timeout=60, message=f"{name} delivered once PagerDuty is back",
        )  # fmt: skip
        assert len(pagerduty.incidents(ROUTING_KEY, uid)) == 1


def test_turning_pagerduty_on_pages_open_incidents_only(
    cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    pagerduty: PagerDutyServer,
) -> None:
    service = setup_service(cluster, namespace, paged=False)
    closed = create_incident(api, namespace, service, "inc-closed")
    wait_for(
        lambda: incident(api, namespace, "inc-closed").get("status", {}).get("triggeredTime"),
        timeout=20, message="the controller's first pass",
    )  # fmt: skip
    act(cluster, namespace, "inc-closed", {"resolution": {"code": "Fixed", "note": "done"}})
    still_open = create_incident(api, namespace, service, "inc-open")
    patch = {"spec": {"integrations": pagerduty_of(service)}}
    cluster.kubectl(
        "-n", namespace, "patch", f"serviceoncall/{service}", "--type=merge",
        "-p", json.dumps(patch), user="platform-admin-1",
    )  # fmt: skip
    # No restart: the edit itself offers the outbox every Incident of the service.
    wait_for(
        lambda: pd_sync(api, namespace, "inc-open").get("delivered") == ["trigger"],
        timeout=30, message="the open incident paged on the ServiceOnCall's edit",
    )  # fmt: skip
    assert len(pagerduty.incidents(ROUTING_KEY, still_open)) == 1
    sent = [r.json() for r in pagerduty.requests.all("/v2/enqueue")]
    assert [e for e in sent if e.get("dedup_key") == closed] == []  # neither trigger nor resolve
    assert pd_sync(api, namespace, "inc-closed") == {}
