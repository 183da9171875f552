"""The DORA figures (dora.dev) of a service, and of a set of services, over a period.

Pure: the evidence (slim records, changes, incidents), a period, a scope and
a horizon in; DoraFigures out. `changegate report dora` prints them, the
controller puts the last 30 days in each ServiceOnCall's status, and the
metrics export them. The README's "Reports" section defines each figure.

A deployment is a production rollout that finished in the period (succeeded
or failed). It failed, and needed intervention, when its rollout failed, when
a rollback of its workload or an emergency fix of its service followed within
the horizon, or when an Incident (not a duplicate) confirmed it as its cause.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from changegate.core.report.evidence import (
    BREAK_GLASS,
    EMERGENCY,
    EVERYTHING,
    ROLLBACK,
    Change,
    Evidence,
    Incident,
    Period,
    Record,
    Scope,
)

DEFAULT_HORIZON = timedelta(hours=24)
ALL_SERVICES = "*"


class Bucket(StrEnum):
    """DORA's deployment frequency bucket: how often, on average, production is deployed."""

    DAILY = "Daily"
    """At least once a day."""
    WEEKLY = "Weekly"
    """At least once a week, less than daily."""
    MONTHLY = "Monthly"
    """At least once a month (30 days), less than weekly."""
    YEARLY = "Yearly"
    """Less than monthly, but at least once in the period."""
    NONE = "None"
    """No successful deployment in the period."""


class Failure(StrEnum):
    """Why a deployment counts as failed (the first that applies)."""

    ROLLOUT = "FailedRollout"
    ROLLBACK = "RolledBack"
    EMERGENCY_FIX = "EmergencyFix"
    INCIDENT = "CausedIncident"


@dataclass(frozen=True)
class DoraFigures:
    """The DORA figures of one service, or of a set of services (service "*")."""

    service: str
    deployments: int
    """Production deployments that finished in the period, succeeded or failed."""
    successful: int
    per_day: float
    per_week: float
    bucket: Bucket
    lead_time_median_seconds: float | None
    lead_time_p90_seconds: float | None
    failed: int
    change_fail_rate: float | None
    """failed / deployments; None without deployments."""
    recovery_median_seconds: float | None
    recovery_p90_seconds: float | None
    unrecovered: int
    """Failed deployments not yet recovered from."""
    rework: int
    rework_rate: float | None
    """rework / deployments; None without deployments."""


@dataclass(frozen=True)
class DoraReport:
    """Per-service figures and the figures of all of them together."""

    period: Period
    horizon: timedelta
    services: tuple[DoraFigures, ...]
    overall: DoraFigures


@dataclass(frozen=True)
class Outcome:
    """What the timeline says of one deployment in the period."""

    record: Record
    failure: Failure | None
    recovery_seconds: float | None
    rework: bool


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), interpolated linearly between ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def bucket(per_day: float, successful: int) -> Bucket:
    if successful == 0:
        return Bucket.NONE
    if per_day >= 1:
        return Bucket.DAILY
    if per_day * 7 >= 1:
        return Bucket.WEEKLY
    if per_day * 30 >= 1:
        return Bucket.MONTHLY
    return Bucket.YEARLY


def lead_time_seconds(record: Record) -> float | None:
    """From the commit to the production rollout finishing."""
    spec = record.spec
    if spec.lead_time_seconds is not None:
        return float(spec.lead_time_seconds)
    if spec.source is None or spec.source.commit_time is None:
        return None
    return (spec.finish_time - spec.source.commit_time).total_seconds()


def unplanned(record: Record) -> bool:
    """A rollback, a break-glass rollout or a rollout under an emergency change."""
    spec = record.spec
    return spec.admission in (ROLLBACK, BREAK_GLASS) or spec.change_type == EMERGENCY


def caused_incidents(incidents: Iterable[Incident]) -> dict[str, list[Incident]]:
    """Record name -> the incidents confirmed as caused by it; duplicates left out, so an
    incident reported twice marks its cause once."""
    caused: dict[str, list[Incident]] = defaultdict(list)
    for incident in incidents:
        if incident.spec.caused_by and not incident.duplicate:
            caused[incident.spec.caused_by].append(incident)
    return caused


def interventions(timeline: Sequence[Record], horizon: timedelta) -> dict[str, Failure]:
    """Record name -> rolled back or emergency-fixed, from one service's timeline."""
    found: dict[str, Failure] = {}
    last_of_workload: dict[tuple[str, str, str], Record] = {}
    last_in_namespace: dict[str, Record] = {}
    for record in timeline:
        spec = record.spec
        workload = (spec.namespace, spec.workload.kind, spec.workload.name)
        previous = last_of_workload.get(workload)
        if spec.admission == ROLLBACK and within(previous, record, horizon):
            found.setdefault(previous.name, Failure.ROLLBACK)  # type: ignore[union-attr]
        before = last_in_namespace.get(spec.namespace)
        fix = spec.admission == BREAK_GLASS or spec.change_type == EMERGENCY
        if fix and spec.admission != ROLLBACK and within(before, record, horizon):
            found.setdefault(before.name, Failure.EMERGENCY_FIX)  # type: ignore[union-attr]
        last_of_workload[workload] = record
        last_in_namespace[spec.namespace] = record
    return found


def within(earlier: Record | None, later: Record, horizon: timedelta) -> bool:
    if earlier is None:
        return False
    return later.spec.start_time - earlier.spec.finish_time <= horizon


