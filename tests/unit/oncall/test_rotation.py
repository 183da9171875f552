"""Rotations on the wall clock: turns, shift lengths across daylight-saving changes, Monthly."""

from __future__ import annotations

import datetime as dt

import pytest

from changegate.core.oncall.rotation import RotationPlan, add_months
from changegate.core.oncall.wallclock import ScheduleError, local_time, zone_named
from tests.unit.oncall.schedules import local, rotation, utc

LONDON = "Europe/London"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"


def plan(**kwargs: object) -> RotationPlan:
    return RotationPlan.of(rotation(**kwargs), "UTC")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("zone", "type_", "length", "handoff", "shift_start", "shift_end", "hours"),
    [
        # Daily: the shift that spans the change is an hour short or long.
        (LONDON, "Daily", 1, "09:00", "2025-03-29T09:00", "2025-03-30T09:00", 23),
        (LONDON, "Daily", 1, "09:00", "2025-03-30T09:00", "2025-03-31T09:00", 24),
        (LONDON, "Daily", 1, "09:00", "2025-10-25T09:00", "2025-10-26T09:00", 25),
        (NEW_YORK, "Daily", 1, "09:00", "2025-03-08T09:00", "2025-03-09T09:00", 23),
        (NEW_YORK, "Daily", 1, "09:00", "2025-11-01T09:00", "2025-11-02T09:00", 25),
        # Lord Howe moves its clocks by half an hour.
        (LORD_HOWE, "Daily", 1, "09:00", "2025-04-05T09:00", "2025-04-06T09:00", 24.5),
        (LORD_HOWE, "Daily", 1, "09:00", "2025-10-04T09:00", "2025-10-05T09:00", 23.5),
        # Longer shifts absorb the change the same way.
        (LONDON, "Daily", 2, "09:00", "2025-03-29T09:00", "2025-03-31T09:00", 47),
        (LONDON, "Weekly", 1, "09:00", "2025-03-24T09:00", "2025-03-31T09:00", 167),
        (NEW_YORK, "Weekly", 1, "18:30", "2025-10-27T18:30", "2025-11-03T18:30", 169),
        (LORD_HOWE, "Weekly", 1, "09:00", "2025-09-29T09:00", "2025-10-06T09:00", 167.5),
        # Twelve-hour shifts keep handing over at 09:00 and 21:00 local.
        (NEW_YORK, "Hourly", 12, "09:00", "2025-03-08T21:00", "2025-03-09T09:00", 11),
        (NEW_YORK, "Hourly", 12, "09:00", "2025-11-01T21:00", "2025-11-02T09:00", 13),
        (LORD_HOWE, "Hourly", 12, "09:00", "2025-10-04T21:00", "2025-10-05T09:00", 11.5),
        (LONDON, "Hourly", 12, "09:00", "2025-03-30T09:00", "2025-03-30T21:00", 12),
    ],
)
def test_a_shift_across_a_daylight_saving_change_is_shorter_or_longer(
    zone: str, type_: str, length: int, handoff: str, shift_start: str, shift_end: str, hours: float
) -> None:
    rotation_plan = plan(
        type=type_,
        length=length,
        handoff=handoff,
        zone=zone,
        start=local(zone, "2025-01-06T" + handoff),
    )
    start = local(zone, shift_start)

    shift = rotation_plan.shift_at(start + dt.timedelta(minutes=1))

    assert shift is not None
    assert (shift.start, shift.end) == (start, local(zone, shift_end))
    assert shift.end - shift.start == dt.timedelta(hours=hours)


@pytest.mark.parametrize(
    ("zone", "handoff", "day", "handoff_instant"),
    [
        # A handoff in a spring-forward gap moves to the first instant after it.
        (LONDON, "01:30", "2025-03-30", "2025-03-30T01:00"),
        (NEW_YORK, "02:30", "2025-03-09", "2025-03-09T07:00"),
        (LORD_HOWE, "02:15", "2025-10-05", "2025-10-04T15:30"),
        (LORD_HOWE, "02:00", "2025-10-05", "2025-10-04T15:30"),
        # A handoff that happens twice on a fall-back day is the first occurrence.
        (LONDON, "01:30", "2025-10-26", "2025-10-26T00:30"),
        (NEW_YORK, "01:30", "2025-11-02", "2025-11-02T05:30"),
        (LORD_HOWE, "01:45", "2025-04-06", "2025-04-05T14:45"),
        # The edges of the change itself.
        (NEW_YORK, "03:00", "2025-03-09", "2025-03-09T07:00"),
        (NEW_YORK, "01:59", "2025-11-02", "2025-11-02T05:59"),
    ],
)
def test_a_handoff_on_a_change_day_is_one_instant_with_no_gap_or_overlap(
    zone: str, handoff: str, day: str, handoff_instant: str
) -> None:
    rotation_plan = plan(handoff=handoff, zone=zone, start=local(zone, "2025-01-06T" + handoff))
    expected = utc(handoff_instant)

    before = rotation_plan.shift_at(expected - dt.timedelta(seconds=1))
    after = rotation_plan.shift_at(expected)

    assert before is not None
    assert after is not None
    assert before.end == expected == after.start
    assert after.number == before.number + 1
    assert local_time(before.start, zone_named(zone)).date() == dt.date.fromisoformat(
        day
    ) - dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("at", "user", "number"),
    [
        ("2025-01-06T09:00", "alice", 0),
        ("2025-01-07T08:59", "alice", 0),
        ("2025-01-07T09:00", "bob", 1),
        ("2025-01-08T12:00", "carol", 2),
        ("2025-01-09T09:00", "alice", 3),
        ("2025-02-05T09:00", "alice", 30),
        ("2025-07-01T10:00", "carol", 176),  # BST: handoff at 08:00 UTC
        ("2025-07-01T07:59", "bob", 175),
    ],
)
def test_participants_take_the_shift_in_turn_from_the_start(
    at: str, user: str, number: int
) -> None:
    rotation_plan = plan(zone=LONDON, start=utc("2025-01-06T09:00"))

    shift = rotation_plan.shift_at(utc(at))

    assert shift is not None
    assert (shift.user, shift.number) == (user, number)


