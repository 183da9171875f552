"""`-o html`: the report as one self-contained page, its charts drawn as inline SVG.

Presentation only: the report commands compute the figures (core.report) and
hand them here as an `HtmlReport`; this module lays them out. No script, no
external asset: the page opens offline and in a mail attachment. Every data
point carries `data-*` attributes (service, week, bucket, value) so a test, or
an auditor's script, can read the figures back from the page.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from changegate.cli.table import human_duration

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 40
PALETTE = ("#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#2c7a7b", "#97266d")
# Lead-time buckets: upper bounds in seconds, as an auditor reads them.
LEAD_TIME_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 1h", 3600),
    ("1h-4h", 4 * 3600),
    ("4h-1d", 86400),
    ("1d-3d", 3 * 86400),
    ("3d-1w", 7 * 86400),
    ("1w-1mo", 30 * 86400),
    ("> 1mo", float("inf")),
)
FAIL_CHART = ("change-fail-rate", "Change fail rate per week (%)")
RECOVERY_CHART = ("recovery-time", "Failed deployment recovery time per week (hours)")
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #1a202c; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
svg { background: #fff; border: 1px solid #e2e8f0; }
.axis { stroke: #4a5568; } .grid { stroke: #edf2f7; }
text { font-size: 11px; fill: #4a5568; }
.legend span { display: inline-block; margin-right: 1em; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
table { border-collapse: collapse; margin-top: 0.5em; }
th, td { border: 1px solid #e2e8f0; padding: 4px 8px; text-align: left; }
th { background: #f7fafc; } .empty { color: #718096; font-style: italic; }
"""


@dataclass(frozen=True, slots=True)
class WeekValue:
    """One figure of one service in the week starting `week` (a Monday)."""

    service: str
    week: dt.date
    value: float


@dataclass(frozen=True, slots=True)
class ExceptionRow:
    """One line of the exceptions table: what an auditor must look at."""

    time: dt.datetime
    service: str
    kind: str  # BreakGlass, UnreviewedEmergency, AuditOnly, Failed
    subject: str  # the DeploymentRecord or ChangeRequest it is about
    detail: str


@dataclass(frozen=True, slots=True)
class HtmlReport:
    """What the page shows; every sequence may be empty."""

    title: str
    since: dt.datetime
    until: dt.datetime
    deployments: Sequence[WeekValue] = ()
    lead_times: Sequence[tuple[str, int]] = ()  # (service, seconds), one per deployment
    change_fail_percent: Sequence[WeekValue] = ()
    recovery_seconds: Sequence[WeekValue] = ()
    exceptions: Sequence[ExceptionRow] = ()
    summary: Sequence[tuple[str, str]] = field(default_factory=tuple)  # (label, text)


@dataclass(frozen=True, slots=True)
class Plot:
    """The drawing area and the y scale of one chart."""

    top: float

    @property
    def height(self) -> float:
        return HEIGHT - TOP - BOTTOM

    @property
    def width(self) -> float:
        return WIDTH - LEFT - RIGHT

    def y(self, value: float) -> float:
        return TOP + self.height - (value / self.top) * self.height if self.top else TOP


def nice_top(values: Iterable[float]) -> float:
    """A round upper bound of the y axis: 1, 2 or 5 times a power of ten, at least 1."""
    peak = max(values, default=0.0)
    step = 1.0
    while True:
        for factor in (1, 2, 5):
            if peak <= step * factor:
                return step * factor
        step *= 10


def attrs(**values: object) -> str:
    """`data-*` attributes (underscores become dashes), escaped."""
    return " ".join(
        f'data-{k.replace("_", "-")}="{html.escape(str(v), quote=True)}"' for k, v in values.items()
    )


def colour(services: Sequence[str], service: str) -> str:
    return PALETTE[services.index(service) % len(PALETTE)]


