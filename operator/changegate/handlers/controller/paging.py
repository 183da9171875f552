"""Paging from the controller: abstract targets made people, pages sent on a service's channels.

Escalation (core.incident.escalation) names targets: the on-call of a
service, a rotation, a user, the incident manager. `Directory` answers who
that is now (core.oncall) and which channels reach them (the ServiceOnCall's
integrations; Kubernetes Events always). `Pager` sends pages through
adapters.notify with one shared HTTP client, and runs each incident's work one
pass at a time (`kick` coalesces the events and timers that arrive meanwhile),
so Kopf's event loop and other incidents never wait on a slow channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from changegate.adapters.notify.channels import Channel, SecretSource, send_all, service_channels
from changegate.adapters.notify.delivery import Sender, new_client
from changegate.adapters.notify.events import EventPoster
from changegate.api.v1alpha1 import ServiceOnCall
from changegate.api.v1alpha1.serviceoncall import (
    EscalationTarget,
    EscalationTargetType,
    Integrations,
)
from changegate.core.oncall.schedule import (
    Schedule,
    incident_manager_schedule,
    service_schedule,
    who_is_on_call,
)
from changegate.core.oncall.wallclock import ScheduleError
from changegate.core.ports import Page, PageOutcome
from changegate.handlers.controller.indexes import Indexes

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reach:
    """Who a target is now, who is on call for its service, and the ServiceOnCall that reaches them."""

    users: tuple[str, ...]
    on_call: str | None
    via: ServiceOnCall | None


def on_call_users(schedule_of: Callable[[], Schedule], at: dt.datetime) -> tuple[str, ...]:
    """Who the schedule puts on call at `at`; nobody when the schedule cannot be evaluated."""
    try:
        return who_is_on_call(schedule_of(), at).users
    except ScheduleError as error:  # a bad time zone: nobody, said in the escalation record
        log.warning("cannot evaluate an on-call schedule: %s", error)
        return ()


@dataclass(frozen=True, slots=True)
class Directory:
    """Who is who, from the indexes: services' on-call, rotations and the incident manager."""

    indexes: Indexes
    incident_management_service: str = ""

    def on_call(self, service: str, at: dt.datetime) -> tuple[str, ...]:
        soc = self.indexes.service(service)
        if soc is None:
            return ()
        return on_call_users(lambda: service_schedule(soc.spec.on_call), at)

    def in_rotation(self, service: str, rotation: str, at: dt.datetime) -> tuple[str, ...]:
        soc = self.indexes.service(service)
        if soc is None:
            return ()
        try:
            answer = who_is_on_call(service_schedule(soc.spec.on_call), at)
        except ScheduleError:
            return ()
        return answer.in_rotation(rotation)

    def incident_managers(self, service: str, at: dt.datetime) -> Reach:
        """The organisation's incident manager on call (the chart names its ServiceOnCall),
        else the service's own `onCall.incidentManager`."""
        soc = self.indexes.service(self.incident_management_service)
        if soc is not None:
            users = on_call_users(lambda: incident_manager_schedule(soc.spec.on_call), at)
            return Reach(users, users[0] if users else None, soc)
        own = self.indexes.service(service)
        manager = own.spec.on_call.incident_manager if own else None
        users = (manager.user,) if manager else ()
        return Reach(users, users[0] if users else None, own)

    def reach(self, target: EscalationTarget, service: str, at: dt.datetime) -> Reach:
        """Whom an escalation target of `service` names at `at`, and how to reach them."""
        if target.type is EscalationTargetType.INCIDENT_MANAGER:
            return self.incident_managers(service, at)
        on_call = self.on_call(service, at)
        soc = self.indexes.service(service)
        first = on_call[0] if on_call else None
        if target.type is EscalationTargetType.ROTATION:
            return Reach(self.in_rotation(service, target.name or "", at), first, soc)
        if target.type is EscalationTargetType.USER:
            return Reach((target.name,) if target.name else (), first, soc)
        return Reach(on_call, first, soc)


def user_key(key: str, user: str) -> str:
    """A page's idempotency key for one person of a target: the target's key, told apart by user."""
    return f"{key}.{hashlib.sha256(user.encode()).hexdigest()[:12]}"


@dataclass(frozen=True, slots=True)
class Outbound:
    """One page and the channels it goes out on."""

    page: Page
    via: ServiceOnCall | None


@dataclass
class Coalesced:
    """One incident's running pass, and whether anything arrived while it ran."""

    task: asyncio.Task[None]
    again: bool = False


class Pager:
    """Sends pages, and runs each incident's passes one at a time off Kopf's handlers."""

    def __init__(
        self,
        events: EventPoster,
        secrets: SecretSource,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.events = events
        self.secrets = secrets
        self.clock = clock
        # The channels' one HTTP client (adapters.notify.delivery), made on the first page.
        self._client: Any = None
        self._running: dict[Hashable, Coalesced] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def channels(self, via: ServiceOnCall | None) -> list[Channel]:
        """Kubernetes Events always; the webhook and Slack the ServiceOnCall configures."""
        if self._client is None:
            self._client = new_client()
        integrations = via.spec.integrations if via else Integrations()
        namespace = via.metadata.namespace or "" if via else ""
        return service_channels(integrations, namespace, Sender(self._client), self.events)

    async def send(self, outbound: Iterable[Outbound]) -> list[tuple[Page, PageOutcome]]:
        """Every page on every channel of its ServiceOnCall, all at once; one outcome per channel."""
        pages = list(outbound)
        sent = await asyncio.gather(
            *(send_all(o.page, self.channels(o.via), self.secrets, self.clock) for o in pages)
        )
        return [
            (o.page, outcome)
            for o, outcomes in zip(pages, sent, strict=True)
            for outcome in outcomes
        ]

    def kick(self, key: Hashable, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` for `key` now, or once more after the pass already running for it."""
        self._loop = asyncio.get_running_loop()
        running = self._running.get(key)
        if running is not None and not running.task.done():
            running.again = True
            return
        self._running[key] = Coalesced(asyncio.create_task(self._passes(key, work)))

    def kick_threadsafe(self, key: Hashable, work: Callable[[], Awaitable[None]]) -> None:
        """`kick` from the scheduler's worker thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.kick, key, work)

    def bind(self) -> None:
        """Remember the running event loop, for `kick_threadsafe`."""
        self._loop = asyncio.get_running_loop()

    async def _passes(self, key: Hashable, work: Callable[[], Awaitable[None]]) -> None:
        while True:
            entry = self._running.get(key)
            if entry is not None:
                entry.again = False
            try:
                await work()
            except Exception:  # logged; the scheduler finds the work still due and kicks again
                log.exception("incident %s: pass failed", key)
            entry = self._running.get(key)
            if entry is None or not entry.again:
                return

    async def close(self) -> None:
        for running in list(self._running.values()):
            running.task.cancel()
        if self._client is not None:
            await self._client.aclose()
