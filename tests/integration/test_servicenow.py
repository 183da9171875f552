"""ServiceNow both ways on the local control plane, against the contract server.

The controller runs as the chart's service account with its read-back poll at one
second; each ServiceOnCall's integrations.serviceNow points at
tests/support/contracts/servicenow.py (Table API, Change Management API, strict
about fields and state codes) with basic auth from a Secret. People act as the
personas through the API server; "in ServiceNow" the test acts as a ServiceNow
user would, through the contract server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import Governed
from tests.integration.test_incident_actions import incident, let_act, patch
from tests.integration.test_lifecycle import wait_phase
from tests.integration.test_pagerduty import restart_controller
from tests.support.contracts.faults import Fault, FaultKind
from tests.support.contracts.servicenow import ServiceNowServer
from tests.support.localcluster import LocalCluster
from tests.support.operator import Installation
from tests.support.polling import wait_for
from tests.support.scenario import IMAGE_V2, change_request, decide, get, set_image

pytestmark = pytest.mark.integration

INCIDENTS = "/api/now/table/incident"


@pytest.fixture(scope="module")
def servicenow(cluster: LocalCluster, installation: Installation) -> Iterator[ServiceNowServer]:
    with ServiceNowServer() as server:
        restart_controller(
            installation, cluster,
            CHANGEGATE_SERVICENOW_POLL_SECONDS="1", CHANGEGATE_SYNC_CIRCUIT_SECONDS="2",
        )  # fmt: skip
        yield server
    restart_controller(installation, cluster)


def integration(server: ServiceNowServer, group: str) -> dict[str, Any]:
    return {
        "instanceUrl": server.url,
        "secretRef": {"name": "servicenow"},
        "assignmentGroup": group,
        "configurationItem": "payments-api",
    }


def connect(cluster: LocalCluster, ns: str, server: ServiceNowServer) -> None:
    """The ServiceNow Secret, and the governed service's ServiceOnCall pointed at the server."""
    cluster.kubectl(
        "-n", ns, "create", "secret", "generic", "servicenow",
        f"--from-literal=username={server.username}",
        f"--from-literal=password={server.password}",
    )  # fmt: skip
    body = {"spec": {"integrations": {"serviceNow": integration(server, "payments-oncall")}}}
    cluster.kubectl(
        "-n", ns, "patch", "serviceoncall/payments-api", "--type=merge",
        "-p", json.dumps(body), user="platform-admin-1",
    )  # fmt: skip


