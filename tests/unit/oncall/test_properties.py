"""Invariants of the on-call core over generated rotations and schedules (hypothesis).

Shifts tile time with no gap and no overlap; handoffs fall at the declared
local wall-clock time (or right after a spring-forward gap that swallowed it);
an answer holds unchanged from its instant to its `until` and changes there.
Time zones include Lord Howe's half-hour change; instants cluster near changes.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import event, given, settings
from hypothesis import strategies as st

from changegate.api.v1alpha1.serviceoncall import OnCall, Rotation, RotationType
from changegate.core.oncall.rotation import RotationPlan
from changegate.core.oncall.schedule import OnCallAnswer, service_schedule, upcoming, who_is_on_call
from changegate.core.oncall.wallclock import local_time
from tests.unit.oncall.schedules import on_call, override, rotation, working_hours

ZONES = ("Europe/London", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC")
PEOPLE = ("alice", "bob", "carol", "dave")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CHANGES = tuple(
    (dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC), ZoneInfo(zone))
    for text, zone in (
        ("2025-03-30T01:00", "Europe/London"),  # forward an hour
        ("2025-10-26T01:00", "Europe/London"),  # back an hour
        ("2025-03-09T07:00", "America/New_York"),
        ("2025-11-02T06:00", "America/New_York"),
        ("2025-04-05T15:00", "Australia/Lord_Howe"),  # back half an hour
        ("2025-10-04T15:30", "Australia/Lord_Howe"),  # forward half an hour
    )
)
MAX_LENGTH = {"Hourly": 25, "Daily": 3, "Weekly": 2, "Monthly": 3}

anywhere = st.datetimes(
    min_value=dt.datetime(2024, 1, 1),
    max_value=dt.datetime(2026, 12, 31),
    timezones=st.just(dt.UTC),
)
near_a_change = st.builds(
    lambda change, minutes: change + dt.timedelta(minutes=minutes),
    st.sampled_from([change for change, _ in CHANGES]),
    st.integers(-3 * 24 * 60, 3 * 24 * 60),
)
moments = st.one_of(anywhere, near_a_change)
clocks = st.builds(
    "{:02d}:{:02d}".format,
    st.one_of(st.sampled_from([0, 1, 2, 3]), st.integers(0, 23)),
    st.sampled_from([0, 15, 30, 45, 59]),
)


@st.composite
def rotations(draw: Any, name: str = "primary", before: dt.datetime | None = None) -> Rotation:
    type_ = draw(st.sampled_from(list(MAX_LENGTH)))
    earlier = dt.timedelta(hours=draw(st.integers(0, 24 * 400)), minutes=draw(st.integers(0, 59)))
    return rotation(
        name=name,
        type=type_,
        length=draw(st.integers(1, MAX_LENGTH[type_])),
        participants=draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=4)),
        handoff=draw(clocks),
        start=(before - earlier) if before else draw(moments),
        zone=draw(st.sampled_from(ZONES)),
        coverage=draw(st.sampled_from(["Always", "WorkingHours", "OutOfHours"])),
    )


@st.composite
def around_a_change(draw: Any) -> tuple[Rotation, dt.datetime]:
    """A rotation whose handoff falls in, or next to, a daylight-saving change it spans."""
    change, zone = draw(st.sampled_from(CHANGES))
    hour = (local_time(change - dt.timedelta(minutes=1), zone).hour + draw(st.integers(0, 1))) % 24
    type_ = draw(st.sampled_from(["Hourly", "Daily", "Weekly"]))
    back = dt.timedelta(weeks=1) if type_ == "Weekly" else dt.timedelta(days=1)
    start = change - back * draw(st.integers(1, 30)) - dt.timedelta(hours=draw(st.integers(0, 3)))
    r = rotation(
        type=type_,
        length=draw(st.integers(1, 3)),
        participants=draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=4)),
        handoff=f"{hour:02d}:{draw(st.sampled_from([0, 15, 29, 30, 45, 59])):02d}",
        start=start,
        zone=zone.key,
    )
    return r, change - dt.timedelta(hours=draw(st.integers(0, 72)))


rotation_cases = st.one_of(st.tuples(rotations(), moments), around_a_change())


@st.composite
def schedules(draw: Any, at: dt.datetime) -> OnCall:
    count = draw(st.integers(0, 3))
    rotation_list = [draw(rotations(f"r{i}", before=at)) for i in range(count)]
    opens = draw(st.integers(0, 22))
    days = draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=7, unique=True))
    holidays = draw(st.lists(st.integers(-10, 10), max_size=3, unique=True))
    hours = working_hours(
        days=days,
        start=f"{opens:02d}:00",
        end=f"{draw(st.integers(opens + 1, 23)):02d}:30",
        holidays=[(at.date() + dt.timedelta(days=d)).isoformat() for d in holidays],
    )
    windows = draw(st.lists(st.tuples(st.integers(-48, 48), st.integers(1, 72)), max_size=2))
    overrides = [
        override(
            draw(st.sampled_from(PEOPLE)),
            at + dt.timedelta(hours=offset),
            at + dt.timedelta(hours=offset + length),
            replaces=draw(st.one_of(st.none(), st.sampled_from(PEOPLE))),
        )
        for offset, length in windows
    ]
    zone = draw(st.sampled_from(ZONES))
    return on_call(*rotation_list, zone=zone, hours=hours, overrides=overrides)


def is_a_change(moment: dt.datetime, zone: ZoneInfo) -> bool:
    """Whether the zone's offset changes at exactly this instant."""
    before = (moment - dt.timedelta(seconds=1)).astimezone(zone).utcoffset()
    return before != moment.astimezone(zone).utcoffset()


