"""The reports as text: a terminal table, JSON, CSV and Markdown.

Pure: a ComplianceReport or DoraReport in, text out. Each report is first laid
out as titled sections of rows of strings, which the table, CSV and Markdown
print alike; JSON prints the report's own values (times in RFC 3339, durations
in seconds, rates as fractions) for scripts.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import msgspec

from changegate.cli.table import format_table, human_duration
from changegate.core.report.compliance import ComplianceReport
from changegate.core.report.dora import DoraFigures, DoraReport
from changegate.core.report.evidence import Period

NONE = "-"


class ReportFormat(StrEnum):
    """What `changegate report -o` accepts."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    MARKDOWN = "markdown"
    HTML = "html"
    """A self-contained page with charts: cli/html_report.py, not this module."""


@dataclass(frozen=True)
class Section:
    title: str
    headers: tuple[str, ...]
    rows: list[list[str]]
    """The terminal table shows only these columns (all when empty)."""
    brief: tuple[str, ...] = ()


def when(moment: datetime | None) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else NONE


def duration(seconds: float | None) -> str:
    return NONE if seconds is None else human_duration(seconds)


def rate(fraction: float | None) -> str:
    return NONE if fraction is None else f"{fraction:.1%}"


def text(value: str | None) -> str:
    return value or NONE


def period_line(period: Period) -> str:
    return f"{when(period.since)} to {when(period.until)}"


# -- the compliance report ----------------------------------------------------------

ROW_HEADERS = (
    "FINISHED", "SERVICE", "ENVIRONMENT", "NAMESPACE", "WORKLOAD", "IMAGES", "BASIS",
    "CHANGE", "TYPE", "TEMPLATE", "REQUESTER", "APPROVERS", "DEPLOYER", "REPOSITORY",
    "COMMIT", "PULL REQUEST", "PIPELINE RUN", "STARTED", "LEAD TIME", "RESULT",
)  # fmt: skip
ROW_BRIEF = (
    "FINISHED", "SERVICE", "ENVIRONMENT", "WORKLOAD", "BASIS", "CHANGE", "TYPE",
    "APPROVERS", "DEPLOYER", "COMMIT", "LEAD TIME", "RESULT",
)  # fmt: skip


def compliance_sections(report: ComplianceReport) -> list[Section]:
    rows = [
        [
            when(r.finish_time), r.service, r.environment, r.namespace, r.workload,
            " ".join(r.images), r.basis, text(r.change), text(r.change_type), text(r.template),
            text(r.requester),
            " ".join(f"{a.approver}@{when(a.time)}" if a.time else a.approver for a in r.approvals)
            or NONE,
            text(r.deployer), text(r.repository), text(r.commit), text(r.pull_request),
            text(r.pipeline_run), when(r.start_time), duration(r.lead_time_seconds), r.result,
        ]
        for r in report.rows
    ]  # fmt: skip
    exceptions = [
        [e.kind.value, e.subject, e.service, when(e.time), e.detail] for e in report.exceptions
    ]
    running = [
        [r.service, r.environment, r.namespace, r.workload, " ".join(r.images), when(r.since),
         text(r.change), r.record]
        for r in report.running
    ]  # fmt: skip
    return [
        Section(f"Rollouts, {period_line(report.period)}", ROW_HEADERS, rows, ROW_BRIEF),
        Section("Exceptions", ("KIND", "SUBJECT", "SERVICE", "TIME", "DETAIL"), exceptions),
        Section(
            f"What runs where, at {when(report.period.until)}",
            ("SERVICE", "ENVIRONMENT", "NAMESPACE", "WORKLOAD", "IMAGES", "SINCE", "CHANGE",
             "RECORD"),
            running,
        ),
    ]  # fmt: skip


# -- the DORA report ------------------------------------------------------------------

DORA_HEADERS = (
    "SERVICE", "DEPLOYMENTS", "SUCCESSFUL", "PER DAY", "PER WEEK", "BUCKET", "LEAD MEDIAN",
    "LEAD P90", "FAILED", "CHANGE FAIL RATE", "RECOVERY MEDIAN", "RECOVERY P90",
    "UNRECOVERED", "REWORK", "REWORK RATE",
)  # fmt: skip
DORA_BRIEF = (
    "SERVICE", "DEPLOYMENTS", "PER DAY", "PER WEEK", "BUCKET", "LEAD MEDIAN", "LEAD P90",
    "CHANGE FAIL RATE", "RECOVERY MEDIAN", "REWORK RATE",
)  # fmt: skip


def dora_row(f: DoraFigures) -> list[str]:
    return [
        "(all)" if f.service == "*" else f.service, str(f.deployments), str(f.successful),
        f"{f.per_day:.2f}", f"{f.per_week:.2f}", f.bucket.value,
        duration(f.lead_time_median_seconds), duration(f.lead_time_p90_seconds), str(f.failed),
        rate(f.change_fail_rate), duration(f.recovery_median_seconds),
        duration(f.recovery_p90_seconds), str(f.unrecovered), str(f.rework), rate(f.rework_rate),
    ]  # fmt: skip


