"""Local wall-clock times to instants, right across daylight-saving changes.

The one place that decides what a local time means on the two awkward days a
year: a time skipped by a spring-forward change resolves to the first instant
after the gap, and a time that happens twice on a fall-back day resolves to
its first occurrence (fold 0). Every instant it returns is in UTC.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ScheduleError(ValueError):
    """An on-call schedule that cannot be evaluated, for example an unknown time zone."""


@lru_cache(maxsize=256)
def zone_named(name: str) -> ZoneInfo:
    """The IANA time zone of that name, or ScheduleError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ScheduleError(f"unknown time zone {name!r}") from error


def as_utc(moment: dt.datetime) -> dt.datetime:
    """The instant in UTC; a naive time is read as UTC, as Kubernetes writes times."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def local_time(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The naive local wall-clock reading of an instant in a zone."""
    return as_utc(moment).astimezone(zone).replace(tzinfo=None)


def instant(local: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The instant (UTC) a naive local time means in a zone.

    A time in a spring-forward gap does not exist; it becomes the first
    instant after the gap (the change itself), so a handoff never moves
    later than the clock allows. A time repeated by a fall-back change is
    its first occurrence, so a shift never ends twice.
    """
    first = local.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)
    if local_time(first, zone) == local:
        return first
    return _end_of_gap(local, zone)


def _end_of_gap(local: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The instant the clock jumped over a non-existent local time.

    Read with the offset after the change, the time lands before it; with the
    offset before, after it. The change lies between, on a whole second.
    """
    whole = local.replace(microsecond=0)
    low = whole.replace(tzinfo=zone, fold=1).astimezone(dt.UTC)
    high = whole.replace(tzinfo=zone, fold=0).astimezone(dt.UTC) + dt.timedelta(seconds=1)
    before = low.astimezone(zone).utcoffset()
    while (span := int((high - low).total_seconds())) > 1:
        middle = low + dt.timedelta(seconds=span // 2)
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high
