"""Working hours in the on-call time zone: days, hours, holidays, daylight-saving changes."""

from __future__ import annotations

import pytest

from changegate.core.oncall.working_hours import WorkingCalendar
from tests.unit.oncall.schedules import local, working_hours

LONDON = "Europe/London"
# Christmas Day 2025 is a Thursday; Easter Monday 2025 is 21 April.
CALENDAR = WorkingCalendar.of(working_hours(holidays=["2025-12-25", "2025-04-21"]), LONDON)


@pytest.mark.parametrize(
    ("at", "working"),
    [
        ("2025-01-06T09:00", True),  # Monday, opening: start inclusive
        ("2025-01-06T08:59", False),
        ("2025-01-06T16:59", True),
        ("2025-01-06T17:00", False),  # closing: end exclusive
        ("2025-01-11T12:00", False),  # Saturday
        ("2025-01-12T12:00", False),  # Sunday
        ("2025-07-01T09:30", True),  # summer time: 09:30 local, 08:30 UTC
        ("2025-12-25T12:00", False),  # a holiday is out of hours all day
        ("2025-12-24T12:00", True),
        ("2025-04-21T10:00", False),
        ("2025-04-22T10:00", True),
    ],
)
def test_an_instant_is_in_working_hours_on_the_local_clock(at: str, working: bool) -> None:
    assert CALENDAR.is_working(local(LONDON, at)) is working


@pytest.mark.parametrize(
    ("at", "change"),
    [
        ("2025-01-06T10:00", "2025-01-06T17:00"),
        ("2025-01-06T17:00", "2025-01-07T09:00"),
        ("2025-01-10T18:00", "2025-01-13T09:00"),  # Friday evening to Monday morning
        ("2025-12-24T17:30", "2025-12-26T09:00"),  # over Christmas Day
        ("2025-04-18T17:30", "2025-04-22T09:00"),  # over the Easter weekend and Monday
        ("2025-03-28T18:00", "2025-03-31T09:00"),  # over the spring-forward weekend
    ],
)
def test_the_next_change_of_working_hours(at: str, change: str) -> None:
    assert CALENDAR.next_change(local(LONDON, at)) == local(LONDON, change)


def test_working_hours_without_working_days_never_change() -> None:
    calendar = WorkingCalendar.of(working_hours(days=[]), LONDON)

    assert calendar.is_working(local(LONDON, "2025-01-06T10:00")) is False
    assert calendar.next_change(local(LONDON, "2025-01-06T10:00")) is None


def test_undeclared_working_hours_are_monday_to_friday_nine_to_five() -> None:
    calendar = WorkingCalendar.of(None, LONDON)

    assert calendar.is_working(local(LONDON, "2025-01-10T16:59")) is True
    assert calendar.is_working(local(LONDON, "2025-01-11T10:00")) is False
