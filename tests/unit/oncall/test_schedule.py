"""Who is on call: coverage, holidays, overrides, nobody, the incident manager, `until`."""

from __future__ import annotations

import datetime as dt

import pytest

from changegate.api.v1alpha1.serviceoncall import OnCall
from changegate.core.oncall.schedule import (
    OnCallEntry,
    Reason,
    Source,
    incident_manager_schedule,
    on_call_now,
    service_schedule,
    upcoming,
    who_is_on_call,
)
from changegate.core.oncall.wallclock import ScheduleError
from tests.unit.oncall.schedules import local, on_call, override, rotation, utc, working_hours

LONDON = "Europe/London"
MONDAY = local(LONDON, "2025-01-06T09:00")


def split_cover(*, holidays: tuple[str, ...] = ("2025-04-21", "2025-12-25")) -> OnCall:
    """alice and bob by day, carol and dave out of hours, each weekly from Monday 09:00."""
    return on_call(
        rotation("day", "Weekly", ["alice", "bob"], start=MONDAY, coverage="WorkingHours"),
        rotation("night", "Weekly", ["carol", "dave"], start=MONDAY, coverage="OutOfHours"),
        zone=LONDON,
        hours=working_hours(holidays=holidays),
    )


@pytest.mark.parametrize(
    ("at", "users", "rotation_name", "until"),
    [
        ("2025-01-06T10:00", ("alice",), "day", "2025-01-06T17:00"),
        ("2025-01-06T17:00", ("carol",), "night", "2025-01-07T09:00"),
        ("2025-01-10T18:00", ("carol",), "night", "2025-01-13T09:00"),  # the whole weekend
        ("2025-01-11T03:00", ("carol",), "night", "2025-01-13T09:00"),
        ("2025-01-13T08:59", ("carol",), "night", "2025-01-13T09:00"),
        ("2025-01-13T09:00", ("bob",), "day", "2025-01-13T17:00"),
        ("2025-01-13T17:00", ("dave",), "night", "2025-01-14T09:00"),  # handed over unseen at 09:00
        ("2025-04-21T10:00", ("dave",), "night", "2025-04-22T09:00"),  # Easter Monday
        ("2025-12-25T12:00", ("carol",), "night", "2025-12-26T09:00"),  # Christmas Day
        ("2025-03-31T09:00", ("alice",), "day", "2025-03-31T17:00"),  # the first day of BST
    ],
)
def test_coverage_follows_working_hours_and_holidays(
    at: str, users: tuple[str, ...], rotation_name: str, until: str
) -> None:
    answer = who_is_on_call(service_schedule(split_cover()), local(LONDON, at))

    assert answer.users == users
    assert answer.entries[0].rotation == rotation_name
    assert answer.reason is Reason.ON_CALL
    assert answer.until == local(LONDON, until)


