"""DORA figures against hand-worked timelines (times are hours after Monday 00:00)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from changegate.core.report.dora import (
    Bucket,
    DoraFigures,
    bucket,
    dora_report,
    percentile,
)
from changegate.core.report.evidence import Evidence, Period, Scope
from tests.unit.report.builders import T0, WEEK, change, incident, record


def figures(evidence: Evidence, period: Period = WEEK) -> DoraFigures:
    report = dora_report(evidence, period)
    assert len(report.services) == 1
    return report.services[0]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([7.0], 90, 7.0),
        ([10.0, 20.0, 30.0, 40.0], 50, 25.0),
        ([40.0, 10.0, 30.0, 20.0], 90, 37.0),  # rank 2.7: 30 + 0.7 * 10
        ([1.0, 2.0, 3.0], 50, 2.0),
    ],
)
def test_percentile_interpolates_between_ranks(
    values: list[float], q: float, expected: float | None
) -> None:
    assert percentile(values, q) == expected


@pytest.mark.parametrize(
    ("per_day", "successful", "expected"),
    [
        (0.0, 0, Bucket.NONE),
        (1.0, 7, Bucket.DAILY),
        (3.5, 24, Bucket.DAILY),
        (1 / 7, 1, Bucket.WEEKLY),
        (0.99, 6, Bucket.WEEKLY),
        (1 / 30, 12, Bucket.MONTHLY),
        (1 / 365, 1, Bucket.YEARLY),
    ],
)
def test_bucket(per_day: float, successful: int, expected: Bucket) -> None:
    assert bucket(per_day, successful) is expected


def test_a_period_without_deployments_has_no_rates() -> None:
    f = dora_report(Evidence(), WEEK, Scope(services=frozenset({"payments-api"}))).services[0]
    assert (f.deployments, f.per_day, f.bucket) == (0, 0.0, Bucket.NONE)
    assert f.change_fail_rate is None
    assert f.rework_rate is None
    assert f.lead_time_median_seconds is None
    assert f.recovery_median_seconds is None


def test_frequency_counts_successful_production_rollouts_in_the_period() -> None:
    evidence = Evidence(
        (
            record("a", 1),
            record("b", 30),
            record("c", 50, result="Failed"),  # not successful
            record("d", 60, production=False, environment="staging"),  # not production
            record("e", -5),  # before the period
            record("f", 7 * 24 + 1),  # after it
            *(record(f"g{i}", 100 + i) for i in range(5)),
        )
    )
    f = figures(evidence)
    assert (f.deployments, f.successful) == (8, 7)
    assert f.per_day == pytest.approx(1.0)
    assert f.per_week == pytest.approx(7.0)
    assert f.bucket is Bucket.DAILY


def test_lead_time_median_and_p90_from_commit_to_finish() -> None:
    evidence = Evidence(
        (*tuple(record(f"r{h}", 10 * h, lead_hours=h) for h in (1, 2, 3, 4)), record("nolead", 60))
    )
    f = figures(evidence)
    assert f.lead_time_median_seconds == 2.5 * 3600
    assert f.lead_time_p90_seconds == pytest.approx(3.7 * 3600)


def test_a_failed_rollout_fails_and_recovers_at_the_next_success() -> None:
    evidence = Evidence((record("a", 1), record("b", 10, result="Failed"), record("c", 13)))
    f = figures(evidence)
    assert (f.deployments, f.failed) == (3, 1)
    assert f.change_fail_rate == pytest.approx(1 / 3)
    assert f.recovery_median_seconds == 3 * 3600
    assert f.unrecovered == 0


def test_a_rollback_within_the_horizon_fails_the_deployment_it_undoes() -> None:
    evidence = Evidence(
        (
            record("a", 1),
            record("b", 10),
            record("back", 12, admission="Rollback", change_type=None),
            record("x", 40),
            record("late-back", 70, admission="Rollback", change_type=None),  # 30 h after x
        )
    )
    f = figures(evidence)
    assert (f.deployments, f.failed) == (5, 1)  # b only: x's rollback came after the horizon
    assert f.recovery_median_seconds == 2 * 3600  # the rollback itself recovered
    assert dora_report(evidence, WEEK, horizon=timedelta(hours=48)).services[0].failed == 2


def test_an_emergency_fix_within_the_horizon_fails_the_deployment_before_it() -> None:
    evidence = Evidence(
        (
            record("a", 1),
            record("fix", 5, change_type="Emergency"),
            record("b", 20),
            record("glass", 22, admission="BreakGlass", change_type=None),
        )
    )
    f = figures(evidence)
    assert f.failed == 2  # a and b
    assert f.recovery_median_seconds == 3 * 3600  # 4 h and 2 h


def test_an_incident_caused_by_a_deployment_fails_it_once_even_when_reported_twice() -> None:
    evidence = Evidence(
        (record("a", 1), record("b", 10), record("c", 20)),
        (),
        (
            incident("inc-1", 11, 15, caused_by="b"),
            incident("inc-2", 12, 14, caused_by="b"),  # a second incident of the same cause
            incident("inc-dup", 12, 13, caused_by="a", duplicate=True),  # a duplicate counts never
        ),
    )
    f = figures(evidence)
    assert (f.deployments, f.failed) == (3, 1)
    assert f.change_fail_rate == pytest.approx(1 / 3)
    # From b finishing (10 h) to the first of its incidents resolving (14 h).
    assert f.recovery_median_seconds == 4 * 3600


def test_an_unresolved_incident_leaves_its_deployment_unrecovered() -> None:
    evidence = Evidence((record("a", 1), record("b", 3)), (), (incident("inc", 2, caused_by="a"),))
    f = figures(evidence)
    assert (f.failed, f.unrecovered, f.recovery_median_seconds) == (1, 1, None)


def test_rework_is_an_unplanned_deployment_for_an_incident() -> None:
    evidence = Evidence(
        (
            record("a", 1),
            record("hotfix", 12, change_type="Emergency"),  # during inc-1: rework
            record("back", 13, admission="Rollback", change_type=None),  # during inc-1: rework
            record("planned", 14),  # planned: not rework
            record("late", 40, change_type="Emergency"),  # no incident open
            record("named", 60, change_type="Emergency", change="chg-fix"),  # names one
            record("dup", 80, change_type="Emergency"),  # only a duplicate open
        ),
        (change("chg-fix", 59, type_="Emergency", incidentRef={"name": "inc-9"}),),
        (incident("inc-1", 10, 20), incident("inc-d", 79, 81, duplicate=True)),
    )
    f = figures(evidence)
    assert (f.deployments, f.rework) == (7, 3)
    assert f.rework_rate == pytest.approx(3 / 7)


def test_figures_per_service_and_for_the_set() -> None:
    evidence = Evidence(
        (
            record("a1", 1, lead_hours=1),
            record("a2", 2, lead_hours=3, result="Failed"),
            record("b1", 3, service="search", namespace="search-prod", lead_hours=5),
        )
    )
    report = dora_report(evidence, WEEK)
    assert [f.service for f in report.services] == ["payments-api", "search"]
    assert [f.deployments for f in report.services] == [2, 1]
    overall = report.overall
    assert (overall.service, overall.deployments, overall.failed) == ("*", 3, 1)
    assert overall.lead_time_median_seconds == 3 * 3600  # the successful ones: 1 h and 5 h
    only = dora_report(evidence, WEEK, Scope(services=frozenset({"search"})))
    assert [f.service for f in only.services] == ["search"]


def test_records_outside_the_namespaces_are_left_out() -> None:
    evidence = Evidence((record("a", 1), record("b", 2, namespace="other")))
    report = dora_report(evidence, WEEK, Scope(namespaces=frozenset({"payments-prod"})))
    assert report.overall.deployments == 1


def test_a_year_is_read_in_days() -> None:
    year = Period(T0, T0 + timedelta(days=365))
    f = figures(Evidence((record("a", 1), record("b", 24 * 100))), year)
    assert f.per_day == pytest.approx(2 / 365)
    assert f.bucket is Bucket.YEARLY
