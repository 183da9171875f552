"""The PagerDuty Events v2 contract server: what it accepts, refuses and makes of it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.contracts.pagerduty import PagerDutyServer, validate_change_event, validate_event

KEY = "0123456789abcdef0123456789abcdef"


def trigger(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "changegate/incident/uid-1",
        "payload": {
            "summary": "checkout: error rate above 5%",
            "source": "shop/checkout",
            "severity": "critical",
            "timestamp": "2026-03-01T10:00:00.000Z",
            "component": "checkout",
            "group": "payments",
            "custom_details": {"namespace": "shop"},
        },
        "links": [{"href": "https://grafana.example/d/1", "text": "Dashboard"}],
    }
    event.update(changes)
    return event


def follow_up(action: str, dedup_key: str = "changegate/incident/uid-1") -> dict[str, Any]:
    return {"routing_key": KEY, "event_action": action, "dedup_key": dedup_key}


def change_event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": KEY,
        "payload": {
            "summary": "checkout rolled out v1.2.3",
            "source": "changegate",
            "timestamp": "2015-07-17T08:42:58.315+0000",
            "custom_details": {"commit": "abc123"},
        },
        "links": [{"href": "https://git.example/c/abc123"}],
    }
    event.update(changes)
    return event


def with_payload(**changes: Any) -> dict[str, Any]:
    event = trigger()
    event["payload"] = {**event["payload"], **changes}
    return event


def without(field: str) -> dict[str, Any]:
    event = trigger()
    del event["payload"][field]
    return event


def test_a_valid_trigger_is_accepted_recorded_and_opens_one_incident(
    pagerduty: PagerDutyServer,
) -> None:
    answer = httpx.post(f"{pagerduty.url}/v2/enqueue", json=trigger())

    assert answer.status_code == 202
    assert answer.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "changegate/incident/uid-1",
    }
    assert pagerduty.events == [trigger()]
    incident = pagerduty.incident(KEY, "changegate/incident/uid-1")
    assert incident is not None
    assert (incident.status, incident.severity) == ("triggered", "critical")


def test_a_trigger_without_dedup_key_gets_one_generated() -> None:
    with PagerDutyServer() as server:
        event = trigger()
        del event["dedup_key"]
        answer = httpx.post(f"{server.url}/v2/enqueue", json=event)
        key = answer.json()["dedup_key"]
        assert answer.status_code == 202
        assert server.incident(KEY, key) is not None


def test_trigger_acknowledge_resolve_is_one_incident_through_three_statuses(
    pagerduty: PagerDutyServer,
) -> None:
    for event in (trigger(), trigger(), follow_up("acknowledge"), follow_up("resolve")):
        assert httpx.post(f"{pagerduty.url}/v2/enqueue", json=event).status_code == 202

    [incident] = pagerduty.incidents(KEY, "changegate/incident/uid-1")
    assert incident.statuses == ["triggered", "acknowledged", "resolved"]
    assert incident.triggers == 2  # the repeat was absorbed: no second incident


def test_a_trigger_after_resolution_opens_a_new_incident(pagerduty: PagerDutyServer) -> None:
    for event in (trigger(), follow_up("resolve"), trigger()):
        httpx.post(f"{pagerduty.url}/v2/enqueue", json=event)

    assert [i.status for i in pagerduty.incidents(KEY)] == ["resolved", "triggered"]


def test_follow_ups_for_no_open_incident_are_accepted_but_change_nothing(
    pagerduty: PagerDutyServer,
) -> None:
    answer = httpx.post(f"{pagerduty.url}/v2/enqueue", json=follow_up("resolve", "unknown"))

    assert answer.status_code == 202
    assert pagerduty.incidents() == []
    assert pagerduty.ignored == [follow_up("resolve", "unknown")]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (trigger(routing_key="short"), "Length of 'routing_key' is incorrect"),
        (trigger(routing_key=None), "'routing_key' is missing"),
        (trigger(event_action="page"), "'event_action' must be one of"),
        (trigger(dedup_key="k" * 256), "'dedup_key' is too long"),
        ({"routing_key": KEY, "event_action": "acknowledge"}, "'dedup_key' is required"),
        (
            {"routing_key": KEY, "event_action": "resolve", "dedup_key": ""},
            "'dedup_key' must be a non-empty",
        ),
        ({"routing_key": KEY, "event_action": "trigger"}, "'payload' is missing"),
        (with_payload(summary="s" * 1025), "'payload.summary' is too long"),
        (without("summary"), "'payload.summary' is missing"),
        (without("source"), "'payload.source' is missing"),
        (with_payload(severity="high"), "'payload.severity' must be one of"),
        (with_payload(timestamp="yesterday"), "'payload.timestamp' must be an ISO 8601"),
        (with_payload(timestamp="2026-03-01T10:00:00"), "'payload.timestamp' must be an ISO 8601"),
        (with_payload(custom_details="text"), "'payload.custom_details' must be an object"),
        (with_payload(component=3), "'payload.component' must be a string"),
        (with_payload(severty="info"), "'payload.severty' is not a field"),
        (trigger(links={"href": "https://x"}), "'links' must be an array"),
        (trigger(links=[{"text": "no href"}]), "'links[0].href' is required"),
        (trigger(links=[{"href": "not a url"}]), "'links[0].href' must be a URL"),
        (
            trigger(images=[{"src": "http://plain.example/i.png"}]),
            "'images[0].src' must be served via HTTPS",
        ),
        (trigger(images=[{"href": "https://x.example"}]), "'images[0].src' is required"),
        (trigger(client_url="nowhere"), "'client_url' must be a URL"),
        (trigger(dedupkey="typo"), "'dedupkey' is not a field"),
    ],
)
def test_invalid_events_are_refused_with_the_documented_400(
    pagerduty: PagerDutyServer, event: dict[str, Any], error: str
) -> None:
    answer = httpx.post(f"{pagerduty.url}/v2/enqueue", json=event)

    assert answer.status_code == 400
    body = answer.json()
    assert (body["status"], body["message"]) == ("invalid event", "Event object is invalid")
    assert any(error in message for message in body["errors"]), body["errors"]
    assert pagerduty.events == []
    assert pagerduty.rejected[0][1] == event


def test_a_body_that_is_not_json_is_an_unrecognized_object(pagerduty: PagerDutyServer) -> None:
    answer = httpx.post(
        f"{pagerduty.url}/v2/enqueue",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 400
    assert answer.json() == {
        "status": "Unrecognized object",
        "message": "Event object format is unrecognized",
        "errors": ["JSON parse error"],
    }


def test_lenient_mode_lets_unknown_fields_through() -> None:
    assert validate_event(trigger(extra=1), strict=False) == []
    assert validate_event(trigger(extra=1)) != []


def test_a_valid_change_event_is_accepted_and_recorded_without_an_incident(
    pagerduty: PagerDutyServer,
) -> None:
    answer = httpx.post(f"{pagerduty.url}/v2/change/enqueue", json=change_event())

    assert answer.status_code == 202
    assert answer.json()["status"] == "success"
    assert pagerduty.change_events == [change_event()]
    assert pagerduty.incidents() == []


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (change_event(routing_key="x" * 31), "Length of 'routing_key'"),
        (change_event(payload=None), "'payload' is missing"),
        (change_event(payload={"source": "ci"}), "'payload.summary' is missing"),
        (change_event(payload={"summary": "s" * 1025}), "'payload.summary' is too long"),
        (
            change_event(payload={"summary": "s", "severity": "info"}),
            "'payload.severity' is not a field",
        ),
        (change_event(payload={"summary": "s", "timestamp": "now"}), "'payload.timestamp'"),
        (change_event(event_action="trigger"), "'event_action' is not a field"),
        (
            change_event(links=[{"href": "https://x.example", "title": "t"}]),
            "'links[0].title' is not a field",
        ),
    ],
)
def test_invalid_change_events_are_refused(
    pagerduty: PagerDutyServer, event: dict[str, Any], error: str
) -> None:
    answer = httpx.post(f"{pagerduty.url}/v2/change/enqueue", json=event)

    assert answer.status_code == 400
    assert any(error in message for message in answer.json()["errors"]), answer.json()
    assert pagerduty.change_events == []
    assert validate_change_event(event) != []


def test_events_beyond_the_rate_per_routing_key_get_429() -> None:
    with PagerDutyServer(events_per_minute=2) as server:
        codes = [
            httpx.post(f"{server.url}/v2/enqueue", json=trigger()).status_code for _ in range(3)
        ]
        other = httpx.post(f"{server.url}/v2/enqueue", json=trigger(routing_key="f" * 32))

    assert codes == [202, 202, 429]
    assert other.status_code == 202
