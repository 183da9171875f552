"""ChangeTemplates: whether a Standard change fits one, whether it counts, how often it was used.

`template_fit` is the rule that approves a Standard change at once; the
ChangeRequest reconcile (lifecycle) and promotion ask it. `template_status`
and `template_usage` give the template's own status; usage is counted from
the ChangeRequests that exist, never incremented, so it is level-based. A
selector's scope is recorded in status at activation, and only it counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from changegate.api.v1alpha1.changerequest import ChangeRequest, ChangeTarget
from changegate.api.v1alpha1.changetemplate import (
    ChangeTemplate,
    ChangeTemplateStatus,
    ScopedWorkload,
    TemplateChange,
)
from changegate.api.v1alpha1.common import ChangeType, ConditionStatus, Weekday, WorkloadKind
from changegate.core.change.images import ImageRef
from changegate.core.common import next_condition, parse_time

ACTIVE = "Active"
ACTIVATED_BY = "changegate.io/activated-by"
ACTIVATED_AT = "changegate.io/activated-at"

WorkloadImages = Mapping[tuple[str, str], Mapping[str, str]]
WorkloadLabels = Mapping[tuple[str, str], Mapping[str, str]]

# Indexed by datetime.weekday(); strftime("%A") would follow the process locale.
_WEEKDAYS = tuple(Weekday)


@dataclass(frozen=True, slots=True)
class Fit:
    """Whether a Standard change fits its template, and why (or why not)."""

    ok: bool
    why: str


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


def _template_refusal(
    change: ChangeRequest, template: ChangeTemplate, now: dt.datetime
) -> str | None:
    """Why the template as a whole cannot approve the change now, or None."""
    name = template.metadata.name
    if template.spec.service != change.spec.service:
        return f"template {name} is for service {template.spec.service}"
    if not template.spec.active:
        return f"template {name} is not active: a change manager must activate it"
    if template.spec.expiration_time and now >= template.spec.expiration_time:
        return f"template {name} expired at {template.spec.expiration_time.isoformat()}"
    try:
        in_window = _in_recurring_window(template, now)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # The schema only checks the zone's spelling; one bad template must not crash reconcile.
        zones = ", ".join(sorted({w.time_zone for w in template.spec.windows}))
        return f"template {name} names a time zone the operator does not know ({zones})"
    if not in_window:
        return f"outside the windows of template {name}"
    return None


def activation_time(template: ChangeTemplate) -> dt.datetime | None:
    """When the template was last activated, as the webhook stamped it."""
    return parse_time(template.metadata.annotations.get(ACTIVATED_AT))


def _recorded_scope(template: ChangeTemplate) -> set[tuple[str, str]]:
    """(kind, name) its selectors matched at the current activation; empty if not recorded."""
    status = template.status
    activated = activation_time(template)
    if activated is None or status.scope_activated_time != activated:
        return set()
    return {(w.kind.value, w.name) for w in status.scope}


def _in_scope(target: ChangeTarget, template: ChangeTemplate, labels: Mapping[str, str]) -> bool:
    """By name; or by a selector that matched it at activation and still matches it."""
    key = (target.kind.value, target.name)
    return any(
        w.kind == target.kind
        and (
            w.name == target.name
            if w.name
            else bool(
                w.selector and key in _recorded_scope(template) and w.selector.matches(dict(labels))
            )
        )
        for w in template.spec.workloads
    )


def _target_refusal(
    target: ChangeTarget,
    template: ChangeTemplate,
    running: WorkloadImages,
    labels: WorkloadLabels,
) -> str | None:
    """Why one target of the change is not what the template covers, or None."""
    name = template.metadata.name
    key = (target.kind.value, target.name)
    if not _in_scope(target, template, labels.get(key, {})):
        return (
            f"{target.kind.value}/{target.name} is outside the scope of template {name}"
            " (its name, or the workloads its selectors matched when it was activated)"
        )
    current = running.get(key)
    if current is None:
        return f"{target.kind.value}/{target.name} does not run yet, so nothing to compare"
    kinds = set(template.spec.allowed_changes)
    same = all(current.get(i.container) == i.image for i in target.images)
    same_repos = all(
        i.container in current
        and ImageRef.parse(current[i.container]).repository == ImageRef.parse(i.image).repository
        for i in target.images
    )
    if same and TemplateChange.CONFIGURATION_ONLY in kinds:
        return None
    if same_repos and not same and TemplateChange.IMAGE_UPDATE in kinds:
        return None
    return (
        f"{target.kind.value}/{target.name}: the change is not of a kind template {name} covers"
        f" ({', '.join(k.value for k in sorted(kinds)) or 'none'})"
    )


def template_fit(
    change: ChangeRequest,
    template: ChangeTemplate | None,
    running: WorkloadImages,
    workload_labels: WorkloadLabels,
    now: dt.datetime,
) -> Fit:
    """Whether a Standard change may be approved at once by its template."""
    ref = change.spec.template_ref
    if ref is None or template is None:
        return Fit(False, f"template {ref.name if ref else '(none)'} not found")
    refusal = _template_refusal(change, template, now) or next(
        (
            why
            for target in change.spec.targets
            if (why := _target_refusal(target, template, running, workload_labels))
        ),
        None,
    )
    if refusal is not None:
        return Fit(False, refusal)
    return Fit(True, f"fits template {template.metadata.name}: {template.spec.summary}")


def _activity(template: ChangeTemplate, now: dt.datetime) -> tuple[ConditionStatus, str, str]:
    spec = template.spec
    if not spec.active:
        return ConditionStatus.FALSE, "NotActivated", "a change manager must activate it"
    if spec.expiration_time and now >= spec.expiration_time:
        return (
            ConditionStatus.FALSE,
            "Expired",
            f"expired at {spec.expiration_time.isoformat()}",
        )
    who = template.metadata.annotations.get(ACTIVATED_BY, "a change manager")
    return ConditionStatus.TRUE, "Activated", f"activated by {who}"


@dataclass(frozen=True, slots=True)
class Usage:
    """How often a template approved a change, counted from the changes that exist."""

    count: int = 0
    last_time: dt.datetime | None = None
    last_change: str | None = None


def template_usage(template: ChangeTemplate, changes: Iterable[ChangeRequest]) -> Usage:
    """The Standard changes of the template's namespace that name it and were approved."""
    used = [
        c
        for c in changes
        if c.metadata.namespace == template.metadata.namespace
        and c.spec.type is ChangeType.STANDARD
        and c.spec.template_ref is not None
        and c.spec.template_ref.name == template.metadata.name
        and c.status.approved_time is not None
    ]
    if not used:
        return Usage()
    last = max(used, key=lambda c: (c.status.approved_time, c.metadata.name or ""))
    return Usage(len(used), last.status.approved_time, last.metadata.name)


