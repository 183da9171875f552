"""The Incident lifecycle: from spec, status and clock to the status the controller writes.

    Triggered --first acknowledgement--> Acknowledged --resolution--> Resolved
        `--------------------resolution (a person, or AutoResolved)----^

`reconcile` is pure and level-based: the phase follows the spec (the webhook
stamps acknowledgements and resolutions), times are measured once and kept,
and reconciling twice gives what reconciling once gave.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from changegate.api.v1alpha1.common import AuditEntry, Condition, ConditionStatus
from changegate.api.v1alpha1.incident import (
    Acknowledgement,
    Incident,
    IncidentPhase,
    IncidentStatus,
)
from changegate.core.common import next_condition, seconds_between

OPERATOR = "changegate"
TIMELINE_LIMIT = 128

# Condition types; the phase is derived from them.
ACKNOWLEDGED = "Acknowledged"
RESOLVED = "Resolved"


@dataclass(frozen=True, slots=True)
class IncidentTimes:
    """When the incident was opened, acknowledged and resolved, and the two durations."""

    triggered: dt.datetime
    acknowledged: dt.datetime | None
    acknowledged_by: str | None
    resolved: dt.datetime | None
    time_to_acknowledge: int | None
    time_to_resolve: int | None


def phase_of(incident: Incident) -> IncidentPhase:
    """Resolved once it has a resolution, Acknowledged once anyone acknowledged, else Triggered."""
    if incident.spec.resolution is not None:
        return IncidentPhase.RESOLVED
    if incident.spec.acknowledgements:
        return IncidentPhase.ACKNOWLEDGED
    return IncidentPhase.TRIGGERED


def first_acknowledgement(incident: Incident) -> Acknowledgement | None:
    """The first acknowledgement (the list is append-only, so the first written)."""
    return next(iter(incident.spec.acknowledgements), None)


def alert_start(incident: Incident) -> dt.datetime | None:
    """When its alerts started: the earliest alert it lists, else the alert that opened it."""
    starts = [a.start_time for a in incident.status.alerts]
    if incident.spec.alert is not None and incident.spec.alert.start_time is not None:
        starts.append(incident.spec.alert.start_time)
    return min(starts, default=None)


def _resolved_time(incident: Incident, now: dt.datetime) -> dt.datetime | None:
    """When it was resolved: as first observed, else as stamped, else now (stamping missed)."""
    resolution = incident.spec.resolution
    if resolution is None:
        return None
    return incident.status.resolved_time or resolution.time or now


def times_of(incident: Incident, created: dt.datetime, now: dt.datetime) -> IncidentTimes:
    """The incident's times: acknowledge from creation, resolve from the alert's start."""
    triggered = incident.status.triggered_time or created
    ack = first_acknowledgement(incident)
    acknowledged = ack.time if ack else None
    resolved = _resolved_time(incident, now)
    started = alert_start(incident) or triggered
    return IncidentTimes(
        triggered=triggered,
        acknowledged=acknowledged,
        acknowledged_by=ack.user if ack else None,
        resolved=resolved,
        time_to_acknowledge=seconds_between(triggered, acknowledged) if acknowledged else None,
        time_to_resolve=seconds_between(started, resolved) if resolved else None,
    )


def _conditions(incident: Incident, generation: int | None, now: dt.datetime) -> list[Condition]:
    previous = incident.status.conditions
    ack = first_acknowledgement(incident)
    acked = (
        next_condition(
            previous, ACKNOWLEDGED, ConditionStatus.TRUE, "Acknowledged",
            f"acknowledged by {ack.user or 'someone'}", generation, now,
        )
        if ack
        else next_condition(
            previous, ACKNOWLEDGED, ConditionStatus.FALSE, "NotAcknowledged",
            "nobody has acknowledged it yet", generation, now,
        )
    )  # fmt: skip
    resolution = incident.spec.resolution
    resolved = (
        next_condition(
            previous, RESOLVED, ConditionStatus.TRUE, resolution.code.value,
            f"resolved by {resolution.resolved_by or 'someone'}: {resolution.note}", generation, now,
        )
        if resolution
        else next_condition(
            previous, RESOLVED, ConditionStatus.FALSE, "Open", "the incident is open",
            generation, now,
        )
    )  # fmt: skip
    return [acked, resolved]


def _transition(incident: Incident, phase: IncidentPhase, now: dt.datetime) -> list[AuditEntry]:
    """A timeline entry when the phase moves; none when it stays (reconciling twice)."""
    if incident.status.phase is phase or (
        incident.status.phase is None and phase is IncidentPhase.TRIGGERED
    ):
        return []
    if phase is IncidentPhase.ACKNOWLEDGED:
        ack = first_acknowledgement(incident)
        who = ack.user if ack and ack.user else OPERATOR
        return [AuditEntry(time=now, actor=who, action="Acknowledged", message="")]
    if phase is IncidentPhase.RESOLVED and incident.spec.resolution is not None:
        resolution = incident.spec.resolution
        who = resolution.resolved_by or OPERATOR
        message = f"{resolution.code.value}: {resolution.note}"[:1024]
        return [AuditEntry(time=now, actor=who, action="Resolved", message=message)]
    return [AuditEntry(time=now, actor=OPERATOR, action="Reopened", message="")]


def with_timeline(timeline: list[AuditEntry], entries: Iterable[AuditEntry]) -> list[AuditEntry]:
    """The timeline with entries appended; the oldest drop off past TIMELINE_LIMIT."""
    return [*timeline, *entries][-TIMELINE_LIMIT:]


def reconcile(incident: Incident, created: dt.datetime, now: dt.datetime) -> IncidentStatus:
    """The status the controller should write: phase, conditions, times and timeline."""
    phase = phase_of(incident)
    times = times_of(incident, created, now)
    generation = incident.metadata.generation
    return incident.status.model_copy(
        update={
            "observed_generation": generation,
            "conditions": _conditions(incident, generation, now),
            "phase": phase,
            "triggered_time": times.triggered,
            "acknowledged_time": times.acknowledged,
            "acknowledged_by": times.acknowledged_by,
            "resolved_time": times.resolved,
            "time_to_acknowledge_seconds": times.time_to_acknowledge,
            "time_to_resolve_seconds": times.time_to_resolve,
            "timeline": with_timeline(incident.status.timeline, _transition(incident, phase, now)),
        }
    )
