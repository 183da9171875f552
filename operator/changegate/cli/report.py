"""`changegate report compliance|dora`: the reports, read as the caller.

Reads DeploymentRecords, ChangeRequests and (for DORA) Incidents a page at a
time into the report core's slim models, with a progress bar on a terminal,
then prints what core/report works out in the format -o asks for. The
chart's auditor role is all it needs. A product team, which cannot list the
cluster-scoped DeploymentRecords, names its namespaces and gets its figures
from the rollouts its ChangeRequests recorded there.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from changegate.adapters.kube import Forbidden, ObjectPages
from changegate.cli.cluster import Connection
from changegate.cli.errors import CommandError
from changegate.cli.html_report import render as render_html
from changegate.cli.meter import Meter
from changegate.cli.report_page import report_page
from changegate.cli.report_text import ReportFormat, chunks
from changegate.core.report.compliance import compliance_report
from changegate.core.report.dora import DEFAULT_HORIZON, dora_report, unplanned
from changegate.core.report.evidence import (
    Change,
    Environments,
    Evidence,
    Incident,
    Period,
    Record,
    Scope,
    Seen,
    ServiceEnvironments,
    records_from_changes,
    share_strings,
)

DEFAULT_SPAN = timedelta(days=30)
_SPAN = re.compile(r"^(\d+)([dwh])$")
_UNITS = {"d": timedelta(days=1), "w": timedelta(weeks=1), "h": timedelta(hours=1)}
Item = TypeVar("Item", bound=Seen)
PAGE_SIZE = 2000


def parse_moment(text: str, now: datetime) -> datetime:
    """An RFC 3339 time, a date (midnight UTC), or a span back from now (30d, 12w, 24h)."""
    span = _SPAN.match(text)
    if span:
        return now - int(span.group(1)) * _UNITS[span.group(2)]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(
            f"{text!r} is not a time such as 2025-01-01T00:00:00Z, 2025-01-01 or 30d"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def period_of(args: argparse.Namespace, now: datetime) -> Period:
    until = parse_moment(args.until, now) if args.until else now
    since = parse_moment(args.since, now) if args.since else until - DEFAULT_SPAN
    if since >= until:
        raise CommandError("--since must be before --until")
    return Period(since, until)


def scope_of(args: argparse.Namespace) -> Scope:
    return Scope(
        frozenset(args.service) if args.service else None,
        frozenset(args.namespaces) if args.namespaces else None,
        args.environment,
    )


def selector(**fields: frozenset[str] | None) -> str | None:
    """A field selector when exactly one value is asked for (the API server filters)."""
    terms = [f"spec.{f}={next(iter(v))}" for f, v in fields.items() if v and len(v) == 1]
    return ",".join(terms) or None


class Reader:
    """Reads every page of a kind, in the scope's namespaces or cluster-wide."""

    def __init__(self, connection: Connection, meter: Meter) -> None:
        self.pages = ObjectPages(connection.login.api, PAGE_SIZE)
        self.meter = meter

    def read(
        self,
        plural: str,
        model: type[Item],
        namespaces: Iterable[str | None],
        field_selector: str | None = None,
    ) -> list[Item]:
        found: list[Item] = []
        for namespace in namespaces:
            for page in self.pages.pages(plural, model, namespace, field_selector):
                for item in page.items:
                    share_strings(item)
                found.extend(page.items)
                self.meter.update(plural, len(found), page.metadata.remaining_item_count)
        return found