def selector_matches(template: ChangeTemplate, workloads: WorkloadLabels) -> list[ScopedWorkload]:
    """The workloads (of its namespace, by (kind, name) -> labels) its selectors match now."""
    matched = {
        (kind, name)
        for (kind, name), labels in workloads.items()
        for w in template.spec.workloads
        if w.selector and w.kind.value == kind and w.selector.matches(dict(labels))
    }
    # Bounded like the status field; fewer workloads in scope only ever narrows it.
    return [ScopedWorkload(kind=WorkloadKind(k), name=n) for k, n in sorted(matched)][:256]


def _scope(template: ChangeTemplate, workloads: WorkloadLabels | None) -> dict[str, object]:
    """The scope fields of status: recorded once per activation, cleared when inactive."""
    activated = activation_time(template)
    status = template.status
    if not template.spec.active or activated is None:
        return {"scope": [], "scope_activated_time": None}
    if status.scope_activated_time == activated or workloads is None:
        return {}
    return {"scope": selector_matches(template, workloads), "scope_activated_time": activated}


def template_status(
    template: ChangeTemplate,
    now: dt.datetime,
    usage: Usage | None = None,
    workloads: WorkloadLabels | None = None,
) -> ChangeTemplateStatus:
    """Whether a template counts now, who activated it (stamped by the webhook), its usage,
    and the scope of its selectors, recorded from `workloads` at activation.

    Without `usage` the usage fields stay as they are; without `workloads` the scope.
    """
    status = template.status
    generation = template.metadata.generation
    state, reason, message = _activity(template, now)
    active = template.spec.active
    activated_at = parse_time(template.metadata.annotations.get(ACTIVATED_AT))
    update: dict[str, object] = {
        "observed_generation": generation,
        "conditions": [
            next_condition(status.conditions, ACTIVE, state, reason, message, generation, now)
        ],
        "activated_by": (
            template.metadata.annotations.get(ACTIVATED_BY) if active else status.activated_by
        ),
        "activated_time": activated_at if active and activated_at else status.activated_time,
    }
    update |= _scope(template, workloads)
    if usage is not None:
        update |= {
            "used_count": usage.count,
            "last_used_time": usage.last_time,
            "last_change_request": usage.last_change,
        }
    return status.model_copy(update=update)