def second_service(cluster: LocalCluster, ns: str, server: ServiceNowServer) -> None:
    """search-api, whose tickets go to another assignment group: where incidents are reassigned."""
    soc = {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ServiceOnCall",
        "metadata": {"name": "search-api", "namespace": ns},
        "spec": {
            "service": {"name": "search-api", "displayName": "Search", "tier": "Tier2"},
            "team": {"name": "team-search", "members": [{"user": "product-dev-2"}]},
            "environments": [
                {"name": "production", "namespace": f"{ns}-search", "production": True}
            ],
            "integrations": {"serviceNow": integration(server, "search-oncall")},
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(soc), user="platform-admin-1")


def ticket(server: ServiceNowServer, table: str, uid: str) -> dict[str, str] | None:
    rows = server.records(table, correlation_id=uid)
    assert len(rows) <= 1, f"{len(rows)} {table} records for one object"
    return rows[0] if rows else None


def sn_sync(cluster: LocalCluster, ns: str, what: str) -> dict[str, Any]:
    entries = get(cluster, ns, what).get("status", {}).get("sync", [])
    return next((s for s in entries if s["system"] == "ServiceNow"), {})


def open_incident(cluster: LocalCluster, ns: str, name: str) -> str:
    created = cluster.kubectl(
        "apply", "-f", "-", input=incident(ns, name), user="product-dev-1", check=False
    )
    assert created.returncode == 0, created.stderr
    return str(get(cluster, ns, f"incident/{name}")["metadata"]["uid"])


def wait_ticket(server: ServiceNowServer, table: str, uid: str, **fields: str) -> dict[str, str]:
    """The object's record once its fields hold these values."""

    def matching() -> dict[str, str] | None:
        row = ticket(server, table, uid)
        return row if row and all(row.get(k) == v for k, v in fields.items()) else None

    found: dict[str, str] = wait_for(matching, timeout=30, message=f"{table} with {fields}")
    return found


def changed_in_servicenow(
    cluster: LocalCluster, ns: str, server: ServiceNowServer, name: str
) -> tuple[str, str]:
    """An Incident whose ServiceNow record exists (its create recorded), which an agent then
    sets In Progress, assigns to product-dev-2 and notes in ServiceNow: its UID, the sys_id."""
    connect(cluster, ns, server)
    uid = open_incident(cluster, ns, name)
    sys_id = wait_ticket(server, "incident", uid)["sys_id"]
    wait_for(
        lambda: "create" in sn_sync(cluster, ns, f"incident/{name}").get("delivered", []),
        message="the create recorded",
    )  # fmt: skip
    server.update_as(
        "sn.agent", "incident", sys_id, state="2", assigned_to="product-dev-2",
        work_notes="failing over the database",
    )  # fmt: skip
    return uid, sys_id


def act(cluster: LocalCluster, ns: str, name: str, user: str, spec: dict[str, Any]) -> None:
    """An act as `user`, retried while the webhook's caches catch up with a new service."""
    wait_for(
        lambda: patch(cluster, ns, name, user, spec).returncode == 0,
        timeout=30, message=f"{user}'s act {list(spec)}",
    )  # fmt: skip


def test_acts_on_an_incident_show_up_in_its_servicenow_ticket(
    cluster: LocalCluster, governed: Governed, servicenow: ServiceNowServer
) -> None:
    ns = governed.namespace
    let_act(cluster, ns, "incident-manager-1")
    connect(cluster, ns, servicenow)
    second_service(cluster, ns, servicenow)
    uid = open_incident(cluster, ns, "inc-1")

    created = wait_ticket(servicenow, "incident", uid)
    assert created["short_description"] == "5xx above 5%"
    assert (created["impact"], created["urgency"]) == ("1", "2")  # High
    assert created["assignment_group"] == "payments-oncall"
    assert created["cmdb_ci"] == "payments-api"
    assert created["state"] == "1"
    shown = wait_for(
        lambda: get(cluster, ns, "incident/inc-1").get("status", {}).get("externalTicket"),
        message="status.externalTicket",
    )
    assert (shown["system"], shown["id"]) == ("ServiceNow", created["number"])

    act(cluster, ns, "inc-1", "product-dev-1", {"acknowledgements": [{"comment": "on it"}]})
    wait_ticket(servicenow, "incident", uid, state="2", assigned_to="product-dev-1")
    act(cluster, ns, "inc-1", "product-dev-1", {"notes": [{"text": "gateway restarted"}]})
    wait_for(
        lambda: any("gateway restarted" in n for n in servicenow.journal(created["sys_id"])),
        timeout=30, message="the note as a work note",
    )  # fmt: skip
    act(cluster, ns, "inc-1", "product-dev-1", {"service": "search-api"})
    wait_ticket(servicenow, "incident", uid, assignment_group="search-oncall")
    act(cluster, ns, "inc-1", "incident-manager-1", {"major": True})
    wait_ticket(servicenow, "incident", uid, major_incident_state="accepted")
    resolution = {"code": "Fixed", "note": "rolled back the gateway"}
    act(cluster, ns, "inc-1", "incident-manager-1", {"resolution": resolution})
    resolved = wait_ticket(servicenow, "incident", uid, state="6")

    assert resolved["close_code"] == "Solution provided"
    assert "rolled back the gateway" in resolved["close_notes"]
    assert ticket(servicenow, "incident", uid) is not None  # one record, never a second
    notes = [n for n in servicenow.journal(created["sys_id"]) if "gateway restarted" in n]
    assert len(notes) == 1
    state = wait_for(
        lambda: (s := sn_sync(cluster, ns, "incident/inc-1")).get("delivered", [])[-1:]
        == ["resolve"] and s,
        message="status.sync of ServiceNow",
    )  # fmt: skip
    assert state["delivered"][:2] == ["create", "acknowledge"]
    assert {"note/0", "major", "resolve"} <= set(state["delivered"])
    assert any(step.startswith("reassign/") for step in state["delivered"])
    assert state.get("failed", []) == []


def test_changes_made_in_servicenow_show_on_the_incident_via_servicenow(
    cluster: LocalCluster, governed: Governed, servicenow: ServiceNowServer
) -> None:
    ns = governed.namespace
    _, sys_id = changed_in_servicenow(cluster, ns, servicenow, "inc-sn")
    spec = wait_for(
        lambda: (s := get(cluster, ns, "incident/inc-sn")["spec"]).get("assignee") and s,
        timeout=30, message="the acknowledgement and assignee from ServiceNow",
    )  # fmt: skip
    [ack] = spec["acknowledgements"]
    assert (ack["via"], ack["externalUser"]) == ("ServiceNow", "product-dev-2")
    assert (spec["assignee"], spec["assignedVia"]) == ("product-dev-2", "ServiceNow")
    [note] = spec["notes"]
    assert (note["text"], note["via"], note["externalUser"]) == (
        "failing over the database", "ServiceNow", "sn.agent",
    )  # fmt: skip

    servicenow.update_as(
        "sn.agent", "incident", sys_id, state="6", close_code="Workaround provided",
        close_notes="read replica promoted",
    )  # fmt: skip
    resolution = wait_for(
        lambda: get(cluster, ns, "incident/inc-sn")["spec"].get("resolution"),
        timeout=30, message="the resolution from ServiceNow",
    )  # fmt: skip
    assert (resolution["code"], resolution["via"]) == ("Workaround", "ServiceNow")
    assert resolution["note"] == "read replica promoted"
    # Nothing made in ServiceNow is sent back to it: no second note, no step for the acts.
    assert servicenow.journal(sys_id).count("failing over the database") == 1
    assert sn_sync(cluster, ns, "incident/inc-sn")["delivered"] == ["create"]


def in_servicenow(cluster: LocalCluster, ns: str, server: ServiceNowServer) -> None:
    """Approvals of the governed service happen in ServiceNow (a change manager says so)."""
    connect(cluster, ns, server)
    body = {"spec": {"changePolicy": {"approvalsIn": "ServiceNow"}}}
    cluster.kubectl(
        "-n", ns, "patch", "serviceoncall/payments-api", "--type=merge",
        "-p", json.dumps(body), user="change-manager-1",
    )  # fmt: skip


def raise_change(cluster: LocalCluster, ns: str, name: str) -> str:
    cluster.kubectl(
        "apply", "-f", "-", input=change_request(ns, name, IMAGE_V2), user="product-dev-1"
    )
    return str(get(cluster, ns, f"changerequest/{name}")["metadata"]["uid"])


def test_a_change_approved_in_servicenow_rolls_out_and_closes_its_change_record(
    cluster: LocalCluster, governed_running: Governed, servicenow: ServiceNowServer
) -> None:
    ns = governed_running.namespace
    in_servicenow(cluster, ns, servicenow)
    uid = raise_change(cluster, ns, "api-1-1-0")
    record = wait_ticket(servicenow, "change_request", uid, state="-4")  # Assess
    assert record["type"] == "normal"
    assert record["correlation_id"] == uid
    refused = wait_for(
        lambda: (r := decide(cluster, ns, "api-1-1-0", "change-manager-1")).returncode != 0
        and "ServiceNow" in r.stderr and r,
        message="approvals in Kubernetes refused",
    )  # fmt: skip
    assert "decide on the change record there" in refused.stderr

    servicenow.request_approval(record["sys_id"], ["change-manager-1"])
    servicenow.approve(record["sys_id"], "change-manager-1", "fine by me")
    approved = wait_phase(cluster, ns, "api-1-1-0", "Approved", timeout=30)
    [approval] = approved["spec"]["approvals"]
    assert (approval["via"], approval["externalUser"]) == ("ServiceNow", "change-manager-1")
    assert approval["decision"] == "Approved"
    wait_ticket(servicenow, "change_request", uid, state="-2")  # Scheduled

    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    wait_phase(cluster, ns, "api-1-1-0", "Completed")
    closed = wait_ticket(servicenow, "change_request", uid, state="3")
    assert closed["close_code"] == "successful"
    state = sn_sync(cluster, ns, "changerequest/api-1-1-0")
    assert state["delivered"] == ["create", "assess", "approved", "implement", "review", "close"]
    shown = get(cluster, ns, "changerequest/api-1-1-0")["status"]["externalTicket"]
    assert (shown["system"], shown["id"]) == ("ServiceNow", record["number"])


def test_the_requesters_own_approval_in_servicenow_is_refused_and_a_rejection_rejects(
    cluster: LocalCluster, governed: Governed, servicenow: ServiceNowServer
) -> None:
    ns = governed.namespace
    in_servicenow(cluster, ns, servicenow)
    uid = raise_change(cluster, ns, "api-own")
    own = wait_ticket(servicenow, "change_request", uid, state="-4")["sys_id"]
    servicenow.request_approval(own, ["product-dev-1"])
    servicenow.approve(own, "product-dev-1", "my own change")
    reads = servicenow.requests.count("/api/now/table/sysapproval_approver")
    wait_for(
        lambda: servicenow.requests.count("/api/now/table/sysapproval_approver") >= reads + 3,
        timeout=30, message="three more read-back passes",
    )  # fmt: skip
    mine = get(cluster, ns, "changerequest/api-own")
    assert mine["spec"].get("approvals", []) == []
    assert mine["status"]["phase"] == "Pending"

    uid = raise_change(cluster, ns, "api-no")
    sys_id = wait_ticket(servicenow, "change_request", uid, state="-4")["sys_id"]
    servicenow.request_approval(sys_id, ["change-manager-1"])
    servicenow.reject(sys_id, "change-manager-1", "not during the sale")
    rejected = wait_phase(cluster, ns, "api-no", "Rejected", timeout=30)
    [decision] = rejected["spec"]["approvals"]
    assert (decision["decision"], decision["externalUser"]) == ("Rejected", "change-manager-1")
    # The Table API shows journal fields (an approver's comments) empty: ours says where.
    assert decision["comment"] == "rejected in ServiceNow"
    wait_ticket(servicenow, "change_request", uid, state="4")  # Canceled


def test_a_500_from_servicenow_is_retried_and_ends_synced(
    cluster: LocalCluster, governed: Governed, servicenow: ServiceNowServer
) -> None:
    ns = governed.namespace
    connect(cluster, ns, servicenow)
    servicenow.faults.inject(Fault(FaultKind.SERVER_ERROR, 1, INCIDENTS, method="POST"))
    uid = open_incident(cluster, ns, "inc-500")
    state = wait_for(
        lambda: (s := sn_sync(cluster, ns, "incident/inc-500")).get("delivered") == ["create"]
        and s,
        timeout=40, message="the create delivered after a 500",
    )  # fmt: skip
    assert state.get("failed", []) == []
    assert state.get("attempts", 0) == 0
    assert ticket(servicenow, "incident", uid) is not None
    posts = [r.fault for r in servicenow.requests.all(INCIDENTS, "POST")]
    assert posts[-2:] == [FaultKind.SERVER_ERROR, None]
