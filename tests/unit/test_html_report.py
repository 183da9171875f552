"""The HTML page without a browser: self-contained, escaped, every week of the period drawn.

The browser half (layout, screenshot) is tests/integration/test_report_html.py.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from changegate.cli.html_report import (
    ExceptionRow,
    HtmlReport,
    WeekValue,
    bucket_of,
    nice_top,
    render,
)

UTC = dt.UTC
SINCE = dt.datetime(2025, 3, 5, tzinfo=UTC)  # a Wednesday: its week starts on Monday 3 March
UNTIL = dt.datetime(2025, 3, 20, tzinfo=UTC)


def page(**figures: object) -> str:
    return render(HtmlReport("DORA", SINCE, UNTIL, **figures))  # type: ignore[arg-type]


def test_the_page_loads_nothing_from_outside() -> None:
    html = page(
        deployments=[WeekValue("a", dt.date(2025, 3, 3), 2)],
        lead_times=[("a", 60)],
        exceptions=[ExceptionRow(SINCE, "a", "Failed", "a-1", "failed")],
    )
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(|@import", html)
    assert html.count("<svg") == 4


def test_names_and_details_are_escaped() -> None:
    html = page(
        exceptions=[ExceptionRow(SINCE, "a", "Failed", "x", '<script>alert("x")</script>')],
        summary=[("<b>", "&")],
    )
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<dt>&lt;b&gt;</dt><dd>&amp;</dd>" in html


def test_an_empty_period_renders_empty_charts_and_says_there_are_no_exceptions() -> None:
    html = page()
    assert 'data-exceptions="0"' in html
    assert 'class="point" data-week' not in html
    assert html.count('data-bucket="') == 7  # the histogram always shows every bucket
    assert 'data-value="0"' in html


def test_every_week_of_the_period_has_its_label_even_without_deployments() -> None:
    html = page(deployments=[WeekValue("a", dt.date(2025, 3, 10), 1)])
    chart = html.split('data-chart="deployments"')[1].split("</svg>")[0]
    assert [w for w in ("2025-03-03", "2025-03-10", "2025-03-17") if f">{w}<" in chart] == [
        "2025-03-03",
        "2025-03-10",
        "2025-03-17",
    ]
    assert chart.count('class="point"') == 1


def test_each_point_keeps_the_value_it_was_given() -> None:
    html = page(
        recovery_seconds=[WeekValue("a", dt.date(2025, 3, 3), 5400)],
        change_fail_percent=[WeekValue("a", dt.date(2025, 3, 3), 12.5)],
    )
    assert 'data-service="a" data-week="2025-03-03" data-value="5400"' in html
    assert 'data-service="a" data-week="2025-03-03" data-value="12.5"' in html


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [(0, "< 1h"), (3599, "< 1h"), (3600, "1h-4h"), (86399, "4h-1d"), (86400, "1d-3d"),
     (30 * 86400, "> 1mo")],
)  # fmt: skip
def test_lead_time_buckets(seconds: int, bucket: str) -> None:
    assert bucket_of(seconds) == bucket


@pytest.mark.parametrize(
    ("values", "top"), [([], 1), ([0.4], 1), ([1.5], 2), ([7], 10), ([33.3], 50), ([5400], 10000)]
)
def test_the_y_axis_ends_on_a_round_number(values: list[float], top: float) -> None:
    assert nice_top(values) == top
