"""Checking a PagerDuty v3 delivery: signatures (rotation, tampering, missing), parsing, freshness.

Events are built and signed by the contract sender (tests/support/contracts/
pagerduty_webhooks.py), so the checks read what PagerDuty's envelope looks like.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from changegate.core.incident.pagerduty_webhooks import (
    MAX_AGE,
    EventRefused,
    PagerDutyUser,
    parse_event,
    refuse_stale,
    signature_valid,
)
from tests.support.contracts.pagerduty_webhooks import incident_event, sign

NOW = dt.datetime(2026, 11, 17, 9, 30, tzinfo=dt.UTC)
BODY = json.dumps(
    incident_event(
        "incident.acknowledged", incident_id="PINC01", incident_key="uid-1", occurred_at=NOW
    )
).encode()
SECRET, OLD, OTHER = "subscription-secret", "previous-secret", "not-ours"


@pytest.mark.parametrize(
    ("body", "header", "secrets", "valid"),
    [
        pytest.param(BODY, sign(BODY, [SECRET]), (SECRET,), True, id="signed"),
        pytest.param(BODY, sign(BODY, [OLD, SECRET]), (SECRET,), True, id="rotation-new-second"),
        pytest.param(BODY, sign(BODY, [SECRET, OTHER]), (SECRET,), True, id="rotation-new-first"),
        pytest.param(BODY, sign(BODY, [OLD]), (SECRET, OLD), True, id="we-hold-two"),
        pytest.param(BODY, sign(BODY, [OTHER]), (SECRET,), False, id="wrong-secret"),
        pytest.param(BODY + b" ", sign(BODY, [SECRET]), (SECRET,), False, id="tampered-body"),
        pytest.param(BODY, "", (SECRET,), False, id="missing"),
        pytest.param(BODY, sign(BODY, [SECRET]).replace("v1=", "v0="), (SECRET,), False, id="other-version"),
        pytest.param(BODY, sign(BODY, [SECRET])[:-2], (SECRET,), False, id="truncated"),
        pytest.param(BODY, sign(BODY, [SECRET]), (), False, id="no-secret-configured"),
        pytest.param(BODY, sign(BODY, [""]), ("",), False, id="empty-secret"),
    ],
)  # fmt: skip
def test_signatures(body: bytes, header: str, secrets: tuple[str, ...], valid: bool) -> None:
    assert signature_valid(body, header, secrets) is valid


def test_an_event_is_read_once_at_the_boundary() -> None:
    body = incident_event(
        "incident.reassigned",
        incident_id="PINC01",
        incident_key="uid-1",
        occurred_at=NOW,
        assignees=["Bob Builder"],
        priority="P1",
        escalation_level=2,
        agent_name="Alice Responder",
        agent_id="PALICE",
    )
    event = parse_event(json.dumps(body).encode())
    assert (event.type, event.incident_id, event.incident_key) == (
        "incident.reassigned",
        "PINC01",
        "uid-1",
    )
    assert event.occurred_at == NOW
    assert event.agent == PagerDutyUser("PALICE", "Alice Responder")
    assert event.assignees == (PagerDutyUser("PUSER02", "Bob Builder"),)
    assert (event.priority, event.escalation_level, event.note) == ("P1", 2, None)


def test_a_note_names_only_pagerdutys_incident() -> None:
    body = incident_event(
        "incident.annotated", incident_id="PINC01", incident_key="uid-1", note="db failover"
    )
    event = parse_event(json.dumps(body).encode())
    assert (event.incident_id, event.incident_key, event.note) == ("PINC01", None, "db failover")


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"event": {}}', b'{"event": {"event_type": "x", "occurred_at": "yesterday", "data": {}}}'],
)  # fmt: skip
def test_what_is_not_an_event_is_refused(body: bytes) -> None:
    with pytest.raises(EventRefused, match="not a PagerDuty v3 webhook event"):
        parse_event(body)


@pytest.mark.parametrize(
    ("age", "refused"),
    [
        pytest.param(dt.timedelta(0), None, id="now"),
        pytest.param(MAX_AGE - dt.timedelta(seconds=1), None, id="just-in-window"),
        pytest.param(MAX_AGE + dt.timedelta(seconds=1), "stale event", id="stale"),
        pytest.param(dt.timedelta(hours=-1), "event from the future", id="future"),
        pytest.param(dt.timedelta(minutes=-4), None, id="small-skew"),
    ],
)
def test_freshness(age: dt.timedelta, refused: str | None) -> None:
    body = incident_event(
        "incident.resolved", incident_id="PINC01", incident_key="uid-1", occurred_at=NOW - age
    )
    event = parse_event(json.dumps(body).encode())
    if refused is None:
        refuse_stale(event, NOW)
    else:
        with pytest.raises(EventRefused, match=refused):
            refuse_stale(event, NOW)
