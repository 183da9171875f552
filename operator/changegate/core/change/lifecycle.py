"""The ChangeRequest lifecycle: from spec, rollouts, policy, template and clock to status.

    Pending --approvals--> Approved --rollout admitted--> InProgress --> Completed | Failed
       |--fits an active template--> Approved          Approved --window passed--> Expired
       |--reject--> Rejected    |--cancel--> Cancelled

`reconcile` is pure and level-based: it computes the whole desired status from
what is observed, so reconciling twice gives what reconciling once gave. The
phase comes from `PHASE_RULES`, a chain of small named rules tried in order
(the first that speaks decides), then `expire_unused`; the conditions, lead
time and audit trail follow from that verdict. `expiry_due` tells the
controller's scheduler when an approved change must be looked at again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from changegate.api.v1alpha1.changerequest import (
    TERMINAL_PHASES,
    ChangePhase,
    ChangeRequest,
    ChangeRequestStatus,
    RolloutResult,
)
from changegate.api.v1alpha1.common import (
    AuditEntry,
    ChangeType,
    Condition,
    ConditionStatus,
    find_condition,
)
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.templates import Fit, template_fit
from changegate.core.common import next_condition, seconds_between

__all__ = ["AUDIT_LIMIT", "PHASE_RULES", "Fit", "Observed", "Verdict", "reconcile", "template_fit"]

OPERATOR = "changegate"
AUDIT_LIMIT = 64

# Condition types; the phase is derived from them.
APPROVED = "Approved"
ROLLED_OUT = "RolledOut"
CLOSED = "Closed"

# Phases in which the change holds its approval (Expired holds it too, when it had one).
_APPROVED_PHASES = frozenset(
    {ChangePhase.APPROVED, ChangePhase.IN_PROGRESS, ChangePhase.COMPLETED, ChangePhase.FAILED}
)
_ROLLOUT_PHASES = frozenset({ChangePhase.IN_PROGRESS, ChangePhase.COMPLETED, ChangePhase.FAILED})
_ROLLOUT_WHY = {
    ChangePhase.IN_PROGRESS: "rollout in progress",
    ChangePhase.COMPLETED: "every target rolled out",
    ChangePhase.FAILED: "a rollout failed",
}


@dataclass(frozen=True, slots=True)
class Observed:
    """What a rule may look at: the change as it is, its service's policy, its template fit."""

    change: ChangeRequest
    facts: ChangeFacts
    policy: ServicePolicy | None
    fit: Fit | None
    previous: ChangePhase
    rollout_phase: ChangePhase | None

    @classmethod
    def of(cls, change: ChangeRequest, policy: ServicePolicy | None, fit: Fit | None) -> Observed:
        return cls(
            change,
            ChangeFacts.from_model(change),
            policy,
            fit,
            change.status.phase or ChangePhase.PENDING,
            _rollout_phase(change),
        )

    @property
    def required(self) -> int | None:
        return self.policy.required_approvals if self.policy else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The phase a rule decided, and why (the message conditions and the trail carry)."""

    phase: ChangePhase
    why: str


Rule = Callable[[Observed], Verdict | None]


def _rollout_phase(change: ChangeRequest) -> ChangePhase | None:
    rollouts = change.status.rollouts
    if not rollouts:
        return None
    if any(r.result is RolloutResult.FAILED for r in rollouts):
        return ChangePhase.FAILED
    done = {(r.kind, r.name) for r in rollouts if r.result is RolloutResult.SUCCEEDED}
    if all((t.kind, t.name) in done for t in change.spec.targets):
        return ChangePhase.COMPLETED
    return ChangePhase.IN_PROGRESS


# -- the phase rules, in the order PHASE_RULES tries them ----------------------


def keep_terminal(o: Observed) -> Verdict | None:
    """A closed change stays closed, with the message it closed with."""
    if o.previous not in TERMINAL_PHASES:
        return None
    condition = find_condition(o.change.status.conditions, CLOSED)
    kept = condition is not None and condition.reason == o.previous.value
    return Verdict(o.previous, condition.message if condition and kept else o.previous.value)


def follow_rollouts(o: Observed) -> Verdict | None:
    """Once a rollout is recorded, the rollouts say where the change is."""
    if o.rollout_phase is None:
        return None
    return Verdict(o.rollout_phase, _ROLLOUT_WHY[o.rollout_phase])


def honour_cancel(o: Observed) -> Verdict | None:
    if not o.facts.cancelled:
        return None
    return Verdict(ChangePhase.CANCELLED, "cancelled before its rollout started")


def keep_approval(o: Observed) -> Verdict | None:
    """An approval stands: the spec is frozen and approvals are append-only."""
    if o.previous is not ChangePhase.APPROVED:
        return None
    condition = find_condition(o.change.status.conditions, APPROVED)
    return Verdict(ChangePhase.APPROVED, (condition.message if condition else "") or "approved")


def admit_emergency(o: Observed) -> Verdict | None:
    if o.change.spec.type is not ChangeType.EMERGENCY:
        return None
    return Verdict(
        ChangePhase.APPROVED, "emergency change: admitted at once, to be reviewed afterwards"
    )


def follow_template(o: Observed) -> Verdict | None:
    """A Standard change is approved by its template, or waits for one that fits."""
    if o.change.spec.type is not ChangeType.STANDARD:
        return None
    if o.fit is not None and o.fit.ok:
        return Verdict(ChangePhase.APPROVED, o.fit.why)
    return Verdict(ChangePhase.PENDING, o.fit.why if o.fit else "waiting for its template")


def honour_rejection(o: Observed) -> Verdict | None:
    if not o.facts.rejected_by:
        return None
    return Verdict(ChangePhase.REJECTED, f"rejected by {', '.join(o.facts.rejected_by)}")


def count_approvals(o: Observed) -> Verdict | None:
    approvers = list(o.facts.approvers)
    if o.required is None or len(approvers) < o.required:
        return None
    return Verdict(
        ChangePhase.APPROVED,
        f"{len(approvers)} of {o.required} approvals: {', '.join(approvers)}",
    )


def need_service(o: Observed) -> Verdict | None:
    if o.policy is not None:
        return None
    return Verdict(
        ChangePhase.PENDING, f"no ServiceOnCall declares service {o.change.spec.service}"
    )


def await_approvals(o: Observed) -> Verdict:
    """The last word: a Normal change waits for its approvers."""
    return Verdict(
        ChangePhase.PENDING, f"pending approval {len(o.facts.approvers)} of {o.required}"
    )


PHASE_RULES: tuple[Rule, ...] = (
    keep_terminal,
    follow_rollouts,
    honour_cancel,
    keep_approval,
    admit_emergency,
    follow_template,
    honour_rejection,
    count_approvals,
    need_service,
)


def decide_phase(o: Observed) -> Verdict:
    """The first rule of PHASE_RULES that speaks decides; otherwise the change waits."""
    for rule in PHASE_RULES:
        verdict = rule(o)
        if verdict is not None:
            return verdict
    return await_approvals(o)


# -- after the phase: approval time, expiry, conditions, lead time, trail ------


def approval_time(o: Observed, verdict: Verdict, now: dt.datetime) -> dt.datetime | None:
    """When the change became approved.

    Also stamped when a rollout is recorded before the change was first seen
    approved (an emergency raised after the fact), or an Approved status lacks
    the time: without it the expiry would move with every reconcile and never come.
    """
    stamped = o.change.status.approved_time
    if verdict.phase in _APPROVED_PHASES and o.previous not in TERMINAL_PHASES:
        return stamped or now
    return stamped


def expire_unused(
    o: Observed,
    verdict: Verdict,
    approved_time: dt.datetime | None,
    validity_seconds: int,
    now: dt.datetime,
) -> tuple[Verdict, dt.datetime | None]:
    """An approved change expires at its window's end, or after the validity period."""
    if verdict.phase is not ChangePhase.APPROVED:
        return verdict, o.change.status.expiration_time
    window = o.change.spec.window
    expiration = (window.end_time if window else None) or (approved_time or now) + dt.timedelta(
        seconds=validity_seconds
    )
    if now >= expiration:
        return Verdict(ChangePhase.EXPIRED, f"not used before {expiration.isoformat()}"), expiration
    return verdict, expiration


