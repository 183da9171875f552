"""The HTML report in a real browser: headless Chromium from Debian's packages.

Chromium lays the page out; the test reads the dumped DOM back and finds every
data point of every chart with the value it was given and a box of non-zero
size, then keeps a screenshot under tests/artifacts/ (ignored by git, kept by CI).
"""

from __future__ import annotations

import datetime as dt
import struct
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from changegate.cli.html_report import ExceptionRow, HtmlReport, WeekValue, bucket_of, render
from tests.support.browser import rendered_dom, screenshot

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
MONDAY = dt.date(2025, 3, 3)
UTC = dt.UTC


def week(n: int) -> dt.date:
    return MONDAY + dt.timedelta(weeks=n)


REPORT = HtmlReport(
    title="DORA report: payments-api, ledger",
    since=dt.datetime(2025, 3, 3, tzinfo=UTC),
    until=dt.datetime(2025, 3, 31, tzinfo=UTC),
    deployments=[
        WeekValue("payments-api", week(0), 5),
        WeekValue("payments-api", week(1), 7),
        WeekValue("payments-api", week(2), 2),
        WeekValue("ledger", week(0), 1),
        WeekValue("ledger", week(2), 3),
    ],
    lead_times=[("payments-api", s) for s in (600, 1800, 7200, 90000, 90000, 700000)],
    change_fail_percent=[
        WeekValue("payments-api", week(0), 20),
        WeekValue("payments-api", week(1), 0),
        WeekValue("ledger", week(2), 33.3),
    ],
    recovery_seconds=[WeekValue("payments-api", week(0), 5400), WeekValue("ledger", week(2), 900)],
    exceptions=[
        ExceptionRow(
            dt.datetime(2025, 3, 4, 2, 10, tzinfo=UTC),
            "payments-api",
            "BreakGlass",
            "payments-api-prod-7",
            "break-glass by alice, emergency change not reviewed",
        ),
        ExceptionRow(
            dt.datetime(2025, 3, 18, 9, 0, tzinfo=UTC),
            "ledger",
            "Failed",
            "ledger-prod-3",
            "failed",
        ),
    ],
    summary=[("payments-api deployments", "14")],
)


class Points(HTMLParser):
    """Every element carrying data-value, with its attributes, and the exception rows."""

    def __init__(self) -> None:
        super().__init__()
        self.points: list[dict[str, str]] = []
        self.exceptions: list[dict[str, str]] = []
        self.charts: list[str] = []
        self.probed = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.probed |= tag == "html" and found.get("data-probed") == "yes"
        if tag == "svg" and "data-chart" in found:
            self.charts.append(found["data-chart"])
        if "data-value" in found:
            self.points.append({"tag": tag, **found})
        if tag == "tr" and "data-kind" in found:
            self.exceptions.append(found)


def drawn(point: dict[str, str]) -> bool:
    width, height = (float(n) for n in point["data-drawn"].split("x"))
    return width > 0 and height > 0


def in_chart(points: list[dict[str, str]], tag: str, key: str) -> dict[tuple[str, ...], str]:
    return {
        tuple(p[k] for k in ("data-service", "data-week") if k in p): p["data-value"]
        for p in points
        if p["tag"] == tag and key in p
    }


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_the_report_renders_in_chromium_with_every_data_point(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(REPORT))

    found = Points()
    found.feed(rendered_dom(page))

    assert found.probed, "the probe script did not run: Chromium did not load the page"
    assert found.charts == ["deployments", "lead-time", "change-fail-rate", "recovery-time"]
    bars = [p for p in found.points if p["tag"] == "rect" and "data-week" in p]
    assert {(p["data-service"], p["data-week"]): p["data-value"] for p in bars} == {
        (w.service, w.week.isoformat()): f"{w.value:g}" for w in REPORT.deployments
    }
    buckets = {p["data-bucket"]: int(p["data-value"]) for p in found.points if "data-bucket" in p}
    assert buckets == {
        **dict.fromkeys(buckets, 0),
        **Counter(bucket_of(s) for _, s in REPORT.lead_times),
    }
    assert sum(buckets.values()) == len(REPORT.lead_times)
    circles = [p for p in found.points if p["tag"] == "circle"]
    expected = [*REPORT.change_fail_percent, *REPORT.recovery_seconds]
    assert sorted((p["data-service"], p["data-week"], p["data-value"]) for p in circles) == sorted(
        (w.service, w.week.isoformat(), f"{w.value:g}") for w in expected
    )
    blank = [p for p in found.points if not drawn(p) and p["data-value"] != "0"]
    assert not blank, f"data points Chromium laid out with no size: {blank}"
    assert [(r["data-kind"], r["data-subject"]) for r in found.exceptions] == [
        ("BreakGlass", "payments-api-prod-7"),
        ("Failed", "ledger-prod-3"),
    ]

    shot = screenshot(page, ARTIFACTS / "report-html.png")
    assert png_size(shot) == (1024, 2000)
    (ARTIFACTS / "report.html").write_text(page.read_text())
