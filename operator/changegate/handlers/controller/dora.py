"""ServiceOnCall status.dora and the DORA gauges: each service's last 30 days, kept current.

The scheduler (handlers/controller/schedule.py) asks `dora_dues` which services
are due: one whose figures are an hour old, one with a DeploymentRecord or a
confirmed incident cause newer than its figures, and one whose gauges this
process has not exported yet (after a restart). `refresh_dora` gathers the
service's evidence from the indexes, has core.report compute the figures, writes
them to status.dora and sets the gauges. Nothing is recomputed per event.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Mapping

from prometheus_client import Gauge

from changegate.api.v1alpha1 import ServiceOnCall
from changegate.api.v1alpha1.serviceoncall import DeploymentFrequency, DoraMetrics
from changegate.core.report.dora import DEFAULT_HORIZON, DoraFigures, dora_report
from changegate.core.report.evidence import Change, Evidence, Incident, Period, Record, Scope
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.state import ControllerState
from changegate.metrics import (
    DORA_CHANGE_FAIL_RATE,
    DORA_DEPLOYMENTS,
    DORA_DEPLOYMENTS_PER_WEEK,
    DORA_FAILED_DEPLOYMENTS,
    DORA_LEAD_TIME,
    DORA_RECOVERY_TIME,
    DORA_REWORK_RATE,
)

PERIOD = dt.timedelta(days=30)
REFRESH = dt.timedelta(hours=1)
NOW = dt.datetime.min.replace(tzinfo=dt.UTC)  # a due time that is always past

# Services whose gauges this process has set: the gauges live in memory, so a
# restarted controller exports every service again at once.
exported: set[str] = set()


def whole_seconds(value: float | None) -> int | None:
    return None if value is None else round(value)


def percent(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)


def dora_status(figures: DoraFigures, now: dt.datetime) -> DoraMetrics:
    """The figures of one service as its ServiceOnCall's status.dora shows them."""
    return DoraMetrics(
        period_seconds=int(PERIOD.total_seconds()),
        horizon_seconds=int(DEFAULT_HORIZON.total_seconds()),
        computed_time=now.replace(microsecond=0),
        deployments=figures.deployments,
        successful_deployments=figures.successful,
        deployments_per_week=round(figures.per_week, 2),
        deployment_frequency=DeploymentFrequency(figures.bucket.value),
        failed_deployments=figures.failed,
        change_fail_percent=percent(figures.change_fail_rate),
        median_lead_time_seconds=whole_seconds(figures.lead_time_median_seconds),
        p90_lead_time_seconds=whole_seconds(figures.lead_time_p90_seconds),
        median_recovery_time_seconds=whole_seconds(figures.recovery_median_seconds),
        p90_recovery_time_seconds=whole_seconds(figures.recovery_p90_seconds),
        unrecovered_deployments=figures.unrecovered,
        rework_deployments=figures.rework,
        rework_percent=percent(figures.rework_rate),
    )


def changes_behind(records: Iterable[Record], indexes: Indexes) -> tuple[Change, ...]:
    """The ChangeRequests the records name (rework reads their incidentRef)."""
    found = []
    for record in records:
        ref = record.spec.change_request
        change = indexes.change(ref.namespace or "", ref.name) if ref else None
        if change is not None:
            found.append(Change.model_validate(change.to_json()))
    return tuple(found)


def evidence_of(service: str, indexes: Indexes, since: dt.datetime) -> Evidence:
    """What the service's figures read: its production records of the period (earlier ones
    never decide the period's figures), their changes, its incidents."""
    recent = tuple(f.record() for f in indexes.production_records(service) if f.finish >= since)
    incidents = tuple(
        Incident.model_validate(i.to_json())
        for i in indexes.all_incidents()
        if i.spec.service == service
    )
    return Evidence(recent, changes_behind(recent, indexes), incidents)


