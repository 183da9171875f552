"""What `-o html` shows: core.report's figures laid out week by week for the page.

Between the report commands (cli/report.py) and the renderer
(cli/html_report.py): the DORA outcomes of each service are worked out once for
the whole period with core.report's own functions, then grouped by the week
each deployment finished in, so every weekly point means what the report's
totals mean. The exceptions are the compliance report's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta

from changegate.cli.html_report import ExceptionRow, HtmlReport, WeekValue
from changegate.cli.report_text import duration, rate
from changegate.core.report.compliance import compliance_report
from changegate.core.report.dora import (
    Context,
    DoraFigures,
    Outcome,
    caused_incidents,
    figures,
    lead_time_seconds,
    outcomes,
    timelines,
)
from changegate.core.report.evidence import Evidence, Incident, Period, Scope

WEEK = timedelta(weeks=1)


def monday_of(moment: datetime) -> date:
    day = moment.date()
    return day - timedelta(days=day.weekday())


def week_period(week: date, period: Period) -> Period:
    """The part of the period that falls in the week starting on `week`."""
    start = datetime.combine(week, time(), period.since.tzinfo)
    return Period(max(start, period.since), min(start + WEEK, period.until))


def context_of(evidence: Evidence, period: Period, horizon: timedelta) -> Context:
    """What each service's timeline is read against, as core.report's dora_report builds it."""
    incidents_of: dict[str, list[Incident]] = defaultdict(list)
    for incident in evidence.incidents:
        incidents_of[incident.spec.service].append(incident)
    changes = {change.key: change for change in evidence.changes}
    return Context(period, horizon, caused_incidents(evidence.incidents), incidents_of, changes)


def week_points(
    evidence: Evidence, period: Period, scope: Scope, horizon: timedelta
) -> tuple[list[WeekValue], list[WeekValue], list[WeekValue]]:
    """Deployments, change fail percent and median recovery seconds, per service and week."""
    context = context_of(evidence, period, horizon)
    deployments, fail, recovery = [], [], []
    for service, timeline in sorted(timelines(evidence.records, scope).items()):
        by_week: dict[date, list[Outcome]] = defaultdict(list)
        for outcome in outcomes(timeline, context):
            by_week[monday_of(outcome.record.spec.finish_time)].append(outcome)
        for week, mine in sorted(by_week.items()):
            weekly = figures(service, mine, week_period(week, period))
            deployments.append(WeekValue(service, week, weekly.successful))
            if weekly.change_fail_rate is not None:
                fail.append(WeekValue(service, week, round(weekly.change_fail_rate * 100, 1)))
            if weekly.recovery_median_seconds is not None:
                recovery.append(WeekValue(service, week, round(weekly.recovery_median_seconds)))
    return deployments, fail, recovery


def lead_times(evidence: Evidence, period: Period, scope: Scope) -> list[tuple[str, int]]:
    """(service, seconds) of every successful deployment in the period with a lead time."""
    found = []
    for record in evidence.records:
        spec = record.spec
        if record.succeeded and scope.covers(spec) and spec.finish_time in period:
            seconds = lead_time_seconds(record)
            if seconds is not None:
                found.append((spec.service, round(seconds)))
    return found


def exception_rows(evidence: Evidence, period: Period, scope: Scope) -> list[ExceptionRow]:
    report = compliance_report(evidence, period, scope)
    return [
        ExceptionRow(e.time or period.since, e.service, e.kind.value, e.subject, e.detail)
        for e in report.exceptions
    ]


def summary_of(services: Iterable[DoraFigures]) -> list[tuple[str, str]]:
    """One line per service: the figures of the whole period, as the text report words them."""
    return [
        (
            f.service,
            f"{f.deployments} deployments ({f.per_week:.1f}/week, {f.bucket.value});"
            f" lead time median {duration(f.lead_time_median_seconds)},"
            f" p90 {duration(f.lead_time_p90_seconds)}; change fail rate"
            f" {rate(f.change_fail_rate)}; recovery median {duration(f.recovery_median_seconds)};"
            f" rework rate {rate(f.rework_rate)}",
        )
        for f in services
    ]


def report_page(
    title: str,
    evidence: Evidence,
    period: Period,
    scope: Scope,
    horizon: timedelta,
    totals: Sequence[DoraFigures],
) -> HtmlReport:
    """The page of one report: `totals` are the period's figures per service."""
    deployments, fail, recovery = week_points(evidence, period, scope, horizon)
    return HtmlReport(
        title=title,
        since=period.since,
        until=period.until,
        deployments=deployments,
        lead_times=lead_times(evidence, period, scope),
        change_fail_percent=fail,
        recovery_seconds=recovery,
        exceptions=exception_rows(evidence, period, scope),
        summary=summary_of(totals),
    )
