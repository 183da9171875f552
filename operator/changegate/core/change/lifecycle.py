"""The ChangeRequest lifecycle: from spec, rollouts, policy, template and clock to status.

    Pending --approvals--> Approved --rollout admitted--> InProgress --> Completed | Failed
       |--fits an active template--> Approved          Approved --window passed--> Expired
       |--reject--> Rejected    |--cancel--> Cancelled

`reconcile` is pure and level-based: it computes the whole desired status from
what is observed, so reconciling twice gives what reconciling once gave.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from changegate.api.v1alpha1.changerequest import (
    TERMINAL_PHASES,
    ChangePhase,
    ChangeRequest,
    ChangeRequestStatus,
    RolloutResult,
)
from changegate.api.v1alpha1.changetemplate import (
    ChangeTemplate,
    ChangeTemplateStatus,
    TemplateChange,
)
from changegate.api.v1alpha1.common import (
    AuditEntry,
    ChangeType,
    Condition,
    ConditionStatus,
    Weekday,
)
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.images import ImageRef

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


@dataclass(frozen=True, slots=True)
class Fit:
    """Whether a Standard change fits its template, and why (or why not)."""

    ok: bool
    why: str


WorkloadImages = Mapping[tuple[str, str], Mapping[str, str]]


# Indexed by datetime.weekday(); strftime("%A") would follow the process locale.
_WEEKDAYS = tuple(Weekday)


def _in_recurring_window(template: ChangeTemplate, now: dt.datetime) -> bool:
    """Whether `now` falls in one of the template's weekly windows (in each window's zone).

    Raises (ZoneInfoNotFoundError, ValueError, OSError) for a zone tzdata does not hold.
    """
    if not template.spec.windows:
        return True
    for window in template.spec.windows:
        local = now.astimezone(ZoneInfo(window.time_zone))
        clock = local.strftime("%H:%M")
        if _WEEKDAYS[local.weekday()] in window.days and window.start_at <= clock < window.end_at:
            return True
    return False


def template_fit(
    change: ChangeRequest,
    template: ChangeTemplate | None,
    running: WorkloadImages,
    workload_labels: Mapping[tuple[str, str], Mapping[str, str]],
    now: dt.datetime,
) -> Fit:
    """Whether a Standard change may be approved at once by its template."""
    ref = change.spec.template_ref
    if ref is None or template is None:
        return Fit(False, f"template {ref.name if ref else '(none)'} not found")
    name = template.metadata.name
    if template.spec.service != change.spec.service:
        return Fit(False, f"template {name} is for service {template.spec.service}")
    if not template.spec.active:
        return Fit(False, f"template {name} is not active: a change manager must activate it")
    if template.spec.expiration_time and now >= template.spec.expiration_time:
        return Fit(False, f"template {name} expired at {template.spec.expiration_time.isoformat()}")
    try:
        in_window = _in_recurring_window(template, now)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # The schema only checks the zone's spelling; one bad template must not crash reconcile.
        zones = ", ".join(sorted({w.time_zone for w in template.spec.windows}))
        return Fit(False, f"template {name} names a time zone the operator does not know ({zones})")
    if not in_window:
        return Fit(False, f"outside the windows of template {name}")
    for target in change.spec.targets:
        key = (target.kind.value, target.name)
        in_scope = any(
            w.kind == target.kind
            and (
                w.name == target.name
                if w.name
                else bool(w.selector and w.selector.matches(dict(workload_labels.get(key, {}))))
            )
            for w in template.spec.workloads
        )
        if not in_scope:
            return Fit(
                False, f"{target.kind.value}/{target.name} is outside the scope of template {name}"
            )
        current = running.get(key)
        if current is None:
            return Fit(
                False, f"{target.kind.value}/{target.name} does not run yet, so nothing to compare"
            )
        kinds = set(template.spec.allowed_changes)
        same = all(current.get(i.container) == i.image for i in target.images)
        same_repos = all(
            i.container in current
            and ImageRef.parse(current[i.container]).repository
            == ImageRef.parse(i.image).repository
            for i in target.images
        )
        if same and TemplateChange.CONFIGURATION_ONLY in kinds:
            continue
        if same_repos and not same and TemplateChange.IMAGE_UPDATE in kinds:
            continue
        return Fit(
            False,
            f"{target.kind.value}/{target.name}: the change is not of a kind template {name} covers"
            f" ({', '.join(k.value for k in sorted(kinds)) or 'none'})",
        )
    return Fit(True, f"fits template {name}: {template.spec.summary}")


def _condition(
    previous: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: dt.datetime,
) -> Condition:
    old = next((c for c in previous if c.type == type_), None)
    changed = old is None or old.status != status
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:1024],
        observed_generation=generation,
        last_transition_time=now if changed or old is None else old.last_transition_time,
    )


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


def _seconds(a: dt.datetime, b: dt.datetime) -> int:
    return max(0, int((b - a).total_seconds()))


def reconcile(
    change: ChangeRequest,
    policy: ServicePolicy | None,
    fit: Fit | None,
    validity_seconds: int,
    now: dt.datetime,
) -> ChangeRequestStatus:
    """The status the change should have now."""
    status = change.status
    facts = ChangeFacts.from_model(change)
    previous = status.phase or ChangePhase.PENDING
    generation = change.metadata.generation
    required = policy.required_approvals if policy else None
    approved_by = list(facts.approvers)
    approved_time = status.approved_time

    phase: ChangePhase
    why: str
    rollout_phase = _rollout_phase(change)
    if previous in TERMINAL_PHASES:
        phase, why = previous, _closing_message(status, previous)
    elif rollout_phase is not None:
        phase = rollout_phase
        why = {
            ChangePhase.IN_PROGRESS: "rollout in progress",
            ChangePhase.COMPLETED: "every target rolled out",
            ChangePhase.FAILED: "a rollout failed",
        }[rollout_phase]
    elif facts.cancelled:
        phase, why = ChangePhase.CANCELLED, "cancelled before its rollout started"
    elif previous is ChangePhase.APPROVED:
        # An approval stands: the spec is frozen and approvals are append-only.
        phase, why = previous, _approved_message(status) or "approved"
    elif change.spec.type is ChangeType.EMERGENCY:
        phase, why = (
            ChangePhase.APPROVED,
            "emergency change: admitted at once, to be reviewed afterwards",
        )
    elif change.spec.type is ChangeType.STANDARD:
        if fit is not None and fit.ok:
            phase, why = ChangePhase.APPROVED, fit.why
        else:
            phase, why = ChangePhase.PENDING, fit.why if fit else "waiting for its template"
    else:
        if facts.rejected_by:
            phase, why = ChangePhase.REJECTED, f"rejected by {', '.join(facts.rejected_by)}"
        elif required is not None and len(approved_by) >= required:
            phase, why = (
                ChangePhase.APPROVED,
                f"{len(approved_by)} of {required} approvals: {', '.join(approved_by)}",
            )
        elif policy is None:
            phase, why = (
                ChangePhase.PENDING,
                f"no ServiceOnCall declares service {change.spec.service}",
            )
        else:
            phase, why = ChangePhase.PENDING, f"pending approval {len(approved_by)} of {required}"

    if phase in _APPROVED_PHASES and previous not in TERMINAL_PHASES:
        # Also when a rollout is recorded before the change was first seen approved (an
        # emergency raised after the fact), or an Approved status lacks the time: without
        # it the expiry below would move with every reconcile and never come.
        approved_time = approved_time or now
    approval_why = why
    expiration = status.expiration_time
    if phase is ChangePhase.APPROVED:
        window_end = change.spec.window.end_time if change.spec.window else None
        expiration = window_end or (approved_time or now) + dt.timedelta(seconds=validity_seconds)
        if now >= expiration:
            phase, why = ChangePhase.EXPIRED, f"not used before {expiration.isoformat()}"

    approved = phase in _APPROVED_PHASES or (
        phase is ChangePhase.EXPIRED and approved_time is not None
    )
    approved_status = ConditionStatus.TRUE if approved else ConditionStatus.FALSE
    approved_reason = "Approved" if approved else phase.value
    conditions = [
        _condition(
            status.conditions,
            APPROVED,
            approved_status,
            approved_reason,
            why
            if phase in (ChangePhase.APPROVED, ChangePhase.PENDING, ChangePhase.REJECTED)
            else _kept_message(status, approved_status, approved_reason)
            or (approval_why if approved else why),
            generation,
            now,
        ),
        _condition(
            status.conditions,
            ROLLED_OUT,
            {
                ChangePhase.COMPLETED: ConditionStatus.TRUE,
                ChangePhase.FAILED: ConditionStatus.FALSE,
            }.get(phase, ConditionStatus.UNKNOWN),
            {
                ChangePhase.COMPLETED: "Completed",
                ChangePhase.FAILED: "Failed",
                ChangePhase.IN_PROGRESS: "InProgress",
            }.get(phase, "NotStarted"),
            why
            if phase in (ChangePhase.IN_PROGRESS, ChangePhase.COMPLETED, ChangePhase.FAILED)
            else "no rollout yet",
            generation,
            now,
        ),
        _condition(
            status.conditions,
            CLOSED,
            ConditionStatus.TRUE if phase in TERMINAL_PHASES else ConditionStatus.FALSE,
            phase.value,
            why,
            generation,
            now,
        ),
    ]

    lead_time = status.lead_time_seconds
    source = change.spec.source
    if phase is ChangePhase.COMPLETED and source and source.commit_time:
        finishes = [r.finish_time for r in status.rollouts if r.finish_time]
        if finishes:
            lead_time = _seconds(source.commit_time, max(finishes))

    trail = list(status.audit_trail)
    if phase is not previous or not trail:
        trail.append(AuditEntry(time=now, actor=OPERATOR, action=phase.value, message=why[:1024]))
    trail = trail[-AUDIT_LIMIT:]

    return status.model_copy(
        update={
            "observed_generation": generation,
            "phase": phase,
            "conditions": conditions,
            "approval_count": len(approved_by),
            "required_approvals": required if change.spec.type is ChangeType.NORMAL else None,
            "approved_by": approved_by,
            "approved_time": approved_time if approved else status.approved_time,
            "expiration_time": expiration
            if phase in (ChangePhase.APPROVED, ChangePhase.EXPIRED)
            else status.expiration_time,
            "lead_time_seconds": lead_time,
            "audit_trail": trail,
        }
    )


def _kept_message(
    status: ChangeRequestStatus, condition_status: ConditionStatus, reason: str
) -> str:
    """The Approved condition's message, while its status and reason stay as they were."""
    condition = next((c for c in status.conditions if c.type == APPROVED), None)
    if condition and condition.status is condition_status and condition.reason == reason:
        return condition.message
    return ""


