"""PagerDuty outbound: the plan of steps, the events' fields (checked by the contract
server's validator, written from PagerDuty's published Events v2 description), and how
each answer maps to the outbox's outcome."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from changegate.adapters.pagerduty import (
    CHANGE_ENQUEUE,
    CHANGE_EVENT_HORIZON,
    ENQUEUE,
    EventsClient,
    PagerDutyChanges,
    PagerDutyIncidents,
    RateLimit,
    change_event,
    change_steps,
    follow_up_event,
    trigger_event,
)
from changegate.api.v1alpha1 import DeploymentRecord, Incident
from changegate.core.incident.mirror import pagerduty_steps
from changegate.core.sync import Result
from tests.support.contracts.pagerduty import validate_change_event, validate_event
from tests.unit.builders import sample, service_on_call

KEY = "R" * 32
UID = "0b7c6a52-3f7d-4b1e-9a55-1d2e3f4a5b6c"
NOW = dt.datetime(2026, 11, 17, 10, 5, tzinfo=dt.UTC)


def incident(**spec: Any) -> Incident:
    body = sample("incident")
    body["metadata"]["uid"] = UID
    body["spec"].update(spec)
    body["status"] = {
        "triggeredTime": "2026-11-17T10:02:30Z",
        "alerts": [
            {
                "fingerprint": "3f9a6c2be81d4e07",
                "name": "PaymentsHighErrorRate",
                "state": "Firing",
                "startTime": "2026-11-17T10:02:00Z",
            }
        ],
        "suspectChanges": [
            {
                "name": "payments-prod.payments-api.17",
                "finishTime": "2026-11-17T09:08:47Z",
                "secondsBefore": 3193,
            }
        ],
        "dashboards": [{"name": "Payments", "url": "https://grafana.example.com/d/payments"}],
        "runbooks": [{"name": "5xx", "url": "https://runbooks.example.com/payments/5xx"}],
    }
    return Incident.model_validate(body)


def record(**spec: Any) -> DeploymentRecord:
    body = sample("deploymentrecord")
    body["spec"].update(spec)
    return DeploymentRecord.model_validate(body)


ACK = {"user": "product-dev-1", "time": "2026-11-17T10:04:00Z"}
PD_ACK = {**ACK, "via": "PagerDuty", "externalUser": "Alice"}
RESOLUTION = {"code": "Fixed", "note": "rolled back", "resolvedBy": "product-dev-1"}


@pytest.mark.parametrize(
    ("spec", "steps"),
    [
        ({"acknowledgements": []}, ["trigger"]),
        ({"acknowledgements": [ACK]}, ["trigger", "acknowledge"]),
        (
            {"acknowledgements": [ACK], "resolution": RESOLUTION},
            ["trigger", "acknowledge", "resolve"],
        ),
        ({"acknowledgements": [], "resolution": RESOLUTION}, ["trigger", "resolve"]),
        # acts made in PagerDuty are there already: nothing loops back
        ({"acknowledgements": [PD_ACK]}, ["trigger"]),
        ({"acknowledgements": [PD_ACK, ACK]}, ["trigger"]),
        (
            {"acknowledgements": [PD_ACK], "resolution": {**RESOLUTION, "via": "PagerDuty"}},
            ["trigger"],
        ),
        ({"acknowledgements": [PD_ACK], "resolution": RESOLUTION}, ["trigger", "resolve"]),
    ],
)
def test_the_plan_follows_the_incident_and_skips_what_came_from_pagerduty(
    spec: dict[str, Any], steps: list[str]
) -> None:
    assert pagerduty_steps(synced(incident(**spec), TRIGGERED)) == steps


def synced(shown: Incident, state: dict[str, Any] | None) -> Incident:
    """The Incident with PagerDuty's outbox in status.sync as `state` (None: never tried)."""
    sync = [] if state is None else [{"system": "PagerDuty", "key": UID, **state}]
    status = shown.status.model_validate({**shown.status.to_json(), "sync": sync})
    return shown.model_copy(update={"status": status})


TRIED = {"lastAttemptTime": "2026-11-17T10:02:31Z"}
TRIGGERED = {"delivered": ["trigger"], **TRIED}


