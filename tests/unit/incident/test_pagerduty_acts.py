"""What each PagerDuty event does to an Incident: a table of events against states.

The act is a merge patch of spec stamped as the controller, marked via PagerDuty
with the PagerDuty user (a team member where the contacts say so); duplicates,
older events and the echo of our own call change nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from changegate.api.v1alpha1.incident import Incident
from changegate.api.v1alpha1.serviceoncall import Member
from changegate.core.incident.pagerduty_acts import act_for, external_user, member_of
from changegate.core.incident.pagerduty_webhooks import PagerDutyEvent, PagerDutyUser, parse_event
from tests.support.contracts.pagerduty_webhooks import incident_event

T0 = dt.datetime(2026, 11, 17, 9, 30, tzinfo=dt.UTC)
T0_TEXT = "2026-11-17T09:30:00Z"
MEMBERS = [
    Member.model_validate({"user": "product-dev-1", "contacts": [{"type": "PagerDuty", "value": "PALICE"}]}),
    Member.model_validate({"user": "product-dev-2", "contacts": [{"type": "Email", "value": "bob@example.com"}]}),
]  # fmt: skip
VIA = {"via": "PagerDuty"}


def event(kind: str, **given: Any) -> PagerDutyEvent:
    given.setdefault("agent_name", "Alice Responder")
    given.setdefault("agent_id", "PALICE")
    body = incident_event(kind, incident_id="PINC01", incident_key="uid-1", occurred_at=T0, **given)
    return parse_event(json.dumps(body).encode())


def incident(**spec: Any) -> Incident:
    return Incident.model_validate(
        {
            "metadata": {"name": "inc-1", "namespace": "payments-prod", "uid": "uid-1"},
            "spec": {"service": "payments-api", "summary": "5xx", "severity": "High", **spec},
        }
    )


ACKED = {"acknowledgements": [{"user": "product-dev-1", "time": "2026-11-17T09:00:00Z"}]}
RESOLVED = {"resolution": {"code": "Fixed", "note": "done", "resolvedBy": "product-dev-1"}}
PD_NOTE = {
    "author": "changegate",
    "time": T0_TEXT,
    "text": "db failover",
    "externalUser": "product-dev-1",
    **VIA,
}


@pytest.mark.parametrize(
    ("kind", "given", "spec", "patch"),
    [
        pytest.param("incident.acknowledged", {}, {}, {"acknowledgements": [
            {"user": "changegate", "time": T0_TEXT, "comment": "acknowledged in PagerDuty", "externalUser": "product-dev-1", **VIA}
        ]}, id="ack"),
        pytest.param("incident.acknowledged", {"agent_id": "PSTRANGER", "agent_name": "Carol"}, {}, {"acknowledgements": [
            {"user": "changegate", "time": T0_TEXT, "comment": "acknowledged in PagerDuty", "externalUser": "Carol", **VIA}
        ]}, id="ack-unmapped-user"),
        pytest.param("incident.resolved", {}, ACKED, {"resolution": {
            "code": "Fixed", "note": "resolved in PagerDuty by product-dev-1", "resolvedBy": "changegate",
            "time": T0_TEXT, "externalUser": "product-dev-1", **VIA,
        }}, id="resolve"),
        pytest.param("incident.annotated", {"note": "db failover"}, {}, {"notes": [PD_NOTE]}, id="note"),
        pytest.param("incident.reassigned", {"assignees": ["bob@example.com"]}, {}, {
            "assignee": "product-dev-2", "assignedBy": "changegate", "assignedTime": T0_TEXT,
            "assignedVia": "PagerDuty", "assignedExternalUser": "product-dev-1",
        }, id="reassign-to-member"),
        pytest.param("incident.reassigned", {"assignees": ["Dave Outside"]}, {}, {"notes": [
            {**PD_NOTE, "text": "reassigned in PagerDuty to Dave Outside"}
        ]}, id="reassign-to-stranger"),
        pytest.param("incident.priority_updated", {"priority": "P1"}, {}, {"notes": [
            {**PD_NOTE, "text": "priority set to P1 in PagerDuty"}
        ]}, id="priority"),
        pytest.param("incident.escalated", {"escalation_level": 2, "assignees": ["Eve"]}, {}, {"notes": [
            {**PD_NOTE, "text": "escalated in PagerDuty to level 2: Eve"}
        ]}, id="escalated"),
    ],
)  # fmt: skip
def test_events_become_acts(
    kind: str, given: dict[str, Any], spec: dict[str, Any], patch: dict[str, Any]
) -> None:
    act = act_for(event(kind, **given), incident(**spec), MEMBERS)
    assert act.applies, act.what
    assert act.spec == patch


@pytest.mark.parametrize(
    ("kind", "given", "spec", "why"),
    [
        pytest.param("incident.acknowledged", {}, ACKED, "acknowledged already", id="ack-echo"),
        pytest.param("incident.acknowledged", {}, RESOLVED, "resolved", id="ack-after-resolve"),
        pytest.param("incident.resolved", {}, RESOLVED, "resolved already", id="resolve-echo"),
        pytest.param("incident.annotated", {"note": "db failover"}, {"notes": [PD_NOTE]}, "there already", id="note-duplicate"),
        pytest.param("incident.annotated", {"note": ""}, {}, "empty", id="note-empty"),
        pytest.param("incident.reassigned", {"assignees": ["bob@example.com"]}, {"assignee": "product-dev-2"}, "assignee already", id="reassign-echo"),
        pytest.param("incident.reassigned", {"assignees": ["bob@example.com"]}, {"assignee": "product-dev-1", "assignedTime": "2026-11-17T09:31:00Z"}, "older", id="reassign-out-of-order"),
        pytest.param("incident.triggered", {}, {}, "not applied", id="triggered"),
        pytest.param("incident.unacknowledged", {}, ACKED, "not applied", id="unacknowledged"),
    ],
)  # fmt: skip
def test_what_changes_nothing(
    kind: str, given: dict[str, Any], spec: dict[str, Any], why: str
) -> None:
    act = act_for(event(kind, **given), incident(**spec), MEMBERS)
    assert not act.applies
    assert why in act.what


def test_a_full_list_of_notes_takes_no_more() -> None:
    notes = [{"text": f"n{i}", "author": "x"} for i in range(64)]
    act = act_for(event("incident.annotated", note="one more"), incident(notes=notes), MEMBERS)
    assert (act.applies, act.what) == (False, "the Incident holds 64 notes, the most it can")


def test_appending_keeps_the_notes_there() -> None:
    act = act_for(event("incident.annotated", note="second"), incident(notes=[PD_NOTE]), MEMBERS)
    assert act.spec is not None
    assert [n["text"] for n in act.spec["notes"]] == ["db failover", "second"]


@pytest.mark.parametrize(
    ("user", "member"),
    [
        (PagerDutyUser("PALICE", "Alice Responder"), "product-dev-1"),
        (PagerDutyUser("PBOB", "BOB@example.com"), "product-dev-2"),
        (PagerDutyUser("PCAROL", "Carol"), None),
    ],
)
def test_pagerduty_users_map_to_members_by_contacts(
    user: PagerDutyUser, member: str | None
) -> None:
    assert member_of(user, MEMBERS) == member


def test_without_an_agent_pagerduty_acted() -> None:
    assert external_user(None, MEMBERS) == "PagerDuty"