def _approved_condition(
    o: Observed, verdict: Verdict, approval_why: str, approved: bool, now: dt.datetime
) -> Condition:
    status = ConditionStatus.TRUE if approved else ConditionStatus.FALSE
    reason = "Approved" if approved else verdict.phase.value
    if verdict.phase in (ChangePhase.APPROVED, ChangePhase.PENDING, ChangePhase.REJECTED):
        message = verdict.why
    else:
        # While its status and reason stay, the condition keeps the message it had.
        old = find_condition(o.change.status.conditions, APPROVED)
        kept = old.message if old and old.status is status and old.reason == reason else ""
        message = kept or (approval_why if approved else verdict.why)
    return _condition(o, APPROVED, status, reason, message, now)


def _rolled_out_condition(o: Observed, verdict: Verdict, now: dt.datetime) -> Condition:
    phase = verdict.phase
    status = {
        ChangePhase.COMPLETED: ConditionStatus.TRUE,
        ChangePhase.FAILED: ConditionStatus.FALSE,
    }.get(phase, ConditionStatus.UNKNOWN)
    reason = {
        ChangePhase.COMPLETED: "Completed",
        ChangePhase.FAILED: "Failed",
        ChangePhase.IN_PROGRESS: "InProgress",
    }.get(phase, "NotStarted")
    message = verdict.why if phase in _ROLLOUT_PHASES else "no rollout yet"
    return _condition(o, ROLLED_OUT, status, reason, message, now)


