"""The ChangeRequest's ServiceNow plan, fields and the approvals read back from ServiceNow."""

from __future__ import annotations

from typing import Any

import pytest

from changegate.api.v1alpha1.changerequest import ApprovalDecision, ChangePhase, ChangeRequest
from changegate.core.change import servicenow as sn


def change(phase: ChangePhase | None = None, **spec: Any) -> ChangeRequest:
    return ChangeRequest.model_validate(
        {
            "metadata": {"name": "chg-1", "namespace": "payments-prod", "uid": "uid-9"},
            "spec": {
                "service": "payments",
                "type": "Normal",
                "summary": "api 1.4.2",
                "requester": "alice",
                "targets": [
                    {"name": "api", "images": [{"container": "api", "image": "reg/api:1.4.2"}]}
                ],
                **spec,
            },
            "status": {"phase": phase.value} if phase else {},
        }
    )


@pytest.mark.parametrize(
    ("phase", "steps"),
    [
        (None, ["create"]),
        (ChangePhase.APPROVED, ["create", "approved"]),
        (ChangePhase.IN_PROGRESS, ["create", "approved", "implement"]),
        (ChangePhase.COMPLETED, ["create", "approved", "implement", "review", "close"]),
        (ChangePhase.FAILED, ["create", "approved", "implement", "review", "close"]),
        (ChangePhase.REJECTED, ["create", "cancel"]),
        (ChangePhase.CANCELLED, ["create", "cancel"]),
        (ChangePhase.EXPIRED, ["create", "cancel"]),
    ],
)
def test_phases_plan_the_state_moves(phase: ChangePhase | None, steps: list[str]) -> None:
    assert sn.plan(change(phase)) == steps


def test_approvals_in_servicenow_send_a_normal_change_to_assess() -> None:
    assert sn.plan(change(), approvals_in_servicenow=True) == ["create", "assess"]


@pytest.mark.parametrize(
    ("step", "state"),
    [("assess", "-4"), ("approved", "-2"), ("implement", "-1"), ("review", "0"), ("close", "3"),
     ("cancel", "4")],
)  # fmt: skip
def test_steps_set_the_documented_state_codes(step: str, state: str) -> None:
    assert sn.fields_for(step, change(ChangePhase.COMPLETED))["state"] == state


@pytest.mark.parametrize(
    ("phase", "code"),
    [(ChangePhase.COMPLETED, "successful"), (ChangePhase.FAILED, "unsuccessful")],
)
def test_closing_carries_the_close_code_and_notes(phase: ChangePhase, code: str) -> None:
    fields = sn.fields_for("close", change(phase))
    assert fields["close_code"] == code
    assert phase.value in fields["close_notes"]


def test_the_record_carries_targets_window_source_and_requester() -> None:
    fields = sn.create_fields(
        change(
            window={"startTime": "2025-03-30T10:00:00+02:00", "endTime": "2025-03-30T12:00:00Z"},
            source={"repository": "https://git.example.com/pay", "commit": "abcdef1"},
            risk="High",
        ),
        "payments-cab",
        "payments-api",
    )

    assert fields["start_date"] == "2025-03-30 08:00:00"
    assert fields["end_date"] == "2025-03-30 12:00:00"
    assert fields["requested_by"] == "alice"
    assert fields["risk"] == "2"
    assert "reg/api:1.4.2" in fields["implementation_plan"]
    assert "abcdef1" in fields["description"]
    assert fields["assignment_group"] == "payments-cab"


def decisions(*rows: tuple[str, str]) -> list[sn.RemoteDecision]:
    return [sn.RemoteDecision(who, state, "") for who, state in rows]


def test_approvals_are_recorded_only_once_servicenow_says_approved() -> None:
    rows = decisions(("bob", "approved"), ("carol", "requested"))
    assert sn.approvals_to_record(change(ChangePhase.PENDING), "requested", rows) == []

    rows = decisions(("bob", "approved"), ("carol", "approved"))
    wanted = sn.approvals_to_record(change(ChangePhase.PENDING), "approved", rows)
    assert [(w.approver, w.decision) for w in wanted] == [
        ("bob", ApprovalDecision.APPROVED),
        ("carol", ApprovalDecision.APPROVED),
    ]


def test_a_rejection_is_recorded_with_a_comment_and_not_twice() -> None:
    rows = decisions(("bob", "rejected"))
    wanted = sn.approvals_to_record(change(ChangePhase.PENDING), "rejected", rows)
    assert [(w.approver, w.decision) for w in wanted] == [("bob", ApprovalDecision.REJECTED)]
    assert wanted[0].comment

    recorded = change(
        ChangePhase.PENDING,
        approvals=[{"decision": "Rejected", "via": "ServiceNow", "externalUser": "bob"}],
    )
    assert sn.approvals_to_record(recorded, "rejected", rows) == []


def test_a_decided_change_takes_nothing_more_from_servicenow() -> None:
    rows = decisions(("bob", "approved"))
    assert sn.approvals_to_record(change(ChangePhase.APPROVED), "approved", rows) == []
