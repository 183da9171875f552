"""The controller's one scheduler for periodic work: expiry of changes, retention of evidence.

The single documented mechanism for work that no watch event wakes: each job
derives its due items from the Kopf indexes (an approved change's expiration
time, a record's finish time plus retention; core.schedule does the timing),
so nothing is held in memory and a restart re-derives everything. The loop
runs what is due, then sleeps until the next item is due, at most TICK seconds;
an item that appears meanwhile and falls due sooner (a new Incident's first
escalation step) cuts the sleep short through `Wakeup`. An item whose write the API server
refuses (KubeError) is logged and stays due, so the next pass tries it again.
It starts once Kopf has filled its indexes (`note_indexed`). Kopf timers are not
used: they would put finalizers on objects. On-call handoffs, each service's DORA
figures (handlers/controller/dora) and its lastIncident
(handlers/controller/incident_refs) are in JOBS; incident escalation timers
(handlers/controller/incidents) join them at start-up, since they hand their
work to the incidents' pager.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import kopf

from changegate.adapters.kube import KubeError
from changegate.core.change.retention import record_due
from changegate.core.schedule import Due, due_now, seconds_to_next
from changegate.handlers.controller.changerequests import expire_change
from changegate.handlers.controller.dora import (
    confirmed_causes,
    dora_due,
    newest_evidence,
    refresh_dora,
)
from changegate.handlers.controller.incident_refs import last_incident_dues, write_last_incident
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.registry import registry
from changegate.handlers.controller.serviceoncalls import on_call_due, refresh_on_call
from changegate.handlers.controller.state import ControllerState, audit

log = logging.getLogger(__name__)
TICK = 5.0


@dataclass(frozen=True, slots=True)
class Job:
    """One kind of periodic work: what is due (from the indexes) and what to do for an item."""

    name: str
    dues: Callable[[ControllerState, Indexes], Iterable[Due]]
    run: Callable[[ControllerState, Indexes, Hashable, dt.datetime], None]


def expiry_dues(_: ControllerState, indexes: Indexes) -> Iterable[Due]:
    return (Due(key, at) for key, at in indexes.expiries_due())


def expire(state: ControllerState, indexes: Indexes, key: Hashable, now: dt.datetime) -> None:
    namespace, name = cast(tuple[str, str], key)
    expire_change(state, indexes, namespace, name, now)


def retention_dues(state: ControllerState, indexes: Indexes) -> Iterable[Due]:
    days = state.settings.retention_days
    for name, finished in indexes.record_finishes():
        due = record_due(finished, days)
        if due is not None:
            yield Due(name, due)


def delete_record(state: ControllerState, _: Indexes, key: Hashable, now: dt.datetime) -> None:
    state.kube.delete_cluster_object("deploymentrecords", str(key))
    audit("EvidenceExpired", now, record=key, retention_days=state.settings.retention_days)


def handoff_dues(state: ControllerState, indexes: Indexes) -> Iterable[Due]:
    now = state.clock()
    for soc in indexes.all_service_on_calls():
        due = on_call_due(soc, now)
        if due is not None:
            yield Due((soc.metadata.namespace, soc.metadata.name), due)


def handoff(state: ControllerState, indexes: Indexes, key: Hashable, now: dt.datetime) -> None:
    namespace, name = cast(tuple[str, str], key)
    refresh_on_call(state, indexes, namespace, name, now)


def dora_dues(_: ControllerState, indexes: Indexes) -> Iterable[Due]:
    causes = confirmed_causes(indexes)
    for soc in indexes.all_service_on_calls():
        newest = newest_evidence(soc.spec.service.name, indexes, causes)
        yield Due((soc.metadata.namespace, soc.metadata.name), dora_due(soc, newest))


def dora(state: ControllerState, indexes: Indexes, key: Hashable, now: dt.datetime) -> None:
    namespace, name = cast(tuple[str, str], key)
    refresh_dora(state, indexes, namespace, name, now)


JOBS = (
    Job("expiry", expiry_dues, expire),
    Job("retention", retention_dues, delete_record),
    Job("handoff", handoff_dues, handoff),
    Job("dora", dora_dues, dora),
    Job("last-incident", last_incident_dues, write_last_incident),
)


async def run_due(state: ControllerState, indexes: Indexes, jobs: Iterable[Job]) -> float:
    """Run every item due now; the seconds until the next one (at most TICK)."""
    upcoming: list[Due] = []
    for job in jobs:
        # Off the event loop: over a large cluster this takes a while, and the intake and
        # Kopf's watches share the loop.
        dues = await asyncio.to_thread(list, job.dues(state, indexes))
        upcoming.extend(dues)
        for due in due_now(dues, state.clock()):
            try:
                await asyncio.to_thread(job.run, state, indexes, due.key, state.clock())
            except KubeError as error:  # stays due: the next pass tries again
                log.warning("%s of %s failed: %s", job.name, due.key, error)
    return seconds_to_next(upcoming, state.clock(), TICK)


class Wakeup:
    """Cuts the scheduler's sleep short when an item falls due before it would look again.

    Handlers that learn of new work (an Incident event) call `due_at`; between passes
    the scheduler waits on it, so a step due in 2 s fires in 2 s, not at the next TICK.
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.until: dt.datetime | None = None  # when the sleeping scheduler looks next

    def due_at(self, at: dt.datetime) -> None:
        # While a pass runs (until is None) its dues may predate the item: look again.
        if self.until is None or at < self.until:
            self.event.set()

    async def sleep(self, seconds: float, now: dt.datetime) -> None:
        self.until = now + dt.timedelta(seconds=seconds)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.event.wait(), seconds)
        finally:
            self.event.clear()
            self.until = None


@kopf.on.event("", "v1", "namespaces", id="indexed", registry=registry)
async def note_indexed(memo: kopf.Memo, **_: Any) -> None:
    """Kopf invokes a resource's handlers only once every index is filled, and a cluster
    always has namespaces: their first event tells the scheduler it may read the indexes."""
    state: ControllerState | None = getattr(memo, "state", None)
    if state is not None:
        state.indexed.set()


async def run_scheduler(
    state: ControllerState,
    indexes: Indexes,
    jobs: Iterable[Job] = JOBS,
    wakeup: Wakeup | None = None,
) -> None:
    """Run due work until cancelled at cleanup, from when Kopf has filled its indexes: a
    pass over half-filled ones would, say, compute a service's DORA figures from its
    ServiceOnCall before its DeploymentRecords are listed, and keep them for an hour."""
    await state.indexed.wait()
    every, waker = tuple(jobs), wakeup or Wakeup()
    while True:
        delay = await run_due(state, indexes, every)
        await waker.sleep(delay, state.clock())
