"""What the core needs from the outside world, as Protocols: the ports adapters fill.

The core is pure: it takes values and returns decisions, so today its one port
is the clock, which handlers read once per event and pass in as `now`. Ports
for external systems (ticketing, paging, chat) join here as they land.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """The current time, timezone-aware; tests pass a fixed one."""

    def __call__(self) -> dt.datetime: ...