def test_nobody_holds_a_rotation_before_it_starts() -> None:
    rotation_plan = plan(start=utc("2025-01-06T09:00"))

    assert rotation_plan.shift_at(utc("2025-01-06T08:59:59")) is None
    assert rotation_plan.shifts_from(utc("2024-12-01T00:00"), 1)[0].start == utc("2025-01-06T09:00")


@pytest.mark.parametrize(
    ("type_", "start", "first_end"),
    [
        # A start off the handoff time: the first shift runs to the first handoff after it.
        ("Daily", "2025-01-06T15:00", "2025-01-07T09:00"),
        ("Daily", "2025-01-06T08:00", "2025-01-06T09:00"),
        ("Weekly", "2025-01-06T10:00", "2025-01-13T09:00"),
        ("Monthly", "2025-01-06T10:00", "2025-02-06T09:00"),
        ("Hourly", "2025-01-06T10:30", "2025-01-06T11:00"),
    ],
)
def test_a_start_off_the_handoff_time_shortens_the_first_shift(
    type_: str, start: str, first_end: str
) -> None:
    rotation_plan = plan(type=type_, start=utc(start))

    first, second = rotation_plan.shifts_from(utc(start), 2)

    assert (first.user, first.start, first.end) == ("alice", utc(start), utc(first_end))
    assert (second.user, second.start) == ("bob", utc(first_end))


@pytest.mark.parametrize(
    ("start", "length", "handoffs"),
    [
        # Same day of the month, clamped to the month's last day, never drifting.
        (
            "2025-01-31T09:00",
            1,
            ["2025-02-28T09:00", "2025-03-31T09:00", "2025-04-30T09:00", "2025-05-31T09:00"],
        ),
        (
            "2024-01-31T09:00",
            1,
            ["2024-02-29T09:00", "2024-03-31T09:00", "2024-04-30T09:00", "2024-05-31T09:00"],
        ),
        (
            "2025-01-15T09:00",
            2,
            ["2025-03-15T09:00", "2025-05-15T09:00", "2025-07-15T09:00", "2025-09-15T09:00"],
        ),
        (
            "2025-11-30T09:00",
            1,
            ["2025-12-30T09:00", "2026-01-30T09:00", "2026-02-28T09:00", "2026-03-30T09:00"],
        ),
    ],
)
def test_monthly_keeps_the_local_day_and_time(start: str, length: int, handoffs: list[str]) -> None:
    rotation_plan = plan(type="Monthly", length=length, zone=LONDON, start=local(LONDON, start))

    shifts = rotation_plan.shifts_from(local(LONDON, start), 5)

    assert [shift.start for shift in shifts[1:]] == [local(LONDON, h) for h in handoffs]
    assert [shift.user for shift in shifts] == ["alice", "bob", "carol", "alice", "bob"]


def test_an_hourly_shift_swallowed_by_a_spring_forward_gap_is_skipped() -> None:
    rotation_plan = plan(type="Hourly", zone=NEW_YORK, start=local(NEW_YORK, "2025-03-09T00:00"))

    shifts = rotation_plan.shifts_from(local(NEW_YORK, "2025-03-09T00:00"), 4)

    # 02:00 does not exist: its handoff coincides with 03:00 EDT, and carol's turn lasts no time.
    assert [(s.user, s.number) for s in shifts] == [
        ("alice", 0),
        ("bob", 1),
        ("alice", 3),
        ("bob", 4),
    ]
    assert [s.start for s in shifts] == [
        utc("2025-03-09T05:00"),
        utc("2025-03-09T06:00"),
        utc("2025-03-09T07:00"),
        utc("2025-03-09T08:00"),
    ]


def test_the_rotation_time_zone_wins_over_the_schedule_time_zone() -> None:
    in_new_york = RotationPlan.of(rotation(zone=NEW_YORK), LONDON)
    in_london = RotationPlan.of(rotation(), LONDON)

    assert in_new_york.zone.key == NEW_YORK
    assert in_london.zone.key == LONDON


def test_an_unknown_time_zone_is_a_schedule_error() -> None:
    with pytest.raises(ScheduleError, match="Mars/Olympus"):
        plan(zone="Mars/Olympus")


@pytest.mark.parametrize(
    ("moment", "months", "expected"),
    [
        ("2025-01-31T09:00", 1, "2025-02-28T09:00"),
        ("2025-01-31T09:00", 13, "2026-02-28T09:00"),
        ("2025-03-31T09:00", -1, "2025-02-28T09:00"),
        ("2025-12-15T09:00", 1, "2026-01-15T09:00"),
    ],
)
def test_add_months_clamps_to_the_last_day(moment: str, months: int, expected: str) -> None:
    assert add_months(dt.datetime.fromisoformat(moment), months) == dt.datetime.fromisoformat(
        expected
    )