def service_figures(service: str, indexes: Indexes, now: dt.datetime) -> DoraFigures:
    """The service's figures over the 30 days up to now."""
    period = Period(now - PERIOD, now)
    report = dora_report(evidence_of(service, indexes, period.since), period, Scope({service}))
    return next(f for f in report.services if f.service == service)


def set_or_drop(gauge: Gauge, value: float | None, *labels: str) -> None:
    """A figure that does not exist (no deployments) leaves the gauge rather than reading 0."""
    if value is None:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)
    else:
        gauge.labels(*labels).set(value)


def export(figures: DoraFigures) -> None:
    """The service's figures as gauges with its name as the service label."""
    service = figures.service
    DORA_DEPLOYMENTS.labels(service).set(figures.deployments)
    DORA_DEPLOYMENTS_PER_WEEK.labels(service).set(figures.per_week)
    DORA_FAILED_DEPLOYMENTS.labels(service).set(figures.failed)
    set_or_drop(DORA_CHANGE_FAIL_RATE, figures.change_fail_rate, service)
    set_or_drop(DORA_REWORK_RATE, figures.rework_rate, service)
    set_or_drop(DORA_LEAD_TIME, figures.lead_time_median_seconds, service, "0.5")
    set_or_drop(DORA_LEAD_TIME, figures.lead_time_p90_seconds, service, "0.9")
    set_or_drop(DORA_RECOVERY_TIME, figures.recovery_median_seconds, service, "0.5")
    set_or_drop(DORA_RECOVERY_TIME, figures.recovery_p90_seconds, service, "0.9")
    exported.add(service)


def forget(service: str) -> None:
    """A deleted service leaves every DORA gauge."""
    for gauge in (DORA_DEPLOYMENTS, DORA_DEPLOYMENTS_PER_WEEK, DORA_FAILED_DEPLOYMENTS):
        set_or_drop(gauge, None, service)
    for gauge in (DORA_CHANGE_FAIL_RATE, DORA_REWORK_RATE):
        set_or_drop(gauge, None, service)
    for quantile in ("0.5", "0.9"):
        set_or_drop(DORA_LEAD_TIME, None, service, quantile)
        set_or_drop(DORA_RECOVERY_TIME, None, service, quantile)
    exported.discard(service)


def newest_evidence(
    service: str, indexes: Indexes, causes: Mapping[str, dt.datetime]
) -> dt.datetime | None:
    """When the newest record of the service was written, or an incident's cause confirmed
    (`causes`: the latest confirmation per service, from `confirmed_causes`)."""
    moments = [f.created for f in indexes.production_records(service) if f.created is not None]
    if service in causes:
        moments.append(causes[service])
    return max(moments, default=None)


def confirmed_causes(indexes: Indexes) -> dict[str, dt.datetime]:
    """Each service's latest confirmation of an incident's cause: one pass over the
    incidents for every service, not one per service."""
    latest: dict[str, dt.datetime] = {}
    for incident in indexes.all_incidents():
        confirmed = incident.spec.cause_confirmed_time
        service = incident.spec.service
        if confirmed is not None and (service not in latest or confirmed > latest[service]):
            latest[service] = confirmed
    return latest


def dora_due(soc: ServiceOnCall, newest: dt.datetime | None) -> dt.datetime:
    """When the service's figures are next due (a past time: now)."""
    dora = soc.status.dora
    if dora is None or soc.spec.service.name not in exported:
        return NOW
    # Creation times have whole seconds and computedTime too: a record written in
    # the second the figures were computed makes them due once more.
    if newest is not None and newest >= dora.computed_time:
        return NOW
    return dora.computed_time + REFRESH


def refresh_dora(
    state: ControllerState, indexes: Indexes, namespace: str, name: str, now: dt.datetime
) -> None:
    """Compute one service's figures and write them to its status and its gauges."""
    soc = indexes.service_on_call(namespace, name)
    if soc is None:
        return
    figures = service_figures(soc.spec.service.name, indexes, now)
    status = dora_status(figures, now)
    state.kube.patch_status("serviceoncalls", namespace, name, {"dora": status.to_json()})
    export(figures)