@pytest.mark.parametrize(
    ("overrides", "users", "entries", "until"),
    [
        # Replace one participant: dave holds bob's shift in primary.
        (
            [override("dave", utc("2025-01-07T10:00"), utc("2025-01-07T14:00"), replaces="bob")],
            ("dave",),
            (OnCallEntry("dave", Source.OVERRIDE, "primary", "bob"),),
            "2025-01-07T14:00",
        ),
        # Add a person: the one replaced is not on call, so dave joins bob.
        (
            [override("dave", utc("2025-01-07T10:00"), utc("2025-01-07T14:00"), replaces="carol")],
            ("bob", "dave"),
            (
                OnCallEntry("bob", Source.ROTATION, "primary"),
                OnCallEntry("dave", Source.OVERRIDE, None, "carol"),
            ),
            "2025-01-07T14:00",
        ),
        # Without `replaces`, the override takes everyone's place.
        (
            [override("dave", utc("2025-01-07T10:00"), utc("2025-01-07T14:00"))],
            ("dave",),
            (OnCallEntry("dave", Source.OVERRIDE),),
            "2025-01-07T14:00",
        ),
        # Two such overrides share the window; the shorter one ends first.
        (
            [
                override("dave", utc("2025-01-07T10:00"), utc("2025-01-07T14:00")),
                override("erin", utc("2025-01-07T11:00"), utc("2025-01-07T13:00")),
            ],
            ("dave", "erin"),
            (OnCallEntry("dave", Source.OVERRIDE), OnCallEntry("erin", Source.OVERRIDE)),
            "2025-01-07T13:00",
        ),
        # A swap of a swap follows through, in the order listed.
        (
            [
                override("dave", utc("2025-01-07T10:00"), utc("2025-01-07T14:00"), replaces="bob"),
                override("erin", utc("2025-01-07T10:00"), utc("2025-01-07T15:00"), replaces="dave"),
            ],
            ("erin",),
            (OnCallEntry("erin", Source.OVERRIDE, "primary", "dave"),),
            "2025-01-07T14:00",
        ),
        # Outside its window an override changes nothing, but ends `until` at its start.
        (
            [override("dave", utc("2025-01-07T13:00"), utc("2025-01-07T14:00"))],
            ("bob",),
            (OnCallEntry("bob", Source.ROTATION, "primary"),),
            "2025-01-07T13:00",
        ),
        (
            [override("dave", utc("2025-01-07T08:00"), utc("2025-01-07T12:00"))],
            ("bob",),
            (OnCallEntry("bob", Source.ROTATION, "primary"),),
            "2025-01-08T09:00",
        ),
    ],
)
def test_overrides_always_win(
    overrides: list[object], users: tuple[str, ...], entries: tuple[OnCallEntry, ...], until: str
) -> None:
    schedule = service_schedule(on_call(rotation(), overrides=overrides))  # type: ignore[arg-type]

    answer = who_is_on_call(schedule, utc("2025-01-07T12:00"))

    assert answer.users == users
    assert answer.entries == entries
    assert answer.until == utc(until)


def test_an_override_puts_someone_on_call_when_nobody_else_is() -> None:
    weekend = override("dave", local(LONDON, "2025-01-11T10:00"), local(LONDON, "2025-01-11T18:00"))
    schedule = service_schedule(
        on_call(
            rotation("day", start=MONDAY, coverage="WorkingHours"),
            zone=LONDON,
            overrides=[weekend],
        )
    )

    answer = who_is_on_call(schedule, local(LONDON, "2025-01-11T12:00"))

    assert answer.users == ("dave",)
    assert answer.until == local(LONDON, "2025-01-11T18:00")
    assert who_is_on_call(schedule, answer.until).nobody


@pytest.mark.parametrize(
    ("schedule", "at", "reason", "until", "says"),
    [
        (on_call(), "2025-01-06T10:00", Reason.NO_ROTATIONS, None, "no rotation"),
        (
            on_call(rotation()),
            "2025-01-01T00:00",
            Reason.NOT_STARTED,
            "2025-01-06T09:00",
            "2025-01-06T09:00:00Z",
        ),
        (
            on_call(rotation(coverage="WorkingHours")),
            "2025-01-11T10:00",
            Reason.OUTSIDE_COVERAGE,
            "2025-01-13T09:00",
            "no rotation's coverage",
        ),
        (
            on_call(
                rotation(coverage="WorkingHours"), hours=working_hours(holidays=["2025-01-13"])
            ),
            "2025-01-13T10:00",
            Reason.OUTSIDE_COVERAGE,
            "2025-01-14T09:00",
            "no rotation's coverage",
        ),
    ],
)
def test_nobody_on_call_is_an_answer_with_a_reason(
    schedule: OnCall, at: str, reason: Reason, until: str | None, says: str
) -> None:
    answer = who_is_on_call(service_schedule(schedule), utc(at))

    assert answer.nobody
    assert answer.users == ()
    assert answer.reason is reason
    assert says in answer.message
    assert answer.until == (utc(until) if until else None)


def test_rotations_that_overlap_all_answer_in_their_order() -> None:
    schedule = service_schedule(
        on_call(rotation("primary"), rotation("secondary", participants=["carol", "alice", "bob"]))
    )

    answer = who_is_on_call(schedule, utc("2025-01-06T12:00"))

    assert answer.users == ("alice", "carol")
    assert answer.in_rotation("secondary") == ("carol",)
    assert answer.message == "alice (primary), carol (secondary)"


