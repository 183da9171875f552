"""The Incident's ServiceNow plan and mappings: severity, phases, close codes, read-back."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from changegate.api.v1alpha1.common import ActSource
from changegate.api.v1alpha1.incident import (
    Incident,
    IncidentPhase,
    ResolutionCode,
    Severity,
)
from changegate.core.incident import servicenow as sn

T0 = dt.datetime(2025, 3, 30, 9, 0, tzinfo=dt.UTC)


def incident(**spec: Any) -> Incident:
    return Incident.model_validate(
        {
            "metadata": {"name": "inc-1", "namespace": "payments-prod", "uid": "uid-1"},
            "spec": {"service": "payments", "summary": "checkout down", "severity": "High", **spec},
        }
    )


@pytest.mark.parametrize(
    ("severity", "impact", "urgency", "priority"),
    [
        (Severity.CRITICAL, "1", "1", 1),
        (Severity.HIGH, "1", "2", 2),
        (Severity.MEDIUM, "2", "2", 3),
        (Severity.LOW, "3", "2", 4),
    ],
)
def test_severity_maps_to_impact_and_urgency_that_give_the_priority(
    severity: Severity, impact: str, urgency: str, priority: int
) -> None:
    fields = sn.create_fields(incident(severity=severity.value), sn.TicketContext())
    assert (fields["impact"], fields["urgency"]) == (impact, urgency)
    assert int(impact) + int(urgency) - 1 == priority


@pytest.mark.parametrize(
    ("phase", "state"),
    [
        (IncidentPhase.TRIGGERED, "1"),
        (IncidentPhase.ACKNOWLEDGED, "2"),
        (IncidentPhase.RESOLVED, "6"),
    ],
)
def test_phases_map_to_incident_states(phase: IncidentPhase, state: str) -> None:
    assert sn.STATE[phase] == state


@pytest.mark.parametrize("code", list(ResolutionCode))
def test_every_resolution_code_has_a_close_code_and_maps_back(code: ResolutionCode) -> None:
    assert sn.CODE_OF_CLOSE[sn.CLOSE_CODE[code]] is code


def test_a_new_incident_plans_only_create_with_group_and_ci() -> None:
    context = sn.TicketContext("payments-oncall", "payments-api")
    fields = sn.create_fields(incident(), context)

    assert sn.plan(incident()) == ["create"]
    assert fields["assignment_group"] == "payments-oncall"
    assert fields["cmdb_ci"] == "payments-api"
    assert fields["short_description"] == "checkout down"


def test_every_act_in_kubernetes_plans_a_step_in_order() -> None:
    acted = incident(
        notes=[{"text": "looking", "author": "alice"}, {"text": "db", "author": "bob"}],
        acknowledgements=[{"user": "alice"}],
        assignee="bob",
        reassignedBy="carol",
        major=True,
        resolution={"code": "Fixed", "note": "rolled back", "resolvedBy": "bob"},
    )

    assert sn.plan(acted) == [
        "create",
        "note/0",
        "note/1",
        "acknowledge",
        "assign/bob",
        "reassign/payments",
        "major",
        "resolve",
    ]


def test_acts_that_came_from_servicenow_plan_no_call_back() -> None:
    via = ActSource.SERVICE_NOW.value
    acted = incident(
        notes=[{"text": "from sn", "via": via, "externalUser": "dave"}],
        acknowledgements=[{"via": via, "externalUser": "dave"}],
        assignee="dave",
        assignedVia=via,
        resolution={"code": "Fixed", "note": "done", "via": via},
    )

    assert sn.plan(acted) == ["create"]


def test_step_fields_acknowledge_major_and_resolve() -> None:
    context = sn.TicketContext(major_fields={"major_incident_state": "accepted"})
    acted = incident(
        acknowledgements=[{"user": "alice"}],
        resolution={"code": "Workaround", "note": "restarted", "resolvedBy": "alice"},
    )

    assert sn.fields_for("acknowledge", acted, context) == {
        "state": "2",
        "assigned_to": "alice",
    }
    assert sn.fields_for("major", acted, context) == {"major_incident_state": "accepted"}
    resolved = sn.fields_for("resolve", acted, context)
    assert resolved["state"] == "6"
    assert resolved["close_code"] == "Workaround provided"
    assert "restarted" in resolved["close_notes"]


def test_a_user_name_with_a_slash_becomes_a_plain_step_argument() -> None:
    assert sn.argument("bob") == "bob"
    assert "/" not in sn.argument("team/bob")


def test_read_back_acknowledges_assigns_and_takes_notes_once() -> None:
    journal = [
        sn.RemoteNote("dave", "checking the database"),
        sn.RemoteNote("changegate", "[changegate payments-prod/inc-1/note/0] alice: x"),
    ]
    found = sn.read_back(incident(), {"state": "2"}, "dave", "dave", journal)

    assert found.acknowledge_by == "dave"
    assert found.assignee == "dave"
    assert found.notes == (sn.RemoteNote("dave", "checking the database"),)

    noted = incident(
        notes=[{"text": "checking the database", "via": "ServiceNow", "externalUser": "dave"}],
        acknowledgements=[{"via": "ServiceNow", "externalUser": "dave"}],
        assignee="dave",
    )
    assert not sn.read_back(noted, {"state": "2"}, "dave", "dave", journal)


def test_read_back_resolves_with_the_close_code_and_notes() -> None:
    ticket = {"state": "6", "close_code": "Workaround provided", "close_notes": "restarted"}
    found = sn.read_back(incident(), ticket, "", "dave", [])

    assert found.resolve == (ResolutionCode.WORKAROUND, "restarted", "dave")


def test_our_own_acknowledger_as_assignee_is_no_reassignment() -> None:
    acked = incident(acknowledgements=[{"user": "alice"}])
    assert not sn.read_back(acked, {"state": "2"}, "alice", "changegate", [])
