"""When periodic work is due: the pure half of the controller's one scheduler.

Periodic work (a change expiring when its window passes, evidence outliving
retention, later escalation timers) is never remembered in memory: each kind
derives, from the objects that exist, a `Due` per item. The scheduler in
handlers/controller/schedule.py runs what is due and sleeps until the next one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Due:
    """One item of periodic work and when it falls due."""

    key: Hashable
    at: dt.datetime


def due_now(dues: Iterable[Due], now: dt.datetime) -> list[Due]:
    """The items due at `now`, the longest overdue first."""
    return sorted((d for d in dues if d.at <= now), key=lambda d: d.at)


def seconds_to_next(dues: Iterable[Due], now: dt.datetime, longest: float) -> float:
    """Seconds to sleep until the next item falls due, never more than `longest`."""
    ahead = [(d.at - now).total_seconds() for d in dues if d.at > now]
    return max(0.0, min([longest, *ahead]))
