"""Invariants of reconcile: level-based, idempotent, and moved by time only towards expiry.

Hypothesis generates ChangeRequests of every type with approvals (by approvers,
the requester, or unstamped), a cancel, a window or none, two targets or one,
rollouts recorded in status, and a history: zero to three earlier reconciles,
each seeing a prefix of what was written by then, whose results are applied
as the controller's status patch would. At the final moment:

- reconciling the applied result again gives the same status (reconciling
  twice equals reconciling once), as the controller's "nothing to patch" relies on;
- a terminal phase never changes later, whatever is written afterwards;
- with nothing new written, time alone never moves a phase except Approved to Expired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from changegate.api.v1alpha1.changerequest import (
    TERMINAL_PHASES,
    ChangePhase,
    ChangeRequest,
    ChangeRequestStatus,
)
from changegate.api.v1alpha1.common import find_condition
from changegate.core.change.facts import ServicePolicy
from changegate.core.change.lifecycle import Fit, reconcile
from tests.unit.builders import (
    REQUESTER,
    approval,
    at,
    change_request,
    policy,
    rollout,
    target,
    with_spec,
    with_status,
)

WORKER = "payments-worker"
FITS = Fit(True, "fits template payments-api-image-update")
MISFITS = Fit(False, "outside the windows of template payments-api-image-update")
POLICIES = {n: policy(required_approvals=n) for n in (1, 2, 3)}
DECIDERS = ("change-manager-1", "change-manager-2", "approver-by-name", REQUESTER.username, None)

# Quarter hours around NOW, so that moments often fall exactly on window ends and expiries.
quarters = st.integers(-8 * 4, 30 * 4).map(lambda q: q / 4)
validities = st.sampled_from([900, 3600, 4 * 3600, 86400]) | st.integers(1, 3 * 86400)
decisions = st.tuples(st.sampled_from(DECIDERS), st.sampled_from(["Approved", "Rejected"]))


@dataclass(frozen=True)
class Scenario:
    """A change, its inputs, and the status earlier reconciles left on it."""

    change: ChangeRequest  # the spec as now written, the status as last applied
    service: ServicePolicy | None
    fit: Fit | None
    validity: int
    now: float  # hours around builders.NOW


def _rollout(draw: Any, names: list[str]) -> dict[str, Any]:
    result = draw(st.sampled_from(["InProgress", "Succeeded", "Succeeded", "Failed"]))
    return rollout(
        draw(st.sampled_from(names)),
        result=result,
        revision=draw(st.integers(1, 4)),
        finish=None if result == "InProgress" else draw(st.integers(-8, 4).map(lambda q: q / 4)),
    )


def _monotone(draw: Any, steps: int, top: int) -> list[int]:
    """Non-decreasing prefix lengths up to `top`, one per step: what was written by then."""
    return sorted(draw(st.lists(st.integers(0, top), min_size=steps, max_size=steps)))


@st.composite
def scenarios(draw: Any) -> Scenario:
    type_ = draw(st.sampled_from(["Normal", "Standard", "Emergency"]))
    names = [target()["name"]] + ([WORKER] if draw(st.booleans()) else [])
    window = draw(st.none() | st.tuples(quarters, st.integers(1, 24 * 4).map(lambda q: q / 4)))
    approvals = [approval(who, what) for who, what in draw(st.lists(decisions, max_size=5))]
    cancel = draw(st.sampled_from([False, False, False, True]))
    # Most changes are looked at before anything rolls out, where approvals and expiry matter.
    rollouts = [_rollout(draw, names) for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3])))]
    required = draw(st.sampled_from([None, 1, 1, 2, 3]))
    service = POLICIES[required] if required else None
    validity = draw(validities)

    base = change_request(
        type=type_,
        targets=[target(n) for n in names],
        window=None if window is None else (window[0], window[0] + window[1]),
    )

    def written(n_approvals: int, cancelled: bool, n_rollouts: int) -> ChangeRequest:
        spec = with_spec(base, approvals=approvals[:n_approvals], cancel=cancelled)
        return with_status(spec, {"rollouts": rollouts[:n_rollouts]})

    # Earlier reconciles, each seeing what was written by its moment.
    steps = draw(st.integers(0, 3))
    times = sorted(draw(st.lists(quarters, min_size=steps + 1, max_size=steps + 1, unique=True)))
    seen_approvals = _monotone(draw, steps, len(approvals))
    seen_rollouts = _monotone(draw, steps, len(rollouts))
    cancel_from = draw(st.integers(0, steps)) if cancel else steps + 1
    status = ChangeRequestStatus()
    for k in range(steps):
        change = written(seen_approvals[k], k >= cancel_from, seen_rollouts[k])
        change = with_status(
            with_status(change, status), {"rollouts": rollouts[: seen_rollouts[k]]}
        )
        fit = draw(st.sampled_from([None, FITS, MISFITS])) if type_ == "Standard" else None
        status = reconcile(change, service, fit, validity, at(times[k]))

    change = with_status(written(len(approvals), cancel, len(rollouts)), status)
    change = with_status(change, {"rollouts": rollouts})
    fit = draw(st.sampled_from([None, FITS, MISFITS])) if type_ == "Standard" else None
    return Scenario(change, service, fit, validity, times[-1])


def _reconcile(s: Scenario, change: ChangeRequest, hours: float) -> ChangeRequestStatus:
    return reconcile(change, s.service, s.fit, s.validity, at(hours))


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_reconciling_twice_equals_reconciling_once(s: Scenario) -> None:
    once = _reconcile(s, s.change, s.now)
    event(f"{s.change.status.phase} -> {once.phase}")
    twice = _reconcile(s, with_status(s.change, once), s.now)
    assert twice.to_json() == once.to_json()
    # What the controller writes is valid, and the trail stays within its bound.
    assert ChangeRequestStatus.model_validate(once.to_json()).to_json() == once.to_json()
    assert once.rollouts == s.change.status.rollouts


@settings(max_examples=200, deadline=None)
@given(
    scenarios(),
    st.integers(1, 60 * 24 * 4).map(lambda q: q / 4),
    st.lists(decisions, max_size=2),
    st.booleans(),
    st.sampled_from(["InProgress", "Succeeded", "Failed", None]),
    st.sampled_from([None, FITS, MISFITS]),
)
def test_a_terminal_phase_never_changes_later(
    s: Scenario,
    later: float,
    more_approvals: list[tuple[str | None, str]],
    cancel: bool,
    more_rollout: str | None,
    fit: Fit | None,
) -> None:
    once = _reconcile(s, s.change, s.now)
    if once.phase not in TERMINAL_PHASES:
        return
    change = with_status(s.change, once)
    change = with_spec(
        change,
        approvals=[a.to_json() for a in change.spec.approvals]
        + [approval(who, what) for who, what in more_approvals],
        cancel=change.spec.cancel or cancel,
    )
    if more_rollout:
        change = with_status(
            change,
            {
                "rollouts": [r.to_json() for r in once.rollouts]
                + [rollout(result=more_rollout, revision=9)]
            },
        )
    afterwards = reconcile(change, s.service, fit, s.validity, at(s.now + later))
    assert afterwards.phase is once.phase
    assert afterwards.approved_time == once.approved_time
    assert afterwards.audit_trail == once.audit_trail
    closed, closed_after = (find_condition(x.conditions, "Closed") for x in (once, afterwards))
    assert closed == closed_after


# Where time alone may take a phase, with nothing new written.
BY_TIME_ALONE = {ChangePhase.APPROVED: {ChangePhase.APPROVED, ChangePhase.EXPIRED}}


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.integers(1, 60 * 24 * 4).map(lambda q: q / 4))
def test_time_alone_only_expires_an_approved_change(s: Scenario, later: float) -> None:
    once = _reconcile(s, s.change, s.now)
    afterwards = _reconcile(s, with_status(s.change, once), s.now + later)
    assert once.phase is not None
    assert afterwards.phase in BY_TIME_ALONE.get(once.phase, {once.phase})
    if afterwards.phase is ChangePhase.EXPIRED and once.phase is ChangePhase.APPROVED:
        assert once.expiration_time is not None
        assert at(s.now + later) >= once.expiration_time
        assert afterwards.approved_time == once.approved_time
