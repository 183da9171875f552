"""The compliance report: rows with their evidence, exceptions, and what runs where."""

from __future__ import annotations

from msgspec.structs import replace

from changegate.core.report.compliance import ExceptionKind, compliance_report
from changegate.core.report.evidence import Evidence, Scope
from tests.unit.report.builders import WEEK, at, change, record


def evidence() -> Evidence:
    return Evidence(
        (
            record("old", -10),
            record("r1", 5, change="chg-1", lead_hours=2),
            record("glass", 8, admission="BreakGlass", change_type=None),
            record("audit", 9, admission="AuditOnly", change_type=None),
            record("bad", 10, result="Failed", change="chg-2"),
            record(
                "stage", 11, production=False, environment="staging", namespace="payments-stage"
            ),
        ),
        (
            change(
                "chg-1",
                1,
                approvals=[
                    {
                        "approver": "change-manager-1",
                        "decision": "Approved",
                        "time": at(2).isoformat(),
                    }
                ],
                templateRef=None,
            ),
            change("emg-open", 8, type_="Emergency"),
            change(
                "emg-done",
                8,
                type_="Emergency",
                reviews=[{"reviewer": "change-manager-1", "note": "ok"}],
            ),
            change("emg-old", -30, type_="Emergency"),
        ),
    )


def test_rows_are_the_production_rollouts_of_the_period_oldest_first() -> None:
    report = compliance_report(evidence(), WEEK)
    assert [r.record for r in report.rows] == ["r1", "glass", "audit", "bad"]
    first = report.rows[0]
    assert (first.change, first.workload, first.lead_time_seconds) == (
        "chg-1",
        "Deployment/api",
        7200,
    )
    assert [(a.approver, a.time) for a in first.approvals] == []  # the record names no approvers


def test_approvals_carry_their_times_from_the_change() -> None:
    base = evidence()
    spec = replace(base.records[1].spec, approvers=("change-manager-1",))
    r1 = replace(base.records[1], spec=spec)
    report = compliance_report(Evidence((r1,), base.changes), WEEK)
    assert [(a.approver, a.time) for a in report.rows[0].approvals] == [("change-manager-1", at(2))]


def test_exceptions_name_break_glass_audit_only_failed_and_unreviewed_emergencies() -> None:
    report = compliance_report(evidence(), WEEK)
    assert [(e.kind, e.subject) for e in report.exceptions] == [
        (ExceptionKind.BREAK_GLASS, "glass"),
        (ExceptionKind.UNREVIEWED_EMERGENCY, "payments-prod/emg-open"),
        (ExceptionKind.AUDIT_ONLY, "audit"),
        (ExceptionKind.FAILED_ROLLOUT, "bad"),
    ]


def test_what_runs_where_is_each_workloads_last_success_in_every_environment() -> None:
    report = compliance_report(evidence(), WEEK)
    assert [(r.environment, r.record) for r in report.running] == [
        ("production", "audit"),
        ("staging", "stage"),
    ]


def test_another_environment_is_reported_when_named() -> None:
    report = compliance_report(evidence(), WEEK, Scope(environment="staging"))
    assert [r.record for r in report.rows] == ["stage"]
    assert [r.record for r in report.running] == ["stage"]
