"""Working hours: whether an instant is in them, and when that next changes.

Working hours are local to the on-call time zone: on each working day that is
not a holiday, from `startAt` to `endAt` on that day's wall clock (resolved
like handoffs across daylight-saving changes). Holidays are out of hours all
day. `schedule` uses it to switch WorkingHours and OutOfHours rotations.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from changegate.api.v1alpha1.common import Weekday
from changegate.api.v1alpha1.serviceoncall import WorkingHours
from changegate.core.oncall.wallclock import as_utc, instant, local_time, zone_named

_WEEKDAYS = tuple(Weekday)  # Monday first, as date.weekday() counts


@dataclass(frozen=True, slots=True)
class WorkingCalendar:
    """The team's working hours in its time zone, holidays excluded."""

    zone: ZoneInfo
    days: frozenset[int]
    start: dt.time
    end: dt.time
    holidays: frozenset[dt.date]

    @classmethod
    def of(cls, hours: WorkingHours | None, zone_name: str) -> WorkingCalendar:
        """The calendar of declared working hours; Monday to Friday 09:00-17:00 if none."""
        hours = hours or WorkingHours()
        return cls(
            zone=zone_named(zone_name),
            days=frozenset(_WEEKDAYS.index(day) for day in hours.days),
            start=dt.time.fromisoformat(hours.start_at),
            end=dt.time.fromisoformat(hours.end_at),
            holidays=frozenset(hours.holidays),
        )

    def is_working_day(self, day: dt.date) -> bool:
        """Whether a local date has working hours at all."""
        return day.weekday() in self.days and day not in self.holidays

    def is_working(self, moment: dt.datetime) -> bool:
        """Whether an instant falls in working hours."""
        moment = as_utc(moment)
        day = local_time(moment, self.zone).date()
        if not self.is_working_day(day):
            return False
        opens, closes = self.hours_of(day)
        return opens <= moment < closes

    def hours_of(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """The instants working hours open and close on a local date."""
        return (
            instant(dt.datetime.combine(day, self.start), self.zone),
            instant(dt.datetime.combine(day, self.end), self.zone),
        )

    def next_change(self, moment: dt.datetime) -> dt.datetime | None:
        """The first instant after `moment` at which working hours open or close.

        None when no day is ever a working day. Holidays can only remove
        working days, so a search as long as a week per holiday finds the next.
        """
        moment = as_utc(moment)
        if not self.days:
            return None
        first = local_time(moment, self.zone).date() - dt.timedelta(days=1)
        for offset in range(7 * (len(self.holidays) + 2)):
            day = first + dt.timedelta(days=offset)
            if not self.is_working_day(day):
                continue
            later = [edge for edge in self.hours_of(day) if edge > moment]
            if later:
                return min(later)
        return None
