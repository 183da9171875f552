"""`changegate report`: flags, periods, and the four text formats."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from changegate.cli.errors import CommandError
from changegate.cli.meter import Meter
from changegate.cli.parser import build_parser
from changegate.cli.report import parse_moment, period_of, scope_of, selector
from changegate.cli.report_text import ReportFormat, render
from changegate.core.report.compliance import compliance_report
from changegate.core.report.dora import dora_report
from changegate.core.report.evidence import Evidence
from tests.unit.report.builders import WEEK, record

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def evidence() -> Evidence:
    return Evidence(
        (
            record("r1", 5, lead_hours=2, change="chg-1"),
            record("r2", 30, result="Failed"),
            record("s1", 6, service="search", namespace="search-prod"),
        )
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", NOW - timedelta(days=30)),
        ("2w", NOW - timedelta(weeks=2)),
        ("24h", NOW - timedelta(hours=24)),
        ("2025-01-01", datetime(2025, 1, 1, tzinfo=UTC)),
        ("2025-01-01T10:00:00Z", datetime(2025, 1, 1, 10, tzinfo=UTC)),
    ],
)
def test_moments(text: str, expected: datetime) -> None:
    assert parse_moment(text, NOW) == expected


def test_a_bad_moment_or_an_empty_period_is_refused() -> None:
    with pytest.raises(CommandError, match="not a time"):
        parse_moment("yesterday", NOW)
    args = build_parser().parse_args(["report", "dora", "--since", "2025-06-02"])
    with pytest.raises(CommandError, match="before --until"):
        period_of(args, NOW)


def test_flags_become_period_and_scope() -> None:
    args = build_parser().parse_args(
        ["report", "compliance", "--since", "7d", "--service", "a", "--service", "b",
         "-n", "ns-1", "--environment", "staging", "-o", "csv"]
    )  # fmt: skip
    period = period_of(args, NOW)
    assert (period.since, period.until) == (NOW - timedelta(days=7), NOW)
    scope = scope_of(args)
    assert scope.services == {"a", "b"}
    assert scope.namespaces == {"ns-1"}
    assert scope.environment == "staging"
    assert args.output is ReportFormat.CSV
    default = period_of(build_parser().parse_args(["report", "dora"]), NOW)
    assert default.since == NOW - timedelta(days=30)


def test_field_selector_only_for_a_single_value() -> None:
    assert selector(service=frozenset({"a"}), namespace=None) == "spec.service=a"
    assert selector(service=frozenset({"a", "b"}), namespace=frozenset({"n"})) == "spec.namespace=n"
    assert selector(service=None) is None


def test_compliance_as_a_table_shows_sections_and_brief_columns() -> None:
    text = render(compliance_report(evidence(), WEEK), ReportFormat.TABLE)
    assert text.startswith("Rollouts, 2025-03-03T00:00:00Z to 2025-03-10T00:00:00Z\nFINISHED")
    assert "PULL REQUEST" not in text  # full columns are for CSV, Markdown and JSON
    assert "\nExceptions\nKIND" in text
    assert "FailedRollout   r2" in text
    assert "What runs where" in text
    assert "120m" in text


def test_compliance_as_csv_has_every_column() -> None:
    text = render(compliance_report(evidence(), WEEK), ReportFormat.CSV)
    rows = list(csv.reader(io.StringIO(text.split("\n\n")[0])))
    assert rows[0][0] == "FINISHED"
    assert "PULL REQUEST" in rows[0]
    assert [r[rows[0].index("CHANGE")] for r in rows[1:]] == ["chg-1", "-", "-"]


def test_dora_as_markdown_and_json() -> None:
    report = dora_report(evidence(), WEEK)
    markdown = render(report, ReportFormat.MARKDOWN)
    assert markdown.startswith(
        "## DORA, 2025-03-03T00:00:00Z to 2025-03-10T00:00:00Z (failure horizon 24h)"
    )
    assert "| payments-api | 2 | 1 |" in markdown
    assert "| (all) | 3 | 2 |" in markdown
    assert "50.0%" in markdown  # payments-api's change fail rate
    document = json.loads(render(report, ReportFormat.JSON))
    assert document["horizon"] == 86400
    assert document["overall"]["change_fail_rate"] == pytest.approx(1 / 3)
    assert document["services"][0]["lead_time_median_seconds"] == 7200
    assert document["period"]["since"] == "2025-03-03T00:00:00Z"


def test_markdown_escapes_pipes() -> None:
    report = compliance_report(evidence(), WEEK)
    assert "\\|" not in render(report, ReportFormat.MARKDOWN)
    from changegate.cli.report_text import markdown_cell

    assert markdown_cell("a|b") == "a\\|b"


def test_the_meter_draws_on_a_terminal_only() -> None:
    out = io.StringIO()
    Meter(out, shown=False).update("deploymentrecords", 500, 1500)
    assert out.getvalue() == ""
    meter = Meter(out, shown=True)
    meter.update("deploymentrecords", 500, 1500)
    assert "500/2000" in out.getvalue()
    assert "[" + "#" * 8 in out.getvalue()
    meter.finish()
    assert out.getvalue().endswith("\r\033[K")
