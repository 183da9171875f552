"""The scheduler fires an item that appears while it sleeps when it falls due, not at TICK.

Real asyncio and the real clock: an escalation step due 0.2 s after the scheduler went
to sleep for TICK seconds runs within a second once a handler says when it is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Hashable
from types import SimpleNamespace

from changegate.core.schedule import Due
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.schedule import TICK, Job, Wakeup, note_indexed, run_scheduler
from changegate.handlers.controller.state import ControllerState, utc_now
from changegate.settings import Role, Settings
from tests.unit.controller.test_glue import indexes


def real_time_state() -> ControllerState:
    state = ControllerState(Settings(Role.CONTROLLER), kube=None, clock=utc_now)  # type: ignore[arg-type]
    state.indexed.set()
    return state


async def fired_after(told: bool) -> tuple[float | None, float]:
    """Seconds from a new item appearing to its run (None: not within TICK - 1 s), and
    how late after its due time it ran."""
    state, items = real_time_state(), list[Due]()
    ran: dict[Hashable, dt.datetime] = {}
    wakeup, fired, loop = Wakeup(), asyncio.Event(), asyncio.get_running_loop()

    def dues(_: ControllerState, __: Indexes) -> list[Due]:
        return list(items)

    def run(_: ControllerState, __: Indexes, key: Hashable, now: dt.datetime) -> None:
        ran[key] = now
        items.clear()
        loop.call_soon_threadsafe(fired.set)  # jobs run in a worker thread

    task = asyncio.create_task(
        run_scheduler(state, indexes(), [Job("escalation", dues, run)], wakeup)
    )
    await asyncio.sleep(0.05)  # let it go to sleep for TICK with nothing due
    assert wakeup.until is not None
    appeared = utc_now()
    due = appeared + dt.timedelta(seconds=0.2)
    items.append(Due("step-1", due))
    if told:
        wakeup.due_at(due)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(fired.wait(), TICK - 1)
    task.cancel()
    if "step-1" not in ran:
        return None, 0.0
    return (ran["step-1"] - appeared).total_seconds(), (ran["step-1"] - due).total_seconds()


def test_a_step_due_while_the_scheduler_sleeps_fires_on_time_once_it_is_told() -> None:
    after, late = asyncio.run(fired_after(told=True))
    assert after is not None
    assert 0.2 <= after < 1.0
    assert 0 <= late < 0.5


def test_a_wakeup_for_later_than_the_scheduler_looks_anyway_does_not_wake_it() -> None:
    async def scenario() -> bool:
        wakeup, now = Wakeup(), utc_now()
        sleeping = asyncio.create_task(wakeup.sleep(0.3, now))
        await asyncio.sleep(0.01)
        wakeup.due_at(now + dt.timedelta(seconds=10))
        await asyncio.sleep(0.05)
        woke_early = sleeping.done()
        await sleeping
        return woke_early

    assert asyncio.run(scenario()) is False


def test_the_scheduler_reads_nothing_until_kopf_has_filled_its_indexes() -> None:
    """A pass over half-filled indexes would compute figures from part of the evidence: the
    scheduler starts at the first namespace event, which Kopf sends only once indexed."""

    async def scenario() -> tuple[int, int]:
        state = ControllerState(Settings(Role.CONTROLLER), kube=None, clock=utc_now)  # type: ignore[arg-type]
        looked, looked_after = 0, 0
        first = asyncio.Event()

        def dues(_: ControllerState, __: Indexes) -> list[Due]:
            nonlocal looked
            looked += 1
            first.set()
            return []

        task = asyncio.create_task(
            run_scheduler(state, indexes(), [Job("dora", dues, lambda *_: None)])
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first.wait(), 0.3)
        looked_before = looked
        await note_indexed(memo=SimpleNamespace(state=state))
        await asyncio.wait_for(first.wait(), 5)
        looked_after = looked
        task.cancel()
        return looked_before, looked_after

    before, after = asyncio.run(scenario())
    assert before == 0
    assert after >= 1
