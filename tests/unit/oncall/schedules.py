"""Builders for the on-call tests: rotations, schedules and instants, by keyword.

Each builder starts from a realistic default (a daily rotation of three people
handing over at 09:00) so that a table row names only what its case varies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from changegate.api.v1alpha1.serviceoncall import (
    Member,
    OnCall,
    Override,
    Rotation,
    WorkingHours,
)

PEOPLE = ("alice", "bob", "carol")


def utc(text: str) -> dt.datetime:
    """An instant written in UTC, e.g. `2025-03-30T01:00`."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def local(zone: str, text: str) -> dt.datetime:
    """An instant written as a zone's wall-clock time (first occurrence if repeated), in UTC."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


def rotation(
    name: str = "primary",
    type: str = "Daily",
    participants: Sequence[str] = PEOPLE,
    handoff: str = "09:00",
    start: dt.datetime | None = None,
    zone: str | None = None,
    length: int = 1,
    coverage: str = "Always",
) -> Rotation:
    """A rotation; by default daily at 09:00, from Monday 6 January 2025 09:00 UTC."""
    return Rotation.model_validate(
        {
            "name": name,
            "type": type,
            "shiftLength": length,
            "participants": list(participants),
            "handoffAt": handoff,
            "startTime": start or utc("2025-01-06T09:00"),
            "timeZone": zone,
            "coverage": coverage,
        }
    )


def override(
    user: str, start: dt.datetime, end: dt.datetime, replaces: str | None = None
) -> Override:
    return Override(user=user, replaces=replaces, start_time=start, end_time=end)


def working_hours(
    days: Sequence[str] = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
    start: str = "09:00",
    end: str = "17:00",
    holidays: Sequence[str] = (),
) -> WorkingHours:
    return WorkingHours.model_validate(
        {"days": list(days), "startAt": start, "endAt": end, "holidays": list(holidays)}
    )


def on_call(
    *rotations: Rotation,
    zone: str = "UTC",
    hours: WorkingHours | None = None,
    overrides: Sequence[Override] = (),
    manager: str | None = None,
) -> OnCall:
    fields: dict[str, Any] = {
        "time_zone": zone,
        "rotations": list(rotations),
        "working_hours": hours,
        "overrides": list(overrides),
        "incident_manager": Member(user=manager) if manager else None,
    }
    return OnCall(**fields)