def axes(plot: Plot, labels: Sequence[str], unit: str) -> list[str]:
    """Grid lines with y labels, the x axis, and one label under each slot."""
    parts = []
    for i in range(5):
        value = plot.top * i / 4
        y = plot.y(value)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:g}{unit}</text>'
        )
    base = TOP + plot.height
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}"/>')
    slot = plot.width / max(len(labels), 1)
    every = max(1, len(labels) // 12)  # at most about a dozen labels stay legible
    for i, label in enumerate(labels):
        if i % every == 0:
            x = LEFT + slot * (i + 0.5)
            parts.append(
                f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle">{html.escape(label)}</text>'
            )
    return parts


def svg(name: str, title: str, parts: Sequence[str]) -> str:
    return (
        f'<svg class="chart" data-chart="{name}" role="img" width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{html.escape(title)}</title>{''.join(parts)}</svg>"
    )


def monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def weeks_of(report: HtmlReport, points: Iterable[WeekValue]) -> list[dt.date]:
    """Every week the period touches (a quiet week shows as a gap), and any the points name."""
    first, last = monday(report.since.date()), monday(report.until.date())
    count = (last - first).days // 7 + 1
    return sorted({first + dt.timedelta(weeks=i) for i in range(count)} | {p.week for p in points})


def services_of(points: Iterable[WeekValue]) -> list[str]:
    return sorted({p.service for p in points})


def legend(services: Sequence[str]) -> str:
    items = "".join(
        f'<span><i style="background:{colour(services, s)}"></i>{html.escape(s)}</span>'
        for s in services
    )
    return f'<p class="legend">{items}</p>'


def stacked_weeks(weeks: Sequence[dt.date], points: Sequence[WeekValue]) -> str:
    """Deployments per week: one bar per week, stacked by service, one rect per point."""
    services = services_of(points)
    totals = {w: sum(p.value for p in points if p.week == w) for w in weeks}
    plot = Plot(nice_top(totals.values()))
    slot = plot.width / max(len(weeks), 1)
    parts = axes(plot, [w.isoformat() for w in weeks], "")
    stacked = dict.fromkeys(weeks, 0.0)
    for p in sorted(points, key=lambda p: (p.week, p.service)):
        x = LEFT + slot * weeks.index(p.week) + slot * 0.15
        top, bottom = plot.y(stacked[p.week] + p.value), plot.y(stacked[p.week])
        stacked[p.week] += p.value
        parts.append(
            f'<rect class="point" {attrs(service=p.service, week=p.week, value=f"{p.value:g}")}'
            f' x="{x:.1f}" y="{top:.1f}" width="{slot * 0.7:.1f}" height="{bottom - top:.1f}"'
            f' fill="{colour(services, p.service)}"><title>{html.escape(p.service)}, week of'
            f" {p.week}: {p.value:g}</title></rect>"
        )
    return svg("deployments", "Deployments per week per service", parts) + legend(services)


def bucket_of(seconds: int) -> str:
    return next(label for label, bound in LEAD_TIME_BUCKETS if seconds < bound)


def lead_time_histogram(lead_times: Sequence[tuple[str, int]]) -> str:
    """The lead-time distribution: how many deployments fall in each bucket."""
    counts = {label: 0 for label, _ in LEAD_TIME_BUCKETS}
    for _, seconds in lead_times:
        counts[bucket_of(seconds)] += 1
    plot = Plot(nice_top(counts.values()))
    slot = plot.width / len(counts)
    parts = axes(plot, list(counts), "")
    for i, (label, count) in enumerate(counts.items()):
        top = plot.y(count)
        parts.append(
            f'<rect class="point" {attrs(bucket=label, value=count)} x="{LEFT + slot * (i + 0.15):.1f}"'
            f' y="{top:.1f}" width="{slot * 0.7:.1f}" height="{TOP + plot.height - top:.1f}"'
            f' fill="{PALETTE[0]}"><title>{label}: {count}</title></rect>'
        )
    return svg("lead-time", "Lead time distribution (deployments per bucket)", parts)


def weekly_lines(
    chart: tuple[str, str], weeks: Sequence[dt.date], points: Sequence[WeekValue], unit: str
) -> str:
    """One line per service over the weeks; each point a circle carrying its raw value.

    `chart` is its name and title. A unit of hours draws seconds as hours;
    data-value keeps the figure as the report computed it.
    """
    scale = 3600 if unit == "h" else 1
    services = services_of(points)
    plot = Plot(nice_top(p.value / scale for p in points))
    slot = plot.width / max(len(weeks), 1)
    parts = axes(plot, [w.isoformat() for w in weeks], unit)
    for service in services:
        mine = sorted((p for p in points if p.service == service), key=lambda p: p.week)
        xy = [(LEFT + slot * (weeks.index(p.week) + 0.5), plot.y(p.value / scale)) for p in mine]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        parts.append(
            f'<polyline fill="none" stroke="{colour(services, service)}" points="{path}"/>'
        )
        for p, (x, y) in zip(mine, xy, strict=True):
            parts.append(
                f'<circle class="point" {attrs(service=p.service, week=p.week, value=f"{p.value:g}")}'
                f' cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour(services, service)}">'
                f"<title>{html.escape(service)}, week of {p.week}: {p.value:g}</title></circle>"
            )
    return svg(*chart, parts) + legend(services)


def exceptions_table(rows: Sequence[ExceptionRow]) -> str:
    if not rows:
        return '<p class="empty" data-exceptions="0">No exceptions in the period.</p>'
    head = "".join(f"<th>{h}</th>" for h in ("Time", "Service", "Kind", "Subject", "Detail"))
    body = "".join(
        f'<tr class="exception" {attrs(kind=r.kind, service=r.service, subject=r.subject)}>'
        + "".join(
            f"<td>{html.escape(c)}</td>"
            for c in (r.time.isoformat(), r.service, r.kind, r.subject, r.detail)
        )
        + "</tr>"
        for r in sorted(rows, key=lambda r: (r.time, r.service, r.subject))
    )
    return f'<table data-exceptions="{len(rows)}"><tr>{head}</tr>{body}</table>'


def summary_list(summary: Sequence[tuple[str, str]]) -> str:
    items = "".join(
        f"<dt>{html.escape(label)}</dt><dd>{html.escape(text)}</dd>" for label, text in summary
    )
    return f"<dl>{items}</dl>" if items else ""


def section(heading: str, body: str) -> str:
    return f"<h2>{html.escape(heading)}</h2>{body}"


def render(report: HtmlReport) -> str:
    """The whole page: a summary, four charts and the exceptions table."""
    period = f"{report.since.isoformat()} to {report.until.isoformat()}"
    fail, recovery = report.change_fail_percent, report.recovery_seconds
    body = [
        f"<h1>{html.escape(report.title)}</h1><p>Period: {html.escape(period)}</p>",
        summary_list(report.summary),
        section(
            "Deployments per week",
            stacked_weeks(weeks_of(report, report.deployments), report.deployments),
        ),
        section("Lead time distribution", lead_time_histogram(report.lead_times)),
        section(
            "Change fail rate per week",
            weekly_lines(FAIL_CHART, weeks_of(report, fail), fail, "%"),
        ),
        section(
            "Failed deployment recovery time per week",
            weekly_lines(RECOVERY_CHART, weeks_of(report, recovery), recovery, "h"),
        ),
        section("Exceptions", exceptions_table(report.exceptions)),
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(report.title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def lead_time_label(seconds: int | None) -> str:
    """A lead time for the summary: `-` when there is none."""
    return "-" if seconds is None else human_duration(seconds)