def is_repeated(local: dt.datetime, zone: ZoneInfo) -> bool:
    first, second = (local.replace(tzinfo=zone, fold=fold).utcoffset() for fold in (0, 1))
    return first != second and exists(local, zone)


def exists(local: dt.datetime, zone: ZoneInfo) -> bool:
    return local_time(local.replace(tzinfo=zone), zone) == local


@settings(max_examples=200, deadline=None)
@given(rotation_cases)
def test_consecutive_shifts_tile_time(case: tuple[Rotation, dt.datetime]) -> None:
    r, at = case
    plan = RotationPlan.of(r, "UTC")

    shifts = plan.shifts_from(at, 12)

    assert len(shifts) == 12
    assert shifts[0].start <= max(at, plan.start) < shifts[0].end
    for shift, following in itertools.pairwise(shifts):
        assert shift.start < shift.end
        assert shift.end == following.start
        assert following.number > shift.number
    for shift in shifts:
        assert shift.user == r.participants[shift.number % len(r.participants)]
        assert plan.shift_at(shift.start) == shift
        assert plan.shift_at(shift.end - dt.timedelta(microseconds=1)) == shift


@settings(max_examples=200, deadline=None)
@given(rotation_cases)
def test_handoffs_fall_at_the_declared_wall_clock_time(case: tuple[Rotation, dt.datetime]) -> None:
    r, at = case
    plan = RotationPlan.of(r, "UTC")
    handoff = dt.time.fromisoformat(r.handoff_at)

    handoffs = [shift.start for shift in plan.shifts_from(at, 10) if shift.number > 0]

    for moment in handoffs:
        assert_on_the_wall_clock(moment, handoff, r.type, plan.zone)
    locals_ = [local_time(moment, plan.zone) for moment in handoffs]
    for earlier, later in itertools.pairwise(locals_):
        assert_one_step_apart(earlier.date(), later.date(), r, local_time(plan.start, plan.zone))


def assert_on_the_wall_clock(
    moment: dt.datetime, handoff: dt.time, type_: RotationType, zone: ZoneInfo
) -> None:
    local = local_time(moment, zone)
    on_time = local.minute == handoff.minute and (
        type_ is RotationType.HOURLY or local.hour == handoff.hour
    )
    event("handoff on time" if on_time else "handoff moved by a gap")
    if on_time:
        # The first occurrence of a repeated time, never the second.
        assert moment.astimezone(zone).fold == 0
        if is_repeated(local, zone):
            event("handoff at a repeated time")
    else:
        # Only a spring-forward gap moves a handoff, to the instant the clock jumped.
        assert is_a_change(moment, zone)
        if type_ is not RotationType.HOURLY:
            assert not exists(dt.datetime.combine(local.date(), handoff), zone)


def assert_one_step_apart(
    earlier: dt.date, later: dt.date, r: Rotation, start: dt.datetime
) -> None:
    if r.type is RotationType.DAILY:
        assert later - earlier == dt.timedelta(days=r.shift_length)
    elif r.type is RotationType.WEEKLY:
        assert later - earlier == dt.timedelta(weeks=r.shift_length)
    elif r.type is RotationType.MONTHLY:
        months = (later.year - earlier.year) * 12 + later.month - earlier.month
        assert months == r.shift_length
        assert later.day == min(start.day, calendar.monthrange(later.year, later.month)[1])


def seen(answer: OnCallAnswer) -> tuple[object, ...]:
    return (answer.entries, answer.reason, answer.message)


@settings(max_examples=150, deadline=None)
@given(st.data(), moments)
def test_the_answer_holds_until_its_until_and_changes_there(
    data: st.DataObject, at: dt.datetime
) -> None:
    schedule = service_schedule(data.draw(schedules(at)))

    answer = who_is_on_call(schedule, at)

    assert answer.nobody == (answer.users == ())
    if answer.until is None:
        later = who_is_on_call(schedule, at + dt.timedelta(days=400))
        assert seen(later) == seen(answer)
        return
    assert answer.until > at
    span = answer.until - at
    for moment in (at + span / 3, at + span / 2, answer.until - dt.timedelta(microseconds=1)):
        during = who_is_on_call(schedule, moment)
        assert (seen(during), during.until) == (seen(answer), answer.until)
    assert seen(who_is_on_call(schedule, answer.until)) != seen(answer)


@settings(max_examples=60, deadline=None)
@given(st.data(), moments)
def test_upcoming_answers_tile_time_and_each_differs_from_the_last(
    data: st.DataObject, at: dt.datetime
) -> None:
    schedule = service_schedule(data.draw(schedules(at)))

    answers = upcoming(schedule, at, 6)

    assert answers[0].at == at
    for answer, following in itertools.pairwise(answers):
        assert answer.until == following.at
        assert seen(answer) != seen(following)
    assert len(answers) == 6 or answers[-1].until is None
