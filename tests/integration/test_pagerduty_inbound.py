"""PagerDuty webhooks (v3) into the controller's intake server, on the local control plane.

The contract sender (tests/support/contracts/pagerduty_webhooks.py) signs events
as PagerDuty does and POSTs them to https://127.0.0.1:<intake>/pagerduty; the
controller runs under the chart's identity and reads the signing secret from the
Secret the chart lets it read. A product team member's Incident is acknowledged,
noted and resolved via PagerDuty; unsigned, wrongly signed and stale deliveries
and a duplicate change nothing; the team cannot mark its own acts as PagerDuty's.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Governed, service_on_call
from tests.support.contracts.pagerduty_webhooks import WebhookSender, incident_event, stale
from tests.support.localcluster import LocalCluster
from tests.support.operator import NAMESPACE, Installation, trust_store
from tests.support.polling import wait_for
from tests.support.scenario import get

# Every Incident a test opens is resolved after it (see conftest.py): an open major one
# would freeze payments-api for the tests after it.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("incidents_resolved")]

SECRET_NAME = "changegate-pagerduty-webhook"  # the chart's default
SIGNING_SECRET = secrets.token_hex(16)
ALICE = "PALICE01"  # product-dev-1's PagerDuty user ID, in the ServiceOnCall's contacts


@pytest.fixture(scope="module")
def signing_secret(cluster: LocalCluster, installation: Installation) -> str:
    """The webhook signing Secret, made once per session (test_integrations_chain uses it too)."""
    found = cluster.kubectl("-n", NAMESPACE, "get", "secret", SECRET_NAME, check=False)
    if found.returncode != 0:
        cluster.kubectl(
            "-n", NAMESPACE, "create", "secret", "generic", SECRET_NAME,
            f"--from-literal=secret={SIGNING_SECRET}",
        )  # fmt: skip
    return SIGNING_SECRET


@pytest.fixture
def sender(installation: Installation, signing_secret: str) -> Iterator[WebhookSender]:
    url = f"https://127.0.0.1:{installation.intake_port}/pagerduty"
    sender = WebhookSender(url, [signing_secret], verify=trust_store(installation.cert))
    yield sender
    sender.close()


@pytest.fixture
def incident(cluster: LocalCluster, governed: Governed, sender: WebhookSender) -> dict[str, Any]:
    """A team member's Incident of a service whose contacts name product-dev-1 in PagerDuty,
    once the controller knows it (a triggered event, never applied, finds it)."""
    ns = governed.namespace
    soc = service_on_call(ns)
    soc["spec"]["team"]["members"][0]["contacts"] = [{"type": "PagerDuty", "value": ALICE}]
    cluster.kubectl("apply", "-f", "-", input=json.dumps(soc), user="platform-admin-1")
    name = f"inc-{uuid.uuid4().hex[:6]}"
    body = {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"service": "payments-api", "summary": "5xx above 5%", "severity": "High"},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body), user="product-dev-1")
    created = get(cluster, ns, f"incident/{name}")
    probe = event(created, "incident.triggered")

    def known() -> bool:
        [answer] = sender.send(probe)
        return answer.status_code == 200 and answer.json().get("incident") == name

    wait_for(known, timeout=30, message="the controller to know the Incident")
    return created


def event(incident: dict[str, Any], kind: str, **given: Any) -> dict[str, Any]:
    return incident_event(
        kind,
        incident_id="PINC" + incident["metadata"]["uid"][:6].upper(),
        incident_key=incident["metadata"]["uid"],
        agent_name="Alice Responder",
        agent_id=ALICE,
        **given,
    )


def current(cluster: LocalCluster, incident: dict[str, Any]) -> dict[str, Any]:
    meta = incident["metadata"]
    return get(cluster, meta["namespace"], f"incident/{meta['name']}")


def one(answers: list[httpx.Response]) -> httpx.Response:
    [answer] = answers
    return answer


def test_acknowledged_noted_and_resolved_in_pagerduty(
    cluster: LocalCluster, incident: dict[str, Any], sender: WebhookSender
) -> None:
    acked = one(sender.send(event(incident, "incident.acknowledged")))
    assert (acked.status_code, acked.json()["message"]) == (
        200,
        "acknowledged by product-dev-1 via PagerDuty",
    )
    [ack] = current(cluster, incident)["spec"]["acknowledgements"]
    assert (ack["via"], ack["externalUser"], ack["user"]) == (
        "PagerDuty",
        "product-dev-1",
        "changegate",
    )
    wait_for(
        lambda: current(cluster, incident).get("status", {}).get("phase") == "Acknowledged",
        message="the Incident to be Acknowledged",
    )
    echo = one(sender.send(event(incident, "incident.acknowledged")))
    assert (echo.status_code, echo.json()["message"]) == (
        200,
        "the Incident is acknowledged already",
    )

    note = event(incident, "incident.annotated", note="failing over the database")
    answers = sender.send(note, copies=2)  # at least once: the same delivery twice
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[1].json()["message"] == "the note is there already (a repeated delivery)"
    notes = current(cluster, incident)["spec"]["notes"]
    assert [(n["text"], n["via"], n["externalUser"]) for n in notes] == [
        ("failing over the database", "PagerDuty", "product-dev-1")
    ]

    resolved = one(sender.send(event(incident, "incident.resolved")))
    assert resolved.status_code == 200, resolved.text
    resolution = current(cluster, incident)["spec"]["resolution"]
    assert (resolution["via"], resolution["externalUser"]) == ("PagerDuty", "product-dev-1")
    wait_for(
        lambda: current(cluster, incident).get("status", {}).get("phase") == "Resolved",
        message="the Incident to be Resolved",
    )
    late_ack = one(sender.send(event(incident, "incident.acknowledged")))  # out of order
    assert late_ack.json()["message"] == "the Incident is resolved"


@pytest.mark.parametrize(
    ("signature", "status"),
    [("none", 401), ("wrong", 401), ("v1=" + "0" * 64, 401), ("stale", 400)],
)
def test_unsigned_wrongly_signed_and_stale_deliveries_change_nothing(
    cluster: LocalCluster,
    incident: dict[str, Any],
    sender: WebhookSender,
    signature: str,
    status: int,
) -> None:
    before = current(cluster, incident)["metadata"]["resourceVersion"]
    ack = event(incident, "incident.acknowledged")
    if signature == "stale":
        answer = one(sender.send(stale(ack)))  # signed, but an hour old
        assert "stale event" in answer.json()["message"]
    else:
        answer = one(sender.send(ack, signature=signature))
    assert answer.status_code == status
    after = current(cluster, incident)
    assert after["metadata"]["resourceVersion"] == before
    assert not after["spec"].get("acknowledgements")


def test_the_team_cannot_pass_its_acts_off_as_pagerdutys(
    cluster: LocalCluster, incident: dict[str, Any]
) -> None:
    meta = incident["metadata"]
    refused = cluster.kubectl(
        "-n", meta["namespace"], "patch", f"incident/{meta['name']}", "--type=merge",
        "-p", json.dumps({"spec": {"notes": [{"text": "rolled back", "via": "PagerDuty",
                                              "externalUser": "Alice Responder"}]}}),
        user="product-dev-1", check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "spec.notes[0].via, spec.notes[0].externalUser: set only by changegate's controller" in (
        refused.stderr
    )
    assert not current(cluster, incident)["spec"].get("notes")