def test_a_rotation_of_one_person_never_changes_hands() -> None:
    schedule = service_schedule(on_call(rotation(participants=["alice"])))

    answer = who_is_on_call(schedule, utc("2025-03-01T00:00"))

    assert answer.users == ("alice",)
    assert answer.until is None


def test_until_skips_handoffs_that_change_nothing_seen() -> None:
    # Hourly handoffs out of hours are invisible to a WorkingHours rotation.
    schedule = service_schedule(
        on_call(rotation(type="Hourly", participants=["alice", "bob"], coverage="WorkingHours"))
    )

    answer = who_is_on_call(schedule, utc("2025-01-10T17:00"))

    assert answer.nobody
    assert answer.until == utc("2025-01-13T09:00")


def test_upcoming_answers_tile_time() -> None:
    schedule = service_schedule(on_call(rotation(zone=LONDON, start=MONDAY)))

    answers = upcoming(schedule, local(LONDON, "2025-03-28T12:00"), 4)

    assert [a.users for a in answers] == [("alice",), ("bob",), ("carol",), ("alice",)]
    assert [a.at for a in answers[1:]] == [a.until for a in answers[:-1]]
    assert [a.until for a in answers] == [
        local(LONDON, day + "T09:00")
        for day in ("2025-03-29", "2025-03-30", "2025-03-31", "2025-04-01")
    ]
    assert answers[2].at - answers[1].at == dt.timedelta(hours=23)  # spring forward


def test_upcoming_stops_when_nothing_changes_any_more() -> None:
    answers = upcoming(service_schedule(on_call()), utc("2025-01-06T00:00"), 5)

    assert len(answers) == 1
    assert answers[0].nobody


@pytest.mark.parametrize(
    ("schedule", "at", "users", "source", "until"),
    [
        # A single named incident manager is a complete schedule, out of hours included.
        (on_call(manager="irene"), "2025-01-11T03:00", ("irene",), Source.INCIDENT_MANAGER, None),
        # A rotation of incident managers wins over the named fallback...
        (
            on_call(rotation("managers", "Weekly", ["ivan", "ines"]), manager="irene"),
            "2025-01-14T03:00",
            ("ines",),
            Source.ROTATION,
            "2025-01-20T09:00",
        ),
        # ...which covers when the rotation does not.
        (
            on_call(
                rotation("managers", "Weekly", ["ivan", "ines"], coverage="WorkingHours"),
                manager="irene",
            ),
            "2025-01-11T03:00",
            ("irene",),
            Source.INCIDENT_MANAGER,
            "2025-01-13T09:00",
        ),
    ],
)
def test_the_incident_manager_has_a_schedule_too(
    schedule: OnCall, at: str, users: tuple[str, ...], source: Source, until: str | None
) -> None:
    answer = who_is_on_call(incident_manager_schedule(schedule), utc(at))

    assert answer.users == users
    assert answer.entries[0].source is source
    assert answer.until == (utc(until) if until else None)


def test_a_service_schedule_ignores_the_named_incident_manager() -> None:
    answer = who_is_on_call(service_schedule(on_call(manager="irene")), utc("2025-01-11T03:00"))

    assert answer.nobody


def test_an_unknown_time_zone_is_a_schedule_error() -> None:
    with pytest.raises(ScheduleError, match="Mars/Olympus"):
        service_schedule(on_call(rotation(), zone="Mars/Olympus"))


def test_the_status_shows_the_first_person_on_call_and_until_when() -> None:
    swap = override("dave", utc("2025-01-07T10:00"), utc("2025-01-07T14:00"), replaces="bob")
    schedule = service_schedule(on_call(rotation(), overrides=[swap]))

    by_rotation = on_call_now(who_is_on_call(schedule, utc("2025-01-07T09:00")))
    by_override = on_call_now(who_is_on_call(schedule, utc("2025-01-07T12:00")))

    assert by_rotation is not None
    assert (by_rotation.user, by_rotation.rotation, by_rotation.override) == (
        "bob",
        "primary",
        False,
    )
    assert by_rotation.until_time == utc("2025-01-07T10:00")
    assert by_override is not None
    assert (by_override.user, by_override.rotation, by_override.override) == (
        "dave",
        "primary",
        True,
    )
    assert on_call_now(who_is_on_call(service_schedule(on_call()), utc("2025-01-07T12:00"))) is None