def dora_sections(report: DoraReport) -> list[Section]:
    rows = [dora_row(f) for f in report.services]
    if len(report.services) != 1:
        rows.append(dora_row(report.overall))
    title = (
        f"DORA, {period_line(report.period)} (failure horizon"
        f" {human_duration(report.horizon.total_seconds())})"
    )
    return [Section(title, DORA_HEADERS, rows, DORA_BRIEF)]


# -- the formats --------------------------------------------------------------------


def as_table(sections: Sequence[Section]) -> str:
    blocks = []
    for section in sections:
        keep = [section.headers.index(h) for h in section.brief] or range(len(section.headers))
        headers = [section.headers[i] for i in keep]
        rows = [[row[i] for i in keep] for row in section.rows]
        body = format_table(headers, rows) if rows else ["(none)"]
        blocks.append("\n".join([section.title, *body]))
    return "\n\n".join(blocks)


def as_csv(sections: Sequence[Section]) -> str:
    """Each section as its own CSV table (header row first), a blank line between them."""
    blocks = []
    for section in sections:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(section.headers)
        writer.writerows(section.rows)
        blocks.append(out.getvalue())
    return "\n".join(blocks).rstrip("\n")


def markdown_cell(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def as_markdown(sections: Sequence[Section]) -> str:
    blocks = []
    for section in sections:
        lines = [f"## {section.title}", ""]
        if not section.rows:
            lines.append("(none)")
        else:
            lines.append("| " + " | ".join(section.headers) + " |")
            lines.append("|" + "---|" * len(section.headers))
            lines += ["| " + " | ".join(map(markdown_cell, row)) + " |" for row in section.rows]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plain(value: Any) -> Any:
    """A report's values as JSON values: times in RFC 3339, durations in seconds."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, msgspec.Struct):
        return {name: plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    return value


def json_items(items: Sequence[Any]) -> Iterator[str]:
    """A list's items as `json.dumps(plain(items), indent=2)` writes them between its
    brackets (indented by two), in pieces of up to BATCH items, each piece opening with its first item's
    newline. msgspec writes a piece (in C, about 30 times faster) where its bytes come out
    the same: ASCII text, and floats that Python writes without an exponent; json writes
    the items of any other piece one at a time."""
    for start in range(0, len(items), BATCH):
        batch = items[start : start + BATCH]
        fast = _msgspec_items(batch)
        if fast is not None:
            yield fast
            continue
        yield ",".join("\n" + json.dumps(plain(i), indent=2) for i in batch).replace("\n", "\n  ")


BATCH = 500
_ENCODER = msgspec.json.Encoder()


def _msgspec_items(batch: Sequence[Any]) -> str | None:
    if not all(_plain_floats(item) for item in batch):
        return None
    data = msgspec.json.format(_ENCODER.encode(batch), indent=2)
    if not data.isascii() or b"\x7f" in data:  # json escapes these, msgspec does not
        return None
    return data[1:-2].decode()  # between "[" and "\n]"


def _plain_floats(item: Any) -> bool:
    """A row whose floats Python writes as msgspec does (no exponent)."""
    if not isinstance(item, msgspec.Struct) and not dataclasses.is_dataclass(item):
        return False
    return not any(_awkward(getattr(item, name)) for name in _float_fields(item.__class__))


def _awkward(value: Any) -> bool:
    return value is not None and value != 0 and not 1e-4 <= abs(value) < 1e16


@functools.cache
def _float_fields(kind: Any) -> tuple[str, ...]:
    """The fields of a row type that may hold a float."""
    if issubclass(kind, msgspec.Struct):
        typed = [(f.name, f.type) for f in msgspec.structs.fields(kind)]
    else:
        typed = [(f.name, f.type) for f in dataclasses.fields(kind)]
    return tuple(name for name, type_ in typed if "float" in str(type_))


def json_chunks(report: ComplianceReport | DoraReport) -> Iterator[str]:
    """The report as `json.dumps(plain(report), indent=2)` writes it, some rows at a time,
    so that 100,000 rows are never one string."""
    for index, field in enumerate(dataclasses.fields(report)):
        value = getattr(report, field.name)
        yield ("{" if index == 0 else ",") + f"\n  {json.dumps(field.name)}: "
        if isinstance(value, tuple) and value:
            for number, piece in enumerate(json_items(value)):
                yield ("[" if number == 0 else ",") + piece.replace("\n", "\n  ")
            yield "\n  ]"
        else:
            yield json.dumps(plain(value), indent=2).replace("\n", "\n  ")
    yield "\n}"


def chunks(report: ComplianceReport | DoraReport, fmt: ReportFormat) -> Iterator[str]:
    """The report in the chosen text format, in pieces to write one after another."""
    if fmt is ReportFormat.JSON:
        yield from json_chunks(report)
        return
    sections = (
        compliance_sections(report)
        if isinstance(report, ComplianceReport)
        else dora_sections(report)
    )
    if fmt is ReportFormat.CSV:
        yield as_csv(sections)
    elif fmt is ReportFormat.MARKDOWN:
        yield as_markdown(sections)
    else:
        yield as_table(sections)


def render(report: ComplianceReport | DoraReport, fmt: ReportFormat) -> str:
    """The report in the chosen text format."""
    return "".join(chunks(report, fmt))