def read_evidence(
    connection: Connection,
    scope: Scope,
    with_incidents: bool,
    meter: Meter,
    every_change: bool = True,
) -> Evidence:
    """What the reports read. Without every_change, only the Emergency changes and those
    unplanned records name (all DORA's rework reads of changes), which spares reading,
    and the API server encoding, every other ChangeRequest."""
    reader = Reader(connection, meter)
    namespaces: Sequence[str | None] = sorted(scope.namespaces) if scope.namespaces else [None]
    by_service = selector(service=scope.services)
    wanted = by_service if every_change else ",".join(filter(None, (by_service, EMERGENCIES)))
    # The records are read alongside the changes and incidents: with two lists in
    # flight the API server encodes pages on both cores while this process decodes.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="records") as side:
        listed = side.submit(
            reader.read,
            "deploymentrecords",
            Record,
            [None],
            selector(service=scope.services, namespace=scope.namespaces),
        )
        changes = reader.read("changerequests", Change, namespaces, wanted)
        incidents = (
            reader.read("incidents", Incident, namespaces, by_service) if with_incidents else []
        )
        try:
            records = listed.result()
        except Forbidden:
            if not every_change:  # a team's records are its changes' rollouts: all of them
                changes = reader.read("changerequests", Change, namespaces, by_service)
            records = team_records(reader, scope, namespaces, changes)
    if not every_change:
        changes += changes_behind_unplanned(reader, records, changes)
    meter.finish()
    return Evidence(tuple(records), tuple(changes), tuple(incidents))


EMERGENCIES = "spec.type=Emergency"


def team_records(
    reader: Reader, scope: Scope, namespaces: Sequence[str | None], changes: Iterable[Change]
) -> list[Record]:
    """For a product team, which may not list DeploymentRecords: the rollouts its changes
    recorded in the namespaces it names."""
    if scope.namespaces is None:
        raise CommandError(
            "you may not list DeploymentRecords (the chart's auditor role may);"
            " a product team names its namespaces with -n"
        ) from None
    environments = reader.read("serviceoncalls", ServiceEnvironments, namespaces)
    return records_from_changes(changes, Environments.of(environments))


def changes_behind_unplanned(
    reader: Reader, records: Iterable[Record], changes: Iterable[Change]
) -> list[Change]:
    """The changes unplanned records name that are not among those read (a rollback or
    break-glass rollout under a Normal change: rare), one small list each."""
    known = {change.key for change in changes}
    found: list[Change] = []
    for record in records:
        ref = record.spec.change_request
        if ref is None or ref.namespace is None or not unplanned(record):
            continue
        if (ref.namespace, ref.name) not in known:
            known.add((ref.namespace, ref.name))
            found += reader.read(
                "changerequests", Change, [ref.namespace], f"metadata.name={ref.name}"
            )
    return found


def report_compliance(args: argparse.Namespace, connection: Connection) -> None:
    period, scope = period_of(args, now()), scope_of(args)
    html = args.output is ReportFormat.HTML  # its charts need the incidents too
    evidence = read_evidence(connection, scope, with_incidents=html, meter=Meter())
    if html:
        print(page("Compliance report", evidence, period, scope, DEFAULT_HORIZON), end="")
        return
    write(chunks(compliance_report(evidence, period, scope), args.output))


def report_dora(args: argparse.Namespace, connection: Connection) -> None:
    period, scope = period_of(args, now()), scope_of(args)
    html = args.output is ReportFormat.HTML  # its exceptions need every change
    evidence = read_evidence(connection, scope, True, Meter(), every_change=html)
    horizon = timedelta(seconds=args.horizon)
    if html:
        print(page("DORA report", evidence, period, scope, horizon), end="")
        return
    write(chunks(dora_report(evidence, period, scope, horizon), args.output))


def page(title: str, evidence: Evidence, period: Period, scope: Scope, horizon: timedelta) -> str:
    """`-o html`: the charts, each service's figures of the period, and the exceptions."""
    totals = dora_report(evidence, period, scope, horizon).services
    return render_html(report_page(title, evidence, period, scope, horizon, totals))


def write(pieces: Iterable[str]) -> None:
    """Print a report as it is made, a row at a time, then a newline as print() ends."""
    out = sys.stdout
    for piece in pieces:
        out.write(piece)
    out.write("\n")


def now() -> datetime:
    return datetime.now(UTC)


# `changegate report ACTION`: other modules add their actions here (export, verify).
REPORT_ACTIONS: dict[str, Callable[[argparse.Namespace, Connection], None]] = {
    "compliance": report_compliance,
    "dora": report_dora,
}


def run_report(args: argparse.Namespace, connection: Connection) -> None:
    """Run the `changegate report` action the arguments name."""
    REPORT_ACTIONS[args.action](args, connection)
