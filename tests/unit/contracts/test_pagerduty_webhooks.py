"""The v3 webhook sender: envelopes, signatures, and the misdeliveries it can stage."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.support.contracts.pagerduty import PagerDutyServer
from tests.support.contracts.pagerduty_webhooks import WebhookSender, incident_event, sign, stale
from tests.support.contracts.server import ContractServer
from tests.unit.contracts.test_pagerduty_events import KEY, trigger

SECRET = "subscription-secret"


class Receiver(ContractServer):
    """Stands in for changegate's endpoint: answers 202 to everything, keeps what came."""

    name = "receiver"

    def add_routes(self, app: web.Application) -> None:
        async def accept(request: web.Request) -> web.Response:
            return web.Response(status=202)

        app.router.add_post("/pagerduty", accept)

    def deliveries(self) -> list[tuple[dict[str, Any], str | None]]:
        return [
            (r.json(), r.headers.get("X-PagerDuty-Signature"))
            for r in self.requests.all("/pagerduty")
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(tls=True) as server:
        yield server


@pytest.fixture
def sender(receiver: Receiver) -> Iterator[WebhookSender]:
    sender = WebhookSender(
        f"{receiver.url}/pagerduty", [SECRET], verify=receiver.client_ssl_context()
    )
    yield sender
    sender.close()


def event(event_type: str = "incident.acknowledged", **details: Any) -> dict[str, Any]:
    return incident_event(
        event_type, incident_id="Q000001", incident_key="changegate/incident/uid-1", **details
    )


def valid(body: bytes, header: str, secret: str = SECRET) -> bool:
    expected = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return expected in header.split(",")


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("incident.acknowledged", "acknowledged"),
        ("incident.resolved", "resolved"),
        ("incident.reassigned", "acknowledged"),
        ("incident.priority_updated", "acknowledged"),
        ("incident.escalated", "triggered"),
    ],
)
def test_incident_events_carry_the_incident_with_its_key_status_and_agent(
    event_type: str, status: str
) -> None:
    body = incident_event(
        event_type,
        incident_id="Q000001",
        incident_key="k-1",
        status=status,
        assignees=["Bob"],
        priority="P1",
    )["event"]

    assert (body["event_type"], body["resource_type"]) == (event_type, "incident")
    assert body["data"]["incident_key"] == "k-1"
    assert body["data"]["status"] == status
    assert body["data"]["assignees"][0]["summary"] == "Bob"
    assert body["data"]["priority"]["summary"] == "P1"
    assert body["agent"]["type"] == "user_reference"
    assert datetime.datetime.fromisoformat(body["occurred_at"]).tzinfo is not None


def test_an_annotation_carries_the_note_and_the_incident_reference() -> None:
    data = event("incident.annotated", note="rolled back v1.2.3")["event"]["data"]

    assert (data["type"], data["content"]) == ("incident_note", "rolled back v1.2.3")
    assert data["incident"]["id"] == "Q000001"


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="not a PagerDuty incident event type"):
        event("incident.exploded")


def test_signatures_are_hmac_sha256_of_the_raw_body_one_per_secret() -> None:
    header = sign(b"{}", ["old", "new"])

    assert len(header.split(",")) == 2
    assert valid(b"{}", header, "old")
    assert valid(b"{}", header, "new")
    assert not valid(b"{ }", header, "new")


def test_a_sent_event_is_signed_over_the_exact_bytes_posted(
    sender: WebhookSender, receiver: Receiver
) -> None:
    [answer] = sender.send(event())

    assert answer.status_code == 202
    [request] = receiver.requests.all("/pagerduty")
    assert valid(request.body, request.headers["X-PagerDuty-Signature"])
    assert request.headers["Content-Type"] == "application/json"
    assert request.json()["event"]["event_type"] == "incident.acknowledged"


def test_rotation_signs_with_every_secret(receiver: Receiver) -> None:
    sender = WebhookSender(
        f"{receiver.url}/pagerduty", ["old", "new"], verify=receiver.client_ssl_context()
    )
    sender.send(event())
    sender.close()

    [request] = receiver.requests.all("/pagerduty")
    assert valid(request.body, request.headers["X-PagerDuty-Signature"], "old")
    assert valid(request.body, request.headers["X-PagerDuty-Signature"], "new")


def test_unsigned_and_wrongly_signed_deliveries(sender: WebhookSender, receiver: Receiver) -> None:
    sender.send(event(), signature="none")
    sender.send(event(), signature="wrong")

    [(_, unsigned), (_, wrong)] = receiver.deliveries()
    assert unsigned is None
    assert wrong is not None
    assert not valid(receiver.requests.all("/pagerduty")[1].body, wrong)


def test_duplicates_repeat_the_same_event_id(sender: WebhookSender, receiver: Receiver) -> None:
    sender.send(event(), copies=3)

    ids = {body["event"]["id"] for body, _ in receiver.deliveries()}
    assert receiver.requests.count("/pagerduty") == 3
    assert len(ids) == 1


def test_out_of_order_delivery(sender: WebhookSender, receiver: Receiver) -> None:
    events = [event("incident.acknowledged"), event("incident.resolved")]

    sender.send_all(events, order="reversed")

    assert [body["event"]["event_type"] for body, _ in receiver.deliveries()] == [
        "incident.resolved",
        "incident.acknowledged",
    ]


def test_a_stale_event_happened_long_ago_and_is_still_validly_signed(
    sender: WebhookSender, receiver: Receiver
) -> None:
    sender.send(stale(event(), datetime.timedelta(hours=2)))

    [request] = receiver.requests.all("/pagerduty")
    occurred = datetime.datetime.fromisoformat(request.json()["event"]["occurred_at"])
    assert datetime.datetime.now(datetime.UTC) - occurred > datetime.timedelta(hours=1)
    assert valid(request.body, request.headers["X-PagerDuty-Signature"])


def test_acting_in_pagerduty_changes_the_incident_and_sends_its_webhook(receiver: Receiver) -> None:
    with PagerDutyServer() as pagerduty:
        httpx.post(f"{pagerduty.url}/v2/enqueue", json=trigger())
        pagerduty.subscribe(
            f"{receiver.url}/pagerduty", [SECRET], verify=receiver.client_ssl_context()
        )

        pagerduty.act(KEY, "changegate/incident/uid-1", "incident.acknowledged", agent="Bob")

        incident = pagerduty.incident(KEY, "changegate/incident/uid-1")
        assert incident is not None
        assert incident.status == "acknowledged"
    [(body, signature)] = receiver.deliveries()
    assert body["event"]["data"]["incident_key"] == "changegate/incident/uid-1"
    assert body["event"]["agent"]["summary"] == "Bob"
    assert signature is not None
    assert json.loads(receiver.requests.all("/pagerduty")[0].body) == body