@pytest.mark.parametrize(
    ("spec", "state", "steps"),
    [
        # PagerDuty turned on after the Incident closed: never paged, never resolved there
        ({"resolution": RESOLUTION}, None, []),
        ({"acknowledgements": [ACK], "resolution": RESOLUTION}, None, []),
        # tried, success unrecorded (a kill between call and status): resolve what may be open
        ({"resolution": RESOLUTION}, {"attempts": 2, **TRIED}, ["resolve"]),
        ({"resolution": RESOLUTION}, {"failed": ["trigger"], **TRIED}, ["resolve"]),
        ({"resolution": {**RESOLUTION, "via": "PagerDuty"}}, TRIED, []),
        # open ones are still paged when PagerDuty is turned on
        ({"acknowledgements": [ACK]}, None, ["trigger", "acknowledge"]),
        ({"acknowledgements": [], "resolution": RESOLUTION}, TRIGGERED, ["trigger", "resolve"]),
    ],
)
def test_an_incident_resolved_before_pagerduty_heard_of_it_is_not_triggered(
    spec: dict[str, Any], state: dict[str, Any] | None, steps: list[str]
) -> None:
    assert pagerduty_steps(synced(incident(**spec), state)) == steps


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("Critical", "critical"), ("High", "error"), ("Medium", "warning"), ("Low", "info")],
)
def test_the_trigger_carries_what_the_issue_asks_and_passes_the_contract(
    severity: str, expected: str
) -> None:
    soc = service_on_call()
    event = trigger_event(incident(severity=severity), soc, KEY)
    assert validate_event(event) == []
    assert event["dedup_key"] == UID
    assert event["event_action"] == "trigger"
    payload = event["payload"]
    assert payload["severity"] == expected
    assert payload["component"] == "payments-api"
    assert payload["group"] == soc.spec.team.name
    assert payload["class"] == "PaymentsHighErrorRate"
    assert payload["summary"].startswith("PaymentsHighErrorRate")
    assert payload["timestamp"] == "2026-11-17T10:02:30+00:00"
    details = payload["custom_details"]
    assert details["namespace"] == "payments-prod"
    assert details["alerts"][0]["name"] == "PaymentsHighErrorRate"
    assert details["suspect_changes"][0]["record"] == "payments-prod.payments-api.17"
    assert event["links"] == [
        {"href": "https://grafana.example.com/d/payments", "text": "Payments"},
        {"href": "https://runbooks.example.com/payments/5xx", "text": "5xx"},
    ]


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_follow_ups_reuse_the_routing_key_and_dedup_key(action: str) -> None:
    event = follow_up_event(incident(), action, KEY)
    assert validate_event(event) == []
    assert event == {"routing_key": KEY, "event_action": action, "dedup_key": UID}


def test_nothing_is_planned_before_the_first_pass_settled_the_status() -> None:
    fresh = incident().model_copy(
        update={"status": incident().status.model_copy(update={"triggered_time": None})}
    )
    assert pagerduty_steps(fresh) == []


def test_a_long_summary_is_cut_to_pagerdutys_bound() -> None:
    event = trigger_event(incident(summary="x" * 1024), service_on_call(), KEY)
    assert validate_event(event) == []


@pytest.mark.parametrize("result", ["Succeeded", "Failed"])
def test_the_change_event_carries_commit_change_deployer_record_and_passes_the_contract(
    result: str,
) -> None:
    event = change_event(record(result=result), service_on_call(), KEY)
    assert validate_change_event(event) == []
    details = event["payload"]["custom_details"]
    assert details["commit"] == "4f2c9a1e0b7d3c58a6e1f09b2d4c7e8a1b3f5d60"
    assert details["change"] == "payments-api-1-42-0"
    assert details["deployer"] == "product-dev-1"
    assert details["record"] == "payments-prod.payments-api.17"
    assert event["payload"]["timestamp"] == "2026-11-17T09:08:47+00:00"
    assert "payments-api" in event["payload"]["summary"]
    assert {"href": "https://git.example.com/payments/payments-api", "text": "repository"} in event[
        "links"
    ]


def test_change_events_only_for_production_records_of_services_that_ask() -> None:
    changes = PagerDutyChanges(client_for(lambda r: httpx.Response(202)))
    soc = service_on_call()
    assert changes.endpoint(record(), soc) is not None
    assert changes.endpoint(record(production=False), soc) is None
    body = soc.model_dump(by_alias=True)
    body["spec"]["integrations"]["pagerDuty"]["sendChangeEvents"] = False
    assert changes.endpoint(record(), type(soc).model_validate(body)) is None


