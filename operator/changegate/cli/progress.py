"""`--wait`: follow one change with a watch until it settles or a deadline passes.

The change is read once, then watched from that resourceVersion; each time it
is written, what is new is printed. A change that reaches the awaited phase
(by default a final one) ends the wait; one that ends badly, or a deadline
that passes first, is a CommandError with its own exit code.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import closing
from typing import TextIO

from changegate.adapters.kube import ChangeRequests
from changegate.api.v1alpha1 import TERMINAL_PHASES, ChangePhase, ChangeRequest
from changegate.cli.cluster import name_of, namespace_of
from changegate.cli.errors import CommandError, ExitCode
from changegate.cli.summary import Progress
from changegate.cli.table import human_duration

# The way a change goes when all goes well; --until names a step of it.
HAPPY_PATH = (
    ChangePhase.PENDING,
    ChangePhase.APPROVED,
    ChangePhase.IN_PROGRESS,
    ChangePhase.COMPLETED,
)
AWAITABLE = HAPPY_PATH[1:]


def has_reached(change: ChangeRequest, until: ChangePhase) -> bool:
    """Whether the change is at `until` or beyond it on the happy path."""
    phase = change.status.phase
    return phase in HAPPY_PATH and HAPPY_PATH.index(phase) >= HAPPY_PATH.index(until)


def has_ended_badly(change: ChangeRequest) -> bool:
    phase = change.status.phase
    return phase in TERMINAL_PHASES and phase is not ChangePhase.COMPLETED


def settle(change: ChangeRequest, until: ChangePhase) -> ChangeRequest | None:
    """The change when the wait is over with success; an error when it ended badly."""
    if has_reached(change, until):
        return change
    if has_ended_badly(change):
        phase = change.status.phase.value if change.status.phase else ""
        raise CommandError(
            f"changerequest {change.metadata.name} ended {phase}", ExitCode.CHANGE_FAILED
        )
    return None


def follow(
    changes: ChangeRequests,
    change: ChangeRequest,
    until: ChangePhase,
    timeout_seconds: float,
    out: TextIO = sys.stderr,
    clock: Callable[[], float] = time.monotonic,
) -> ChangeRequest:
    """Print the change's progress until it reaches `until`, ends, or time runs out."""
    deadline = clock() + timeout_seconds
    progress = Progress()

    def observe(seen: ChangeRequest | None) -> ChangeRequest | None:
        if seen is None:
            raise CommandError(f"changerequest {change.metadata.name} was deleted")
        for line in progress.report(seen):
            print(line, file=out, flush=True)
        return settle(seen, until)

    current = change
    done = observe(current)
    while done is None:
        remaining = deadline - clock()
        if remaining <= 0:
            raise timeout_error(current, until, timeout_seconds)
        with closing(changes.watch(current, max(int(remaining), 1))) as events:
            for seen in events:
                done = observe(seen)
                current = seen or current
                if done is not None:
                    return done
        # The watch closed: its time ran out, or its resourceVersion is too old.
        current = changes.get(namespace_of(current), name_of(current))
        done = observe(current)
    return done


def timeout_error(
    current: ChangeRequest, until: ChangePhase, timeout_seconds: float
) -> CommandError:
    phase = current.status.phase.value if current.status.phase else "not yet reconciled"
    return CommandError(
        f"timed out after {human_duration(timeout_seconds)} waiting for changerequest"
        f" {current.metadata.name} to reach {until.value} (it is {phase})",
        ExitCode.TIMEOUT,
    )
