"""Evidence is kept for the retention period, then deleted; never before."""

from __future__ import annotations

import datetime as dt

import pytest

from changegate.core.change.retention import expired_records

NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


def record(name: str, days_ago: float) -> dict[str, object]:
    finished = (NOW - dt.timedelta(days=days_ago)).isoformat().replace("+00:00", "Z")
    return {"metadata": {"name": name}, "spec": {"finishTime": finished}}


@pytest.mark.parametrize(
    ("days_ago", "retention", "expired"),
    [
        pytest.param(401, 400, True, id="older-than-retention"),
        pytest.param(399.9, 400, False, id="inside-retention"),
        pytest.param(400, 400, False, id="exactly-at-the-cutoff-is-kept"),
        pytest.param(10_000, 0, False, id="zero-means-keep-forever"),
    ],
)
def test_records_expire_only_after_the_retention_period(
    days_ago: float, retention: int, expired: bool
) -> None:
    assert expired_records([record("r", days_ago)], retention, NOW) == (["r"] if expired else [])


def test_records_without_a_finish_time_are_kept() -> None:
    assert expired_records([{"metadata": {"name": "x"}, "spec": {}}], 1, NOW) == []