@pytest.mark.parametrize(
    ("now", "plan"),
    [
        (NOW, ["change"]),  # finished 09:08:47, 56 minutes before
        (dt.datetime(2026, 11, 17, 10, 8, 47, tzinfo=dt.UTC), ["change"]),  # the horizon
        (dt.datetime(2026, 11, 17, 10, 8, 48, tzinfo=dt.UTC), []),  # older: noise
        (dt.datetime(2026, 11, 18, 9, 0, tzinfo=dt.UTC), []),  # sendChangeEvents turned on later
    ],
)
def test_change_events_only_for_rollouts_finished_within_the_horizon(
    now: dt.datetime, plan: list[str]
) -> None:
    assert dt.timedelta(hours=1) == CHANGE_EVENT_HORIZON
    assert change_steps(record(), now) == plan
    changes = PagerDutyChanges(client_for(lambda r: httpx.Response(202), clock=lambda: now))
    assert changes.plan(record(), service_on_call()) == plan


def client_for(
    handler: Callable[[httpx.Request], httpx.Response],
    limit: int = 120,
    clock: Callable[[], dt.datetime] = lambda: NOW,
) -> EventsClient:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return EventsClient(client, "https://events.example.com", clock, RateLimit(limit))


def send(handler: Callable[[httpx.Request], httpx.Response]) -> tuple[Any, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    events = client_for(recording)
    return asyncio.run(events.send(ENQUEUE, follow_up_event(incident(), "resolve", KEY), KEY)), seen


@pytest.mark.parametrize(
    ("answer", "result", "retry_after"),
    [
        (httpx.Response(202, json={"status": "success"}), Result.DELIVERED, None),
        (httpx.Response(400, json={"status": "invalid event"}), Result.REFUSED, None),
        (httpx.Response(429, headers={"Retry-After": "7"}), Result.RETRY, 7.0),
        (httpx.Response(500), Result.RETRY, None),
        (httpx.Response(503), Result.RETRY, None),
        (httpx.Response(408), Result.RETRY, None),
        (httpx.Response(404), Result.REFUSED, None),
        (httpx.Response(200), Result.REFUSED, None),  # only 202 means accepted
    ],
)
def test_answers_map_to_delivered_refused_or_retry_with_one_request_each(
    answer: httpx.Response, result: Result, retry_after: float | None
) -> None:
    outcome, seen = send(lambda _: answer)
    assert outcome.result is result
    assert outcome.retry_after == retry_after
    assert len(seen) == 1  # the outbox retries, not the client
    assert str(seen[0].url) == "https://events.example.com/v2/enqueue"
    assert json.loads(seen[0].content)["dedup_key"] == UID


def test_transport_trouble_is_retried_and_no_error_carries_the_routing_key() -> None:
    def broken(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused {KEY}")

    outcome, _ = send(broken)
    assert outcome.result is Result.RETRY
    assert KEY not in (outcome.error or "")

    echo, _ = send(lambda r: httpx.Response(400, text=f"bad key {KEY}"))
    assert KEY not in (echo.error or "")


def test_the_rate_limit_holds_a_routing_key_at_its_events_a_minute() -> None:
    limit = RateLimit(per_minute=2)
    assert limit.wait(KEY, NOW) == 0
    assert limit.wait(KEY, NOW) == 0
    assert limit.wait(KEY, NOW + dt.timedelta(seconds=10)) == pytest.approx(50)
    assert limit.wait("S" * 32, NOW) == 0  # another routing key is not held
    assert limit.wait(KEY, NOW + dt.timedelta(seconds=60)) == 0


def test_a_held_event_is_a_retry_without_a_request() -> None:
    seen: list[httpx.Request] = []
    events = client_for(lambda r: seen.append(r) or httpx.Response(202), limit=1)
    first = asyncio.run(events.send(CHANGE_ENQUEUE, {"routing_key": KEY}, KEY))
    second = asyncio.run(events.send(CHANGE_ENQUEUE, {"routing_key": KEY}, KEY))
    assert first.result is Result.DELIVERED
    assert second.result is Result.RETRY
    assert second.retry_after == pytest.approx(60)
    assert len(seen) == 1


def test_incidents_go_to_the_configured_host_with_the_named_secret_key() -> None:
    system = PagerDutyIncidents(client_for(lambda r: httpx.Response(202)))
    endpoint = system.endpoint(incident(), service_on_call())
    assert endpoint is not None
    assert endpoint.host == "events.example.com"
    assert endpoint.namespace == "payments-prod"
    assert endpoint.secret_refs["routingKey"].name == "payments-pagerduty"
