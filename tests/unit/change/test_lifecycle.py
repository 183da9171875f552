"""The ChangeRequest lifecycle as tables: reconcile's transitions and status, then template_fit.

Rows build a change with the builders, often by reconciling it at an earlier
moment and applying the result (as the controller's status patch would), then
pin what reconcile returns at the row's moment: the phase and why, the
conditions, the approvals counted, the lead time and the audit trail. The
template rows pin whether a Standard change fits its ChangeTemplate, and why.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from changegate.api.v1alpha1.changerequest import ChangePhase, ChangeRequest, ChangeRequestStatus
from changegate.api.v1alpha1.changetemplate import ChangeTemplate
from changegate.api.v1alpha1.common import ConditionStatus, find_condition
from changegate.core.change.facts import ServicePolicy
from changegate.core.change.lifecycle import AUDIT_LIMIT, Fit, reconcile, template_fit
from tests.unit.builders import (
    NAMED_APPROVER,
    NEW_IMAGE,
    NOW,
    OLD_IMAGE,
    REGISTRY,
    REQUESTER,
    SERVICE,
    approval,
    approved_change,
    at,
    change_request,
    iso,
    policy,
    recurring_window,
    rollout,
    standard_template,
    target,
    with_metadata,
    with_spec,
    with_status,
)

VALIDITY = 4 * 3600  # seconds an approval stands when the change has no window
ONE = policy()  # one approval from the service's approvers
TWO = policy(required_approvals=2)
FITS = Fit(True, "fits template payments-api-image-update: roll out a new build")
MISFITS = Fit(False, "outside the windows of template payments-api-image-update")
COMMIT_TIME = datetime(2026, 11, 16, 16, 12, tzinfo=UTC)  # the sample's source.commitTime
WORKER = "payments-worker"


def settled(
    change: ChangeRequest,
    hours: float = -0.5,
    service: ServicePolicy | None = ONE,
    fit: Fit | None = None,
) -> ChangeRequest:
    """`change` with the status a reconcile `hours` around NOW gave it, applied."""
    return with_status(change, reconcile(change, service, fit, VALIDITY, at(hours)))


def approved(change: ChangeRequest | None = None, hours: float = -0.5) -> ChangeRequest:
    """A change the controller saw Approved `hours` around NOW."""
    change = settled(change or approved_change(), hours)
    assert change.status.phase is ChangePhase.APPROVED
    return change


def rolled(change: ChangeRequest, *rollouts: dict[str, Any]) -> ChangeRequest:
    """`change` with these rollouts recorded in its status (what with_rollout writes)."""
    return with_status(change, {"rollouts": list(rollouts)})


def two_targets(**kw: Any) -> ChangeRequest:
    return approved_change(targets=[target(), target(WORKER)], **kw)


def message(status: ChangeRequestStatus, type_: str = "Closed") -> str:
    condition = find_condition(status.conditions, type_)
    assert condition is not None
    return condition.message


# -- reconcile: every transition of the diagram ----------------------------------

REJECTION = approval("change-manager-2", "Rejected", "no rollback plan")

TRANSITIONS = [
    # Normal: approvals from the service's approvers, never the requester's own.
    pytest.param(change_request(), ONE, None, 0, ChangePhase.PENDING, "pending approval 0 of 1", id="normal-no-approval-pending"),
    pytest.param(approved_change(), ONE, None, 0, ChangePhase.APPROVED, "1 of 1 approvals: change-manager-1", id="normal-enough-approvals-approved"),
    pytest.param(approved_change(), TWO, None, 0, ChangePhase.PENDING, "pending approval 1 of 2", id="normal-one-of-two-pending"),
    pytest.param(approved_change(approvals=[approval(), approval(NAMED_APPROVER.username)]), TWO, None, 0, ChangePhase.APPROVED, "2 of 2 approvals: change-manager-1, approver-by-name", id="normal-two-of-two-approved"),
    pytest.param(approved_change(approvals=[approval(REQUESTER.username), approval()]), TWO, None, 0, ChangePhase.PENDING, "pending approval 1 of 2", id="normal-requester-approval-not-counted"),
    pytest.param(approved_change(approvals=[approval(REQUESTER.username)]), ONE, None, 0, ChangePhase.PENDING, "pending approval 0 of 1", id="normal-only-requester-approved-pending"),
    pytest.param(approved_change(approvals=[approval(), approval()]), TWO, None, 0, ChangePhase.PENDING, "pending approval 1 of 2", id="normal-same-approver-twice-counts-once"),
    pytest.param(approved_change(approvals=[approval(None)]), ONE, None, 0, ChangePhase.PENDING, "pending approval 0 of 1", id="normal-unstamped-approval-not-counted"),
    pytest.param(approved_change(), None, None, 0, ChangePhase.PENDING, "no ServiceOnCall declares service payments-api", id="normal-without-service-pending"),
    pytest.param(change_request(approvals=[REJECTION]), ONE, None, 0, ChangePhase.REJECTED, "rejected by change-manager-2", id="normal-one-rejection-rejected"),
    pytest.param(approved_change(approvals=[approval(), approval(NAMED_APPROVER.username), REJECTION]), TWO, None, 0, ChangePhase.REJECTED, "rejected by change-manager-2", id="normal-rejection-beats-approvals"),
    pytest.param(change_request(approvals=[approval(REQUESTER.username, "Rejected")]), ONE, None, 0, ChangePhase.PENDING, "pending approval 0 of 1", id="normal-requester-rejection-not-counted"),
    pytest.param(with_spec(approved(), approvals=[approval(), REJECTION]), ONE, None, 0, ChangePhase.APPROVED, "1 of 1 approvals", id="approved-stands-after-later-rejection"),
    # Cancel: until the rollout starts, never after.
    pytest.param(change_request(cancel=True), ONE, None, 0, ChangePhase.CANCELLED, "cancelled before its rollout started", id="pending-cancelled"),
    pytest.param(with_spec(approved(), cancel=True), ONE, None, 0, ChangePhase.CANCELLED, "cancelled before its rollout started", id="approved-cancelled"),
    pytest.param(change_request(cancel=True, approvals=[REJECTION]), ONE, None, 0, ChangePhase.CANCELLED, "cancelled", id="cancel-beats-rejection"),
    pytest.param(with_spec(rolled(approved(), rollout(result="InProgress")), cancel=True), ONE, None, 0, ChangePhase.IN_PROGRESS, "rollout in progress", id="cancel-ignored-in-progress"),
    pytest.param(with_spec(settled(rolled(approved(), rollout(result="InProgress")), -0.2), cancel=True), ONE, None, 0, ChangePhase.IN_PROGRESS, "rollout in progress", id="cancel-ignored-once-seen-in-progress"),
    # Rollouts recorded in status.rollouts.
    pytest.param(rolled(approved(), rollout(result="InProgress")), ONE, None, 0, ChangePhase.IN_PROGRESS, "rollout in progress", id="approved-rollout-recorded-in-progress"),
    pytest.param(rolled(approved(), rollout(finish=-0.1)), ONE, None, 0, ChangePhase.COMPLETED, "every target rolled out", id="single-target-succeeded-completed"),
    pytest.param(rolled(approved(two_targets()), rollout(finish=-0.1)), ONE, None, 0, ChangePhase.IN_PROGRESS, "rollout in progress", id="one-of-two-targets-succeeded-in-progress"),
    pytest.param(rolled(approved(two_targets()), rollout(finish=-0.1), rollout(WORKER, finish=-0.1)), ONE, None, 0, ChangePhase.COMPLETED, "every target rolled out", id="all-targets-succeeded-completed"),
    pytest.param(rolled(approved(two_targets()), rollout(finish=-0.1), rollout(WORKER, result="Failed", finish=-0.1)), ONE, None, 0, ChangePhase.FAILED, "a rollout failed", id="any-target-failed-failed"),
    pytest.param(rolled(approved(two_targets()), rollout(result="InProgress"), rollout(WORKER, result="Failed")), ONE, None, 0, ChangePhase.FAILED, "a rollout failed", id="failure-while-another-in-progress-failed"),
    pytest.param(rolled(approved(), rollout(result="InProgress")), ONE, None, 5, ChangePhase.IN_PROGRESS, "rollout in progress", id="in-progress-never-expires"),
    # Expiry: the window's end, or approvedTime + validity without a window.
    pytest.param(approved(), ONE, None, 1.99, ChangePhase.APPROVED, "1 of 1 approvals", id="approved-inside-window"),
    pytest.param(approved(), ONE, None, 2, ChangePhase.EXPIRED, "not used before 2026-11-17T12:00:00+00:00", id="approved-at-window-end-expired"),
    pytest.param(approved(), ONE, None, 3, ChangePhase.EXPIRED, "not used before 2026-11-17T12:00:00+00:00", id="approved-after-window-end-expired"),
    pytest.param(approved(approved_change(window=None)), ONE, None, 3.4, ChangePhase.APPROVED, "1 of 1 approvals", id="no-window-inside-validity"),
    pytest.param(approved(approved_change(window=None)), ONE, None, 3.5, ChangePhase.EXPIRED, "not used before 2026-11-17T13:30:00+00:00", id="no-window-approved-time-plus-validity-expired"),
    pytest.param(approved_change(window=(-3, -1)), ONE, None, 0, ChangePhase.EXPIRED, "not used before", id="approved-after-its-window-expires-at-once"),
    pytest.param(approved(approved_change(window=(1, 2))), ONE, None, 0, ChangePhase.APPROVED, "1 of 1 approvals", id="approved-before-window-opens"),
    # Terminal phases are sticky, whatever is written afterwards.
    pytest.param(with_spec(settled(change_request(approvals=[REJECTION])), approvals=[REJECTION, approval(), approval(NAMED_APPROVER.username)]), ONE, None, 0, ChangePhase.REJECTED, "rejected by change-manager-2", id="rejected-sticky-despite-approvals"),
    pytest.param(rolled(settled(change_request(cancel=True)), rollout(result="InProgress")), ONE, None, 0, ChangePhase.CANCELLED, "cancelled", id="cancelled-sticky-despite-rollout"),
    pytest.param(rolled(settled(approved(), 2.5), rollout(finish=3)), ONE, None, 3.5, ChangePhase.EXPIRED, "not used before", id="expired-sticky-despite-rollout"),
    pytest.param(rolled(settled(rolled(approved(), rollout(revision=2, finish=-0.3)), -0.2), rollout(revision=2, finish=-0.3), rollout(revision=3, result="Failed")), ONE, None, 0, ChangePhase.COMPLETED, "every target rolled out", id="completed-sticky-despite-later-failure"),
    pytest.param(rolled(settled(rolled(approved(), rollout(result="Failed", revision=2)), -0.2), rollout(result="Failed", revision=2), rollout(revision=3)), ONE, None, 0, ChangePhase.FAILED, "a rollout failed", id="failed-sticky-despite-later-success"),
    # Emergency: approved at once; Standard: by its template's fit.
    pytest.param(change_request(type="Emergency"), None, None, 0, ChangePhase.APPROVED, "emergency change: admitted at once", id="emergency-approved-at-once"),
    pytest.param(change_request(type="Emergency", approvals=[REJECTION]), ONE, None, 0, ChangePhase.APPROVED, "emergency change", id="emergency-ignores-rejection"),
    pytest.param(change_request(type="Standard"), ONE, FITS, 0, ChangePhase.APPROVED, "fits template payments-api-image-update", id="standard-fits-approved"),
    pytest.param(change_request(type="Standard"), ONE, MISFITS, 0, ChangePhase.PENDING, "outside the windows of template payments-api-image-update", id="standard-misfit-pending-with-why"),
    pytest.param(change_request(type="Standard"), ONE, None, 0, ChangePhase.PENDING, "waiting for its template", id="standard-without-fit-pending"),
    pytest.param(approved_change(type="Standard"), ONE, MISFITS, 0, ChangePhase.PENDING, "outside the windows", id="standard-approvals-do-not-count"),
    pytest.param(settled(change_request(type="Standard"), fit=FITS), ONE, MISFITS, 0, ChangePhase.APPROVED, "fits template", id="standard-stays-approved-when-fit-lapses"),
    pytest.param(settled(change_request(type="Standard"), fit=MISFITS), ONE, FITS, 0, ChangePhase.APPROVED, "fits template", id="standard-approved-once-it-fits"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "service", "fit", "hours", "phase", "why"), TRANSITIONS)
def test_reconcile_moves_the_change_along_its_lifecycle(
    change: ChangeRequest,
    service: ServicePolicy | None,
    fit: Fit | None,
    hours: float,
    phase: ChangePhase,
    why: str,
) -> None:
    status = reconcile(change, service, fit, VALIDITY, at(hours))
    assert status.phase is phase
    assert why in message(status)
    # The rollouts are the controller's to write; reconcile never drops them.
    assert status.rollouts == change.status.rollouts


# -- reconcile: the conditions ----------------------------------------------------

U, T, F = ConditionStatus.UNKNOWN, ConditionStatus.TRUE, ConditionStatus.FALSE

CONDITIONS = [
    pytest.param(change_request(), ((F, "Pending"), (U, "NotStarted"), (F, "Pending")), id="pending"),
    pytest.param(approved_change(), ((T, "Approved"), (U, "NotStarted"), (F, "Approved")), id="approved"),
    pytest.param(change_request(approvals=[REJECTION]), ((F, "Rejected"), (U, "NotStarted"), (T, "Rejected")), id="rejected"),
    pytest.param(change_request(cancel=True), ((F, "Cancelled"), (U, "NotStarted"), (T, "Cancelled")), id="cancelled"),
    pytest.param(with_spec(approved(), cancel=True), ((F, "Cancelled"), (U, "NotStarted"), (T, "Cancelled")), id="cancelled-after-approval"),
    pytest.param(approved_change(window=(-3, -1)), ((T, "Approved"), (U, "NotStarted"), (T, "Expired")), id="expired"),
    pytest.param(rolled(approved(), rollout(result="InProgress")), ((T, "Approved"), (U, "InProgress"), (F, "InProgress")), id="in-progress"),
    pytest.param(rolled(approved(), rollout()), ((T, "Approved"), (T, "Completed"), (T, "Completed")), id="completed"),
    pytest.param(rolled(approved(), rollout(result="Failed")), ((T, "Approved"), (F, "Failed"), (T, "Failed")), id="failed"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "expected"), CONDITIONS)
def test_conditions_have_the_metav1_shape_and_say_where_the_change_is(
    change: ChangeRequest, expected: tuple[tuple[ConditionStatus, str], ...]
) -> None:
    status = reconcile(with_metadata(change, generation=3), ONE, None, VALIDITY, NOW)
    assert [c.type for c in status.conditions] == ["Approved", "RolledOut", "Closed"]
    assert tuple((c.status, c.reason) for c in status.conditions) == expected
    assert all(c.observed_generation == 3 for c in status.conditions)
    assert status.observed_generation == 3
    assert all(c.message for c in status.conditions)
    json = status.to_json()
    assert set(json["conditions"][0]) == {
        "type",
        "status",
        "observedGeneration",
        "lastTransitionTime",
        "reason",
        "message",
    }


def test_last_transition_time_moves_only_when_a_condition_status_changes() -> None:
    first = settled(approved_change(), -2, service=TWO)  # 1 of 2 at 08:00
    second = settled(
        with_spec(first, approvals=[approval(), approval(NAMED_APPROVER.username)]), -1, TWO
    )  # approved at 09:00
    third = reconcile(rolled(second, rollout(result="InProgress")), TWO, None, VALIDITY, NOW)

    def times(status: ChangeRequestStatus) -> dict[str, datetime]:
        return {c.type: c.last_transition_time for c in status.conditions}

    assert times(first.status) == dict.fromkeys(("Approved", "RolledOut", "Closed"), at(-2))
    assert times(second.status) == {"Approved": at(-1), "RolledOut": at(-2), "Closed": at(-2)}
    # RolledOut stays Unknown (only its reason moves), Closed stays False.
    assert times(third) == {"Approved": at(-1), "RolledOut": at(-2), "Closed": at(-2)}
    assert message(third, "RolledOut") == "rollout in progress"


def test_pending_message_follows_the_approvals_without_a_transition() -> None:
    first = settled(change_request(), -2, service=TWO)
    second = reconcile(with_spec(first, approvals=[approval()]), TWO, None, VALIDITY, NOW)
    condition = find_condition(second.conditions, "Approved")
    assert condition is not None
    assert condition.message == "pending approval 1 of 2"
    assert condition.last_transition_time == at(-2)


def test_approved_condition_keeps_the_approval_when_expiring_in_the_same_pass() -> None:
    pending = settled(change_request(), -2)
    status = reconcile(with_spec(pending, approvals=[approval()]), ONE, None, VALIDITY, at(3))
    assert status.phase is ChangePhase.EXPIRED
    assert message(status, "Approved") == "1 of 1 approvals: change-manager-1"
    assert status.approved_time == at(3)


def test_cancelling_an_approved_change_says_so_on_the_approved_condition() -> None:
    status = reconcile(with_spec(approved(), cancel=True), ONE, None, VALIDITY, NOW)
    assert message(status, "Approved") == "cancelled before its rollout started"


# -- reconcile: approvals, times, lead time ------------------------------------------

COUNTS = [
    pytest.param(change_request(), ONE, 0, [], 1, id="none"),
    pytest.param(approved_change(), ONE, 1, ["change-manager-1"], 1, id="one"),
    pytest.param(approved_change(approvals=[approval(), approval(NAMED_APPROVER.username)]), TWO, 2, ["change-manager-1", "approver-by-name"], 2, id="two-in-order"),
    pytest.param(approved_change(approvals=[approval(REQUESTER.username), approval()]), TWO, 1, ["change-manager-1"], 2, id="requester-excluded"),
    pytest.param(approved_change(approvals=[approval(), approval()]), TWO, 1, ["change-manager-1"], 2, id="duplicate-once"),
    pytest.param(approved_change(approvals=[approval(), REJECTION]), TWO, 1, ["change-manager-1"], 2, id="rejection-not-an-approval"),
    pytest.param(approved_change(), None, 1, ["change-manager-1"], None, id="no-policy-no-requirement"),
    pytest.param(approved_change(type="Standard"), ONE, 1, ["change-manager-1"], None, id="standard-no-requirement"),
    pytest.param(change_request(type="Emergency"), ONE, 0, [], None, id="emergency-no-requirement"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "service", "count", "by", "required"), COUNTS)
def test_approvals_counted(
    change: ChangeRequest,
    service: ServicePolicy | None,
    count: int,
    by: list[str],
    required: int | None,
) -> None:
    status = reconcile(change, service, None, VALIDITY, NOW)
    assert (status.approval_count, status.approved_by, status.required_approvals) == (
        count,
        by,
        required,
    )


def test_approved_time_and_expiration_are_set_once_and_kept() -> None:
    change = settled(change_request(window=None), -3)
    assert (change.status.approved_time, change.status.expiration_time) == (None, None)
    change = settled(with_spec(change, approvals=[approval()]), -2)
    assert change.status.approved_time == at(-2)
    assert change.status.expiration_time == at(-2) + timedelta(seconds=VALIDITY)
    later = reconcile(change, ONE, None, VALIDITY, at(1))
    assert (later.approved_time, later.expiration_time) == (at(-2), at(2))


def test_expiration_is_the_window_end_when_there_is_one() -> None:
    status = reconcile(approved_change(window=(-1, 30)), ONE, None, VALIDITY, NOW)
    assert status.expiration_time == at(30)


def test_an_approved_status_without_approved_time_still_expires() -> None:
    change = with_status(approved_change(window=None), {"phase": "Approved"})
    status = reconcile(change, ONE, None, VALIDITY, NOW)
    assert (status.approved_time, status.expiration_time) == (NOW, at(4))
    assert reconcile(with_status(change, status), ONE, None, VALIDITY, at(4)).phase is (
        ChangePhase.EXPIRED
    )


def test_rollout_seen_before_the_approval_still_records_when_approved() -> None:
    # An emergency raised after a break-glass rollout: the rollout is merged before any reconcile.
    change = rolled(change_request(type="Emergency", requester=None), rollout(finish=-1))
    status = reconcile(change, None, None, VALIDITY, NOW)
    assert status.phase is ChangePhase.COMPLETED
    assert status.approved_time == NOW
    condition = find_condition(status.conditions, "Approved")
    assert condition is not None
    assert condition.status is ConditionStatus.TRUE


LEAD_TIMES = [
    pytest.param(rolled(approved(), rollout(finish=-0.25)), int((at(-0.25) - COMMIT_TIME).total_seconds()), id="one-rollout"),
    pytest.param(rolled(approved(two_targets()), rollout(finish=-0.75), rollout(WORKER, finish=-0.25)), int((at(-0.25) - COMMIT_TIME).total_seconds()), id="last-finish-of-two"),
    pytest.param(rolled(approved(), rollout(result="InProgress")), None, id="in-progress-none"),
    pytest.param(rolled(approved(), rollout(result="Failed", finish=-0.25)), None, id="failed-none"),
    pytest.param(rolled(approved(), rollout()), None, id="no-finish-time-none"),
    pytest.param(with_spec(rolled(approved(), rollout(finish=-0.25)), source=None), None, id="no-source-none"),
    pytest.param(with_spec(rolled(approved(), rollout(finish=-0.25)), source={"repository": "https://git.example.com/p", "commit": "4f2c9a1"}), None, id="no-commit-time-none"),
    pytest.param(with_spec(rolled(approved(), rollout(finish=-0.25)), source={"repository": "https://git.example.com/p", "commit": "4f2c9a1", "commitTime": iso(at(1))}), 0, id="commit-after-finish-clamped-to-zero"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "seconds"), LEAD_TIMES)
def test_lead_time_runs_from_the_commit_to_the_last_finish(
    change: ChangeRequest, seconds: int | None
) -> None:
    assert reconcile(change, ONE, None, VALIDITY, NOW).lead_time_seconds == seconds


def test_lead_time_of_the_sample_commit() -> None:
    # 2026-11-16T16:12Z to 2026-11-17T09:30Z
    status = reconcile(rolled(approved(), rollout(finish=-0.5)), ONE, None, VALIDITY, NOW)
    assert status.lead_time_seconds == 17 * 3600 + 18 * 60


# -- reconcile: the audit trail ------------------------------------------------------


def test_audit_trail_grows_only_on_transitions() -> None:
    change = settled(change_request(), -3, service=TWO)
    assert [(e.action, e.actor, e.time) for e in change.status.audit_trail] == [
        ("Pending", "changegate", at(-3))
    ]
    change = settled(change, -2.5, service=TWO)  # nothing new
    change = settled(with_spec(change, approvals=[approval()]), -2, service=TWO)  # 1 of 2
    assert len(change.status.audit_trail) == 1
    change = settled(
        with_spec(change, approvals=[approval(), approval(NAMED_APPROVER.username)]), -1, TWO
    )
    change = settled(rolled(change, rollout(result="InProgress")), -0.5, service=TWO)
    change = settled(rolled(change, rollout(finish=-0.25)), 0, service=TWO)
    change = settled(change, 1, service=TWO)
    trail = change.status.audit_trail
    assert [(e.action, e.time) for e in trail] == [
        ("Pending", at(-3)),
        ("Approved", at(-1)),
        ("InProgress", at(-0.5)),
        ("Completed", at(0)),
    ]
    assert trail[1].message == "2 of 2 approvals: change-manager-1, approver-by-name"


def test_audit_trail_is_bounded_and_drops_the_oldest() -> None:
    old = [
        {"time": iso(at(-100 + i)), "actor": "changegate", "action": "Pending", "message": str(i)}
        for i in range(AUDIT_LIMIT)
    ]
    change = with_status(approved_change(), {"phase": "Pending", "auditTrail": old})
    trail = reconcile(change, ONE, None, VALIDITY, NOW).audit_trail
    assert len(trail) == AUDIT_LIMIT
    assert trail[0].message == "1"
    assert (trail[-1].action, trail[-1].time) == ("Approved", NOW)
    # And nothing is appended, so nothing is dropped, without a transition.
    again = reconcile(with_status(change, {"phase": "Approved"}), ONE, None, VALIDITY, NOW)
    assert again.audit_trail == change.status.audit_trail


def test_reconciling_a_settled_change_again_changes_nothing() -> None:
    change = settled(rolled(approved(), rollout(finish=-0.25)), -0.1)
    assert reconcile(change, ONE, None, VALIDITY, NOW).to_json() == change.status.to_json()


# -- template_fit ----------------------------------------------------------------------

SAME_REPO = f"{REGISTRY}/payments-api:1.43.0"
OTHER_REPO = "registry.example.com/platform/payments-api:1.42.0"
PART_OF = {"app.kubernetes.io/part-of": SERVICE}
RUNNING = {("Deployment", SERVICE): {"api": OLD_IMAGE}}
RUNNING_BOTH = RUNNING | {("Deployment", WORKER): {"api": OLD_IMAGE}}
TUESDAY_SUMMER = datetime(2026, 7, 14, tzinfo=UTC)  # Berlin is UTC+2 in July, UTC+1 in November
FRIDAY = datetime(2026, 11, 20, 10, tzinfo=UTC)


def standard(*targets: dict[str, Any]) -> ChangeRequest:
    return change_request(type="Standard", targets=list(targets) or None)


def scoped(*workers: str) -> ChangeTemplate:
    """The standard template, activated at NOW with these Deployments recorded in its scope."""
    body = standard_template().to_json()
    body["metadata"].setdefault("annotations", {})["changegate.io/activated-at"] = iso(NOW)
    body["status"] = {
        "scope": [{"kind": "Deployment", "name": w} for w in workers],
        "scopeActivatedTime": iso(NOW),
    }
    return ChangeTemplate.model_validate(body)


FIT_ROWS = [
    pytest.param(standard(), standard_template(), RUNNING, {}, NOW, True, "fits template payments-api-image-update: Roll out a new build", id="fits"),
    # The template itself.
    pytest.param(standard(), None, RUNNING, {}, NOW, False, "template payments-api-image-update not found", id="no-template"),
    pytest.param(standard(), standard_template(active=False), RUNNING, {}, NOW, False, "is not active: a change manager must activate it", id="inactive"),
    pytest.param(standard(), standard_template(expires=-1), RUNNING, {}, NOW, False, "expired at 2026-11-17T09:00:00+00:00", id="expired"),
    pytest.param(standard(), standard_template(expires=0), RUNNING, {}, NOW, False, "expired at", id="expires-this-instant"),
    pytest.param(standard(), standard_template(expires=0.01), RUNNING, {}, NOW, True, "fits", id="expires-later"),
    pytest.param(standard(), standard_template(service="orders-api"), RUNNING, {}, NOW, False, "is for service orders-api", id="other-service"),
    # Recurring windows, in their own time zones.
    pytest.param(standard(), standard_template(), RUNNING, {}, FRIDAY, False, "outside the windows of template payments-api-image-update", id="window-wrong-day"),
    pytest.param(standard(), standard_template(), RUNNING, {}, NOW.replace(hour=8, minute=30), True, "fits", id="berlin-0930-inside-though-utc-0830"),
    pytest.param(standard(), standard_template(), RUNNING, {}, NOW.replace(hour=7, minute=59), False, "outside the windows", id="berlin-0859-before-open"),
    pytest.param(standard(), standard_template(), RUNNING, {}, NOW.replace(hour=8), True, "fits", id="berlin-0900-opens-inclusive"),
    pytest.param(standard(), standard_template(), RUNNING, {}, NOW.replace(hour=15), False, "outside the windows", id="berlin-1600-closes-exclusive"),
    pytest.param(standard(), standard_template(), RUNNING, {}, NOW.replace(hour=15, minute=30), False, "outside the windows", id="berlin-1630-outside-though-utc-1530"),
    pytest.param(standard(), standard_template(), RUNNING, {}, TUESDAY_SUMMER.replace(hour=7, minute=30), True, "fits", id="summer-time-berlin-0930"),
    pytest.param(standard(), standard_template(), RUNNING, {}, TUESDAY_SUMMER.replace(hour=14, minute=30), False, "outside the windows", id="summer-time-berlin-1630"),
    pytest.param(standard(), standard_template(windows=[recurring_window(("Monday",), "18:00", "20:00", "America/Los_Angeles")]), RUNNING, {}, NOW.replace(hour=3), True, "fits", id="utc-tuesday-is-monday-in-los-angeles"),
    pytest.param(standard(), standard_template(windows=[recurring_window(("Wednesday",), "00:00", "12:00", "Pacific/Auckland")]), RUNNING, {}, NOW.replace(hour=20), True, "fits", id="utc-tuesday-is-wednesday-in-auckland"),
    pytest.param(standard(), standard_template(windows=[recurring_window(("Tuesday",), "00:00", "23:59", "Pacific/Auckland")]), RUNNING, {}, NOW.replace(hour=20), False, "outside the windows", id="utc-tuesday-not-tuesday-in-auckland"),
    pytest.param(standard(), standard_template(windows=[recurring_window(("Friday",)), recurring_window(("Tuesday",), "10:30", "12:00")]), RUNNING, {}, NOW, True, "fits", id="second-window-matches"),
    pytest.param(standard(), standard_template(windows=[]), RUNNING, {}, FRIDAY.replace(hour=23), True, "fits", id="no-windows-any-time"),
    pytest.param(standard(), standard_template(windows=[recurring_window(time_zone="Mars/Olympus_Mons")]), RUNNING, {}, NOW, False, "time zone the operator does not know (Mars/Olympus_Mons)", id="unknown-time-zone"),
    pytest.param(standard(), standard_template(windows=[recurring_window(time_zone="Europe")]), RUNNING, {}, NOW, False, "time zone the operator does not know", id="time-zone-is-a-region"),
    # Scope: by name and by selector, of the right kind.
    pytest.param(standard(target(WORKER)), standard_template(), RUNNING_BOTH, {}, NOW, False, "Deployment/payments-worker is outside the scope of template", id="out-of-scope-by-name"),
    pytest.param(standard(target(WORKER)), scoped(WORKER), RUNNING_BOTH, {("Deployment", WORKER): PART_OF}, NOW, True, "fits", id="in-scope-by-selector"),
    pytest.param(standard(target(WORKER)), standard_template(), RUNNING_BOTH, {("Deployment", WORKER): {"app.kubernetes.io/part-of": "orders-api"}}, NOW, False, "outside the scope", id="out-of-scope-by-selector"),
    pytest.param(standard(target(WORKER, kind="StatefulSet")), standard_template(), {("StatefulSet", WORKER): {"api": OLD_IMAGE}}, {("StatefulSet", WORKER): PART_OF}, NOW, False, "StatefulSet/payments-worker is outside the scope", id="selector-of-another-kind"),
    pytest.param(standard(target(kind="StatefulSet")), standard_template(), {("StatefulSet", SERVICE): {"api": OLD_IMAGE}}, {}, NOW, False, "StatefulSet/payments-api is outside the scope", id="name-of-another-kind"),
    pytest.param(standard(target(), target(WORKER)), standard_template(), RUNNING_BOTH, {}, NOW, False, "Deployment/payments-worker is outside the scope", id="second-target-out-of-scope"),
    pytest.param(standard(target(), target(WORKER)), scoped(WORKER), RUNNING_BOTH, {("Deployment", WORKER): PART_OF}, NOW, True, "fits", id="both-targets-in-scope"),
    # The kind of change: a new image of the same repository, or configuration only.
    pytest.param(standard(target(images={"api": SAME_REPO})), standard_template(), RUNNING, {}, NOW, True, "fits", id="image-update-same-repository"),
    pytest.param(standard(target(images={"api": f"{REGISTRY}/payments-api@sha256:{'c' * 64}"})), standard_template(), RUNNING, {}, NOW, True, "fits", id="image-update-by-digest"),
    pytest.param(standard(target(images={"api": OTHER_REPO})), standard_template(), RUNNING, {}, NOW, False, "Deployment/payments-api: the change is not of a kind template payments-api-image-update covers (ConfigurationOnly, ImageUpdate)", id="image-of-another-repository"),
    pytest.param(standard(), standard_template(allowed=("ConfigurationOnly",)), RUNNING, {}, NOW, False, "not of a kind template payments-api-image-update covers (ConfigurationOnly)", id="image-update-not-allowed"),
    pytest.param(standard(target(images={})), standard_template(), RUNNING, {}, NOW, True, "fits", id="configuration-only-no-images"),
    pytest.param(standard(target(images={"api": OLD_IMAGE})), standard_template(), RUNNING, {}, NOW, True, "fits", id="configuration-only-same-image"),
    pytest.param(standard(target(images={})), standard_template(allowed=("ImageUpdate",)), RUNNING, {}, NOW, False, "covers (ImageUpdate)", id="configuration-only-not-allowed"),
    pytest.param(standard(target(images={"api": NEW_IMAGE, "proxy": "registry.example.com/platform/envoy:1.30.1"})), standard_template(), RUNNING, {}, NOW, False, "not of a kind", id="adds-a-container"),
    pytest.param(standard(target(images={"api": NEW_IMAGE})), standard_template(), {("Deployment", SERVICE): {"api": OLD_IMAGE, "proxy": "envoy:1.30.1"}}, {}, NOW, True, "fits", id="other-containers-kept"),
    # Nothing running to compare with.
    pytest.param(standard(), standard_template(), {}, {}, NOW, False, "Deployment/payments-api does not run yet, so nothing to compare", id="workload-not-running"),
    pytest.param(standard(target(), target(WORKER)), scoped(WORKER), RUNNING, {("Deployment", WORKER): PART_OF}, NOW, False, "Deployment/payments-worker does not run yet", id="second-workload-not-running"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "template", "running", "labels", "now", "ok", "why"), FIT_ROWS)
def test_template_fit(
    change: ChangeRequest,
    template: Any,
    running: Any,
    labels: Any,
    now: datetime,
    ok: bool,
    why: str,
) -> None:
    fit = template_fit(change, template, running, labels, now)
    assert (fit.ok, why in fit.why) == (ok, True), fit.why


def test_a_fitting_standard_change_is_approved_with_the_template_named() -> None:
    change = standard()
    fit = template_fit(change, standard_template(), RUNNING, {}, NOW)
    status = reconcile(change, ONE, fit, VALIDITY, NOW)
    assert status.phase is ChangePhase.APPROVED
    assert message(status, "Approved") == fit.why
    assert status.audit_trail[-1].message == fit.why
    assert status.approved_time == NOW