def failure_of(
    record: Record, intervened: dict[str, Failure], caused: dict[str, list[Incident]]
) -> Failure | None:
    if not record.succeeded:
        return Failure.ROLLOUT
    if record.name in intervened:
        return intervened[record.name]
    if record.name in caused:
        return Failure.INCIDENT
    return None


def recovery_seconds(
    index: int, timeline: Sequence[Record], failure: Failure, causes: Sequence[Incident]
) -> float | None:
    """From the failed deployment finishing to the next successful deployment of the service
    in its namespace, or, for an incident it caused, to the incident's resolution."""
    failed = timeline[index]
    if failure is Failure.INCIDENT:
        ends = [i.resolved for i in causes if i.resolved is not None]
        end = min(ends) if ends else None
    else:
        end = next_success(index, timeline)
    if end is None:
        return None
    return max((end - failed.spec.finish_time).total_seconds(), 0.0)


def next_success(index: int, timeline: Sequence[Record]) -> datetime | None:
    failed = timeline[index].spec
    for later in timeline[index + 1 :]:
        if later.succeeded and later.spec.namespace == failed.namespace:
            return later.spec.finish_time
    return None


def is_rework(
    record: Record, incidents: Sequence[Incident], changes: dict[tuple[str, str], Change]
) -> bool:
    """An unplanned deployment made for an incident: one open when it started, or the one
    its emergency change names."""
    if not unplanned(record):
        return False
    ref = record.spec.change_request
    change = changes.get((ref.namespace or "", ref.name)) if ref else None
    if change is not None and change.spec.incident_ref is not None:
        return True
    start = record.spec.start_time
    return any(
        not incident.duplicate
        and incident.started is not None
        and incident.started <= start
        and (incident.resolved is None or start <= incident.resolved)
        for incident in incidents
    )


@dataclass(frozen=True)
class Context:
    """What every service's timeline is read against."""

    period: Period
    horizon: timedelta
    caused: dict[str, list[Incident]]
    incidents_of: dict[str, list[Incident]]
    changes: dict[tuple[str, str], Change]


def outcomes(timeline: Sequence[Record], context: Context) -> list[Outcome]:
    """The deployments of one service's timeline (sorted by finish) that fall in the period."""
    intervened = interventions(timeline, context.horizon)
    found = []
    for index, record in enumerate(timeline):
        if record.spec.finish_time not in context.period:
            continue
        failure = failure_of(record, intervened, context.caused)
        recovery = (
            None
            if failure is None
            else recovery_seconds(index, timeline, failure, context.caused.get(record.name, []))
        )
        incidents = context.incidents_of.get(record.spec.service, [])
        found.append(
            Outcome(record, failure, recovery, is_rework(record, incidents, context.changes))
        )
    return found


def figures(service: str, found: Sequence[Outcome], period: Period) -> DoraFigures:
    """The figures of a set of deployment outcomes."""
    deployments = len(found)
    successful = sum(1 for o in found if o.record.succeeded)
    per_day = successful / period.days if period.days > 0 else 0.0
    leads = [
        t for o in found if o.record.succeeded if (t := lead_time_seconds(o.record)) is not None
    ]
    failed = [o for o in found if o.failure is not None]
    recoveries = [o.recovery_seconds for o in failed if o.recovery_seconds is not None]
    rework = sum(1 for o in found if o.rework)
    return DoraFigures(
        service=service,
        deployments=deployments,
        successful=successful,
        per_day=per_day,
        per_week=per_day * 7,
        bucket=bucket(per_day, successful),
        lead_time_median_seconds=percentile(leads, 50),
        lead_time_p90_seconds=percentile(leads, 90),
        failed=len(failed),
        change_fail_rate=len(failed) / deployments if deployments else None,
        recovery_median_seconds=percentile(recoveries, 50),
        recovery_p90_seconds=percentile(recoveries, 90),
        unrecovered=len(failed) - len(recoveries),
        rework=rework,
        rework_rate=rework / deployments if deployments else None,
    )


def timelines(records: Iterable[Record], scope: Scope) -> dict[str, list[Record]]:
    """The records in scope by service, each sorted by finish time (then start, name)."""
    by_service: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if scope.covers(record.spec):
            by_service[record.spec.service].append(record)
    for timeline in by_service.values():
        timeline.sort(key=lambda r: (r.spec.finish_time, r.spec.start_time, r.name))
    return by_service


def dora_report(
    evidence: Evidence,
    period: Period,
    scope: Scope = EVERYTHING,
    horizon: timedelta = DEFAULT_HORIZON,
) -> DoraReport:
    """The DORA figures of every service in scope over the period, and of them all together.
    Services named in the scope but without deployments get figures of zero."""
    incidents_of: dict[str, list[Incident]] = defaultdict(list)
    for incident in evidence.incidents:
        incidents_of[incident.spec.service].append(incident)
    context = Context(
        period,
        horizon,
        caused_incidents(evidence.incidents),
        incidents_of,
        {change.key: change for change in evidence.changes},
    )
    by_service = timelines(evidence.records, scope)
    names = sorted(set(by_service) | (scope.services or frozenset()))
    every: list[Outcome] = []
    services = []
    for name in names:
        found = outcomes(by_service.get(name, []), context)
        every.extend(found)
        services.append(figures(name, found, period))
    return DoraReport(period, horizon, tuple(services), figures(ALL_SERVICES, every, period))
