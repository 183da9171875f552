"""`-o html`'s figures: a hand-worked fortnight, grouped by week, rendered with a point each.

The weekly points come from core.report's own outcomes, so a week's change fail
rate and recovery time mean what the report's totals mean.
"""

from __future__ import annotations

from datetime import date, timedelta

from changegate.cli.html_report import HtmlReport, WeekValue, render
from changegate.cli.parser import build_parser
from changegate.cli.report import page
from changegate.cli.report_page import report_page
from changegate.cli.report_text import ReportFormat
from changegate.core.report.dora import DEFAULT_HORIZON, dora_report
from changegate.core.report.evidence import EVERYTHING, Evidence, Period
from tests.unit.report.builders import T0, record

FORTNIGHT = Period(T0, T0 + timedelta(days=14))
MONDAY, NEXT_MONDAY = date(2025, 3, 3), date(2025, 3, 10)
EVIDENCE = Evidence(
    records=(
        record("r1", 10, lead_hours=2),
        record("r2", 30, result="Failed", lead_hours=5),
        record("r3", 32, lead_hours=1),  # recovers r2 after 2 h
        record("r4", 24 * 8, service="ledger", namespace="ledger-prod", lead_hours=30),
        record("r5", 24 * 9, admission="BreakGlass", change_type="Emergency"),
        record("old", -24 * 30, lead_hours=1),  # before the period
    )
)


def the_page() -> tuple[HtmlReport, str]:
    totals = dora_report(EVIDENCE, FORTNIGHT).services
    shown = report_page("DORA", EVIDENCE, FORTNIGHT, EVERYTHING, DEFAULT_HORIZON, totals)
    return shown, render(shown)


def test_each_week_of_each_service_has_its_own_figures() -> None:
    shown, _ = the_page()
    assert list(shown.deployments) == [
        WeekValue("ledger", NEXT_MONDAY, 1),
        WeekValue("payments-api", MONDAY, 2),  # r1 and r3; r2 failed
        WeekValue("payments-api", NEXT_MONDAY, 1),
    ]
    assert list(shown.change_fail_percent) == [
        WeekValue("ledger", NEXT_MONDAY, 0.0),
        WeekValue("payments-api", MONDAY, 33.3),
        WeekValue("payments-api", NEXT_MONDAY, 0.0),
    ]
    assert list(shown.recovery_seconds) == [WeekValue("payments-api", MONDAY, 7200)]


def test_lead_times_are_the_successful_deployments_of_the_period() -> None:
    shown, _ = the_page()
    assert sorted(shown.lead_times) == [
        ("ledger", 108000),
        ("payments-api", 3600),
        ("payments-api", 7200),
    ]


def test_the_exceptions_are_the_compliance_reports() -> None:
    shown, html = the_page()
    assert [(e.kind, e.subject) for e in shown.exceptions] == [
        ("FailedRollout", "r2"),
        ("BreakGlass", "r5"),
    ]
    assert 'data-kind="BreakGlass"' in html


def test_the_summary_words_each_services_figures_of_the_period() -> None:
    shown, html = the_page()
    assert [label for label, _ in shown.summary] == ["ledger", "payments-api"]
    assert "4 deployments" in dict(shown.summary)["payments-api"]
    assert 'data-service="payments-api" data-week="2025-03-03" data-value="33.3"' in html


def test_both_report_commands_accept_html() -> None:
    for action in ("compliance", "dora"):
        args = build_parser().parse_args(["report", action, "-o", "html"])
        assert args.output is ReportFormat.HTML
    html = page("Compliance report", EVIDENCE, FORTNIGHT, EVERYTHING, DEFAULT_HORIZON)
    assert html.startswith("<!DOCTYPE html>")
    assert "<h1>Compliance report</h1>" in html
