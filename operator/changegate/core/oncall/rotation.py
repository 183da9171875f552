"""A rotation's shifts: who of its participants holds it at an instant, and until when.

Handoffs lie on a grid of local wall-clock times: `handoffAt` on the local
date of `startTime`, stepped by `shiftLength` hours, days, weeks or months
(Monthly keeps the day of the month, clamped to the month's last day). The
first participant holds the shift from `startTime` to the first handoff after
it, then each handoff passes to the next participant in turn. Because the grid
is in local time, the shift that spans a daylight-saving change is shorter or
longer (23 or 25 hours for Daily in London) and never gaps or overlaps.
An Hourly handoff that falls wholly inside a spring-forward gap coincides with
the next one: that shift lasts no time and its participant's turn is skipped.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from changegate.api.v1alpha1.serviceoncall import Rotation, RotationType
from changegate.core.oncall.wallclock import as_utc, instant, local_time, zone_named

# How far the cheap estimate of a grid index may be off; DST moves it by one at most.
_MAX_CORRECTION = 8


@dataclass(frozen=True, slots=True)
class Shift:
    """One turn of one participant: from `start` (inclusive) to `end` (exclusive), UTC."""

    rotation: str
    user: str
    number: int
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True, slots=True)
class RotationPlan:
    """A rotation laid on its time zone's wall clock, ready to answer for any instant."""

    name: str
    type: RotationType
    length: int
    participants: tuple[str, ...]
    zone: ZoneInfo
    anchor: dt.datetime
    start: dt.datetime
    first_index: int = 0

    @classmethod
    def of(cls, rotation: Rotation, default_zone: str) -> RotationPlan:
        """The plan of a rotation; its own time zone, else the schedule's."""
        zone = zone_named(rotation.time_zone or default_zone)
        start = as_utc(rotation.start_time)
        handoff = dt.time.fromisoformat(rotation.handoff_at)
        anchor = dt.datetime.combine(local_time(start, zone).date(), handoff)
        plan = cls(
            name=rotation.name,
            type=rotation.type,
            length=rotation.shift_length,
            participants=tuple(rotation.participants),
            zone=zone,
            anchor=anchor,
            start=start,
        )
        return replace(plan, first_index=plan._index_at(start))

    def handoff(self, index: int) -> dt.datetime:
        """The instant of grid handoff `index` (0 is `handoffAt` on the start date)."""
        return instant(self.local_handoff(index), self.zone)

    def local_handoff(self, index: int) -> dt.datetime:
        """The local wall-clock time of grid handoff `index`."""
        steps = index * self.length
        if self.type is RotationType.HOURLY:
            return self.anchor + dt.timedelta(hours=steps)
        if self.type is RotationType.DAILY:
            return self.anchor + dt.timedelta(days=steps)
        if self.type is RotationType.WEEKLY:
            return self.anchor + dt.timedelta(weeks=steps)
        return add_months(self.anchor, steps)

    def shift_at(self, moment: dt.datetime) -> Shift | None:
        """The shift that holds at an instant, or None before the rotation starts."""
        moment = as_utc(moment)
        if moment < self.start:
            return None
        return self._shift(self._index_at(moment))

    def shifts_from(self, moment: dt.datetime, count: int) -> tuple[Shift, ...]:
        """`count` consecutive shifts: the one holding at `moment` (or the first) onwards."""
        shift = self.shift_at(max(as_utc(moment), self.start))
        shifts: list[Shift] = []
        while shift is not None and len(shifts) < count:
            shifts.append(shift)
            shift = self.shift_at(shift.end)
        return tuple(shifts)

    def _shift(self, index: int) -> Shift:
        number = index - self.first_index
        start = self.start if number == 0 else self.handoff(index)
        return Shift(
            rotation=self.name,
            user=self.participants[number % len(self.participants)],
            number=number,
            start=start,
            end=self.handoff(index + 1),
        )

    def _index_at(self, moment: dt.datetime) -> int:
        """The grid index whose handoff is the last one at or before `moment`."""
        index = self._estimate(moment)
        for _ in range(_MAX_CORRECTION):
            if self.handoff(index) > moment:
                index -= 1
            elif self.handoff(index + 1) <= moment:
                index += 1
            else:
                return index
        raise AssertionError(f"rotation {self.name}: no handoff grid index for {moment}")

    def _estimate(self, moment: dt.datetime) -> int:
        """A grid index close to `moment`, from its local time's distance to the anchor."""
        local = local_time(moment, self.zone)
        if self.type is RotationType.MONTHLY:
            months = (local.year - self.anchor.year) * 12 + local.month - self.anchor.month
            return months // self.length
        unit = {
            RotationType.HOURLY: dt.timedelta(hours=1),
            RotationType.DAILY: dt.timedelta(days=1),
            RotationType.WEEKLY: dt.timedelta(weeks=1),
        }[self.type]
        return (local - self.anchor) // (unit * self.length)


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """The same day of the month and time, `months` later, clamped to the month's last day."""
    year, month = divmod(moment.month - 1 + months, 12)
    year += moment.year
    last = calendar.monthrange(year, month + 1)[1]
    return moment.replace(year=year, month=month + 1, day=min(moment.day, last))
