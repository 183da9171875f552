"""When periodic work is due (core.schedule) and when evidence falls due (retention)."""

from __future__ import annotations

from datetime import datetime

import pytest

from changegate.core.change.retention import record_due
from changegate.core.schedule import Due, due_now, seconds_to_next
from tests.unit.builders import NOW, at

DUES = [Due("late", at(-1)), Due("now", NOW), Due("later", at(1)), Due("soon", at(0.01))]


def test_due_now_takes_what_is_due_longest_overdue_first() -> None:
    assert [d.key for d in due_now(DUES, NOW)] == ["late", "now"]


@pytest.mark.parametrize(
    ("dues", "longest", "seconds"),
    [
        (DUES, 300.0, 36.0),  # "soon", 0.01 h ahead
        (DUES, 5.0, 5.0),  # never longer than the tick
        ([Due("late", at(-1))], 5.0, 5.0),  # only overdue ones: wait a tick
        ([], 5.0, 5.0),
    ],
)
def test_seconds_to_next(dues: list[Due], longest: float, seconds: float) -> None:
    assert seconds_to_next(dues, NOW, longest) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("finished", "days", "due"),
    [(at(0), 400, at(400 * 24)), (at(0), 0, None), (None, 400, None)],
)
def test_a_record_is_due_retention_days_after_it_finished(
    finished: datetime | None, days: int, due: datetime | None
) -> None:
    assert record_due(finished, days) == due