def _closed_condition(o: Observed, verdict: Verdict, now: dt.datetime) -> Condition:
    closed = verdict.phase in TERMINAL_PHASES
    status = ConditionStatus.TRUE if closed else ConditionStatus.FALSE
    return _condition(o, CLOSED, status, verdict.phase.value, verdict.why, now)


def _condition(
    o: Observed, type_: str, status: ConditionStatus, reason: str, message: str, now: dt.datetime
) -> Condition:
    return next_condition(
        o.change.status.conditions,
        type_,
        status,
        reason,
        message,
        o.change.metadata.generation,
        now,
    )


def lead_time(change: ChangeRequest, phase: ChangePhase) -> int | None:
    """Seconds from the commit to the last rollout's finish, once the change completed."""
    status, source = change.status, change.spec.source
    if phase is not ChangePhase.COMPLETED or not source or not source.commit_time:
        return status.lead_time_seconds
    finishes = [r.finish_time for r in status.rollouts if r.finish_time]
    return (
        seconds_between(source.commit_time, max(finishes)) if finishes else status.lead_time_seconds
    )


def audit_trail(o: Observed, verdict: Verdict, now: dt.datetime) -> list[AuditEntry]:
    """The trail with an entry for a new phase (or a first one), the oldest dropping off."""
    trail = list(o.change.status.audit_trail)
    if verdict.phase is not o.previous or not trail:
        trail.append(
            AuditEntry(
                time=now, actor=OPERATOR, action=verdict.phase.value, message=verdict.why[:1024]
            )
        )
    return trail[-AUDIT_LIMIT:]


def reconcile(
    change: ChangeRequest,
    policy: ServicePolicy | None,
    fit: Fit | None,
    validity_seconds: int,
    now: dt.datetime,
) -> ChangeRequestStatus:
    """The status the change should have now."""
    o = Observed.of(change, policy, fit)
    decided = decide_phase(o)
    approved_time = approval_time(o, decided, now)
    verdict, expiration = expire_unused(o, decided, approved_time, validity_seconds, now)
    approved = verdict.phase in _APPROVED_PHASES or (
        verdict.phase is ChangePhase.EXPIRED and approved_time is not None
    )
    status = change.status
    keeps_expiration = verdict.phase in (ChangePhase.APPROVED, ChangePhase.EXPIRED)
    return status.model_copy(
        update={
            "observed_generation": change.metadata.generation,
            "phase": verdict.phase,
            "conditions": [
                _approved_condition(o, verdict, decided.why, approved, now),
                _rolled_out_condition(o, verdict, now),
                _closed_condition(o, verdict, now),
            ],
            "approval_count": len(o.facts.approvers),
            "required_approvals": o.required if change.spec.type is ChangeType.NORMAL else None,
            "approved_by": list(o.facts.approvers),
            "approved_time": approved_time if approved else status.approved_time,
            "expiration_time": expiration if keeps_expiration else status.expiration_time,
            "lead_time_seconds": lead_time(change, verdict.phase),
            "audit_trail": audit_trail(o, verdict, now),
        }
    )


def expiry_due(change: ChangeRequest) -> dt.datetime | None:
    """When an approved change must be reconciled again to expire, or None: nothing is due."""
    if change.status.phase is not ChangePhase.APPROVED:
        return None
    return change.status.expiration_time