def _approved_message(status: ChangeRequestStatus) -> str:
    condition = next((c for c in status.conditions if c.type == APPROVED), None)
    return condition.message if condition else ""


def _closing_message(status: ChangeRequestStatus, phase: ChangePhase) -> str:
    condition = next((c for c in status.conditions if c.type == CLOSED), None)
    return condition.message if condition and condition.reason == phase.value else phase.value


ACTIVE = "Active"
ACTIVATED_BY = "changegate.io/activated-by"
ACTIVATED_AT = "changegate.io/activated-at"


def template_status(template: ChangeTemplate, now: dt.datetime) -> ChangeTemplateStatus:
    """Whether a template counts now, and who activated it (stamped by the webhook)."""
    status = template.status
    spec = template.spec
    annotations = template.metadata.annotations
    if not spec.active:
        state, reason, message = (
            ConditionStatus.FALSE,
            "NotActivated",
            "a change manager must activate it",
        )
    elif spec.expiration_time and now >= spec.expiration_time:
        state, reason, message = (
            ConditionStatus.FALSE,
            "Expired",
            f"expired at {spec.expiration_time.isoformat()}",
        )
    else:
        who = annotations.get(ACTIVATED_BY, "a change manager")
        state, reason, message = ConditionStatus.TRUE, "Activated", f"activated by {who}"
    activated_at = annotations.get(ACTIVATED_AT)
    return status.model_copy(
        update={
            "observed_generation": template.metadata.generation,
            "conditions": [
                _condition(
                    status.conditions,
                    ACTIVE,
                    state,
                    reason,
                    message,
                    template.metadata.generation,
                    now,
                )
            ],
            "activated_by": annotations.get(ACTIVATED_BY) if spec.active else status.activated_by,
            "activated_time": (
                dt.datetime.fromisoformat(activated_at.replace("Z", "+00:00"))
                if spec.active and activated_at
                else status.activated_time
            ),
        }
    )
