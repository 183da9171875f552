"""A progress bar on stderr for long reads, drawn only when stderr is a terminal.

`changegate report` reads lists a page at a time; after each page it says how
many objects it has read of how many (the API server's remainingItemCount).
Scripts and pipes see nothing of it.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

WIDTH = 30


class Meter:
    """Counts objects read per kind and redraws one line in place: the kinds read at the
    same time (from several threads) share the line and the bar."""

    def __init__(self, out: TextIO = sys.stderr, shown: bool | None = None) -> None:
        self.out = out
        self.shown = out.isatty() if shown is None else shown
        self.drawn = False
        self.counts: dict[str, tuple[int, int]] = {}
        self.lock = threading.Lock()

    def update(self, what: str, read: int, remaining: int | None) -> None:
        if not self.shown:
            return
        with self.lock:
            self.counts[what] = (read, read + (remaining or 0))
            done = sum(r for r, _ in self.counts.values())
            total = sum(t for _, t in self.counts.values())
            bar = "#" * round((done / total if total else 1.0) * WIDTH)
            kinds = ", ".join(f"{w} {r}/{t}" for w, (r, t) in self.counts.items())
            self.out.write(f"\rreading [{bar:<{WIDTH}}] {kinds}\033[K")
            self.out.flush()
            self.drawn = True

    def finish(self) -> None:
        """Clear the line, so the report starts on a clean one."""
        if self.drawn:
            self.out.write("\r\033[K")
            self.out.flush()
            self.drawn = False
