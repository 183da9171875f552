"""The outbox runner: every call to an external system goes out from here, at least once.

How a system plugs in (PagerDuty: adapters/pagerduty.py; ServiceNow the same way):
  1. Implement `SyncSystem` for one kind: `system` (a TicketSystem), `endpoint(resource, soc)`
     (a core.sync.Endpoint: host to call, Secret keys; None when the service has no such
     integration), `plan(resource, soc)` (the step ids the resource's state calls for, in
     order, pure: core/sync.py takes due = planned minus delivered minus refused), and
     `async apply(step, resource, soc, credentials) -> core.sync.Outcome` (one call; never
     raises for the far side's trouble: DELIVERED, RETRY with retry_after, or REFUSED).
  2. Make `apply` idempotent at the vendor: a killed controller repeats the last step
     (PagerDuty dedup_key = uid; ServiceNow correlation_id lookup, work-note markers).
  3. Register it at start-up (handlers/controller/__init__.py): `sync.register(INCIDENTS, X)`.
The runner does the rest: one pass per object at a time, circuit per endpoint, backoff with
full jitter, and one status.sync patch (guarded by resourceVersion) after every call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import kopf

from changegate.adapters.kube import Conflict, NotFound, translated
from changegate.adapters.notify.channels import SecretSource
from changegate.adapters.notify.circuit import CircuitPolicy, Circuits
from changegate.adapters.notify.delivery import new_client
from changegate.adapters.notify.secrets import SecretReader, SecretUnavailable
from changegate.adapters.pagerduty import (
    CHANGE_EVENT_HORIZON,
    EventsClient,
    PagerDutyChanges,
    PagerDutyIncidents,
)
from changegate.api.v1alpha1 import GROUP, VERSION, ChangeRequest, DeploymentRecord, Incident
from changegate.api.v1alpha1.common import SyncState, TicketSystem
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.ports import SecretValue
from changegate.core.sync import (
    Backoff,
    Endpoint,
    Outcome,
    Result,
    due_steps,
    due_time,
    fresh_state,
    ready,
    record,
    state_of,
    with_state,
)
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.registry import registry
from changegate.handlers.controller.state import ControllerState, audit, parse
from changegate.metrics import SYNC_CALLS

__all__ = [
    "CHANGE_REQUESTS", "DEPLOYMENT_RECORDS", "INCIDENTS", "Endpoint", "Kind", "Outcome",
    "Result", "SyncRunner", "SyncSystem",
]  # fmt: skip
log = logging.getLogger(__name__)

R = TypeVar("R", Incident, ChangeRequest, DeploymentRecord)
R_contra = TypeVar("R_contra", Incident, ChangeRequest, DeploymentRecord, contravariant=True)
# Steps one pass may deliver before other objects get their turn.
MAX_STEPS_PER_PASS = 32
RECORD_TRIES = 5


class SyncSystem(Protocol[R_contra]):
    """An external system that mirrors one kind of object, step by step."""

    @property
    def system(self) -> TicketSystem: ...

    def endpoint(self, resource: R_contra, soc: ServiceOnCall) -> Endpoint | None: ...

    def plan(self, resource: R_contra, soc: ServiceOnCall) -> list[str]: ...

    async def apply(
        self, step: str, resource: R_contra, soc: ServiceOnCall, credentials: SecretValue
    ) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class Kind(Generic[R]):
    """A kind the outbox serves: its plural, model, scope and the service an object belongs to."""

    plural: str
    model: type[R]
    namespaced: bool
    service: Callable[[R], str]


INCIDENTS: Kind[Incident] = Kind("incidents", Incident, True, lambda i: i.spec.service)
CHANGE_REQUESTS: Kind[ChangeRequest] = Kind(
    "changerequests", ChangeRequest, True, lambda c: c.spec.service
)
DEPLOYMENT_RECORDS: Kind[DeploymentRecord] = Kind(
    "deploymentrecords", DeploymentRecord, False, lambda r: r.spec.service
)
KINDS: tuple[Kind[Any], ...] = (INCIDENTS, CHANGE_REQUESTS, DEPLOYMENT_RECORDS)


@dataclass
class SyncRunner:
    """Runs each object's outbox passes one at a time, off Kopf's handlers."""

    state: ControllerState
    indexes: Indexes
    secrets: SecretSource
    kick_work: Callable[[Hashable, Callable[[], Any]], None]
    circuits: Circuits = field(default_factory=Circuits)
    backoff: Backoff = field(default_factory=Backoff)
    draw: Callable[[], float] = random.random  # full jitter; not security
    systems: dict[str, list[SyncSystem[Any]]] = field(default_factory=dict)
    # The systems' one HTTP client (adapters.notify.delivery), closed at cleanup.
    client: Any = None
    _timers: dict[Hashable, asyncio.TimerHandle] = field(default_factory=dict)
    # Each ServiceOnCall's spec.integrations as last seen (by uid): what an edit changed.
    _integrations: dict[str, Any] = field(default_factory=dict)

    def register(self, kind: Kind[R], system: SyncSystem[R]) -> None:
        """Mirror objects of `kind` to `system` from now on."""
        self.systems.setdefault(kind.plural, []).append(system)

    # -- When: on every event of an object, and at its backoff's end ---------------------

    def due(self, kind: Kind[R], resource: R, now: dt.datetime) -> dt.datetime | None:
        """When the object's outbox next needs a call, over every system; None: nothing owed."""
        soc = self.indexes.service(kind.service(resource))
        if soc is None:
            return None
        times = []
        for system in self.systems.get(kind.plural, []):
            if system.endpoint(resource, soc) is None:
                continue
            state = state_of(resource.status.sync, system.system)
            at = due_time(system.plan(resource, soc), state, now)
            if at is not None:
                times.append(at)
        return min(times, default=None)

    def observe(self, kind: Kind[R], resource: R) -> None:
        """An event of the object: a pass now if a step is due, else a timer for its backoff."""
        now = self.state.clock()
        at = self.due(kind, resource, now)
        if at is None:
            return
        namespace, name = resource.metadata.namespace or "", resource.metadata.name or ""
        self.kick_at(kind, namespace, name, at, now)

    def offer(self, wanted: Callable[[str], bool]) -> None:
        """Observe every indexed Incident and ChangeRequest of the services `wanted` picks:
        steps a ServiceOnCall change made due go out without waiting for the object's next
        event (the ServiceNow read-back each pass; an edit of a service's integrations)."""
        for incident in list(self.indexes.all_incidents()):
            if wanted(incident.spec.service):
                self.observe(INCIDENTS, incident)
        for change in list(self.indexes.all_changes()):
            if wanted(change.spec.service):
                self.observe(CHANGE_REQUESTS, change)

    async def offer_records(self, service: str) -> None:
        """The service's production DeploymentRecords recent enough to be owed anything (a
        change event), read and observed; older ones are owed nothing, so never read."""
        since = self.state.clock() - CHANGE_EVENT_HORIZON
        for fact in self.indexes.production_records(service):
            if fact.finish >= since:
                record = await asyncio.to_thread(self.read, DEPLOYMENT_RECORDS, "", fact.name)
                if record is not None:
                    self.observe(DEPLOYMENT_RECORDS, record)

    def integrations_changed(self, soc: ServiceOnCall, listed: bool) -> bool:
        """Whether spec.integrations differs from this ServiceOnCall's last event. A first
        sight counts unless `listed` at start-up (every object is listed and observed then):
        Kopf may fold a creation and an edit into one event."""
        uid, now = soc.metadata.uid or "", soc.spec.integrations.to_json()
        before = self._integrations.get(uid)
        self._integrations[uid] = now
        return before != now if before is not None else not listed

    def forget_service(self, uid: str) -> None:
        self._integrations.pop(uid, None)

    def kick_at(
        self, kind: Kind[R], namespace: str, name: str, at: dt.datetime, now: dt.datetime
    ) -> None:
        key = ("sync", kind.plural, namespace, name)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        delay = (at - now).total_seconds()
        if delay <= 0:
            self.kick_work(key, lambda: self.run_pass(kind, namespace, name))
            return
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(
            delay, lambda: self.kick_work(key, lambda: self.run_pass(kind, namespace, name))
        )

    # -- A pass: for each system, the due steps one call at a time, each recorded ----------

    async def run_pass(self, kind: Kind[R], namespace: str, name: str) -> None:
        resource = await asyncio.to_thread(self.read, kind, namespace, name)
        if resource is None or resource.metadata.deletion_timestamp is not None:
            return
        soc = self.indexes.service(kind.service(resource))
        if soc is None:
            return
        for system in self.systems.get(kind.plural, []):
            resource = await self.run_system(kind, resource, soc, system)
            if resource is None:
                return
        now = self.state.clock()
        at = self.due(kind, resource, now)
        if at is not None:
            self.kick_at(kind, namespace, name, max(at, now + dt.timedelta(seconds=0.05)), now)

    async def run_system(
        self, kind: Kind[R], resource: R, soc: ServiceOnCall, system: SyncSystem[R]
    ) -> R | None:
        """Deliver the system's due steps in order until one fails or waits; the object after."""
        endpoint = system.endpoint(resource, soc)
        if endpoint is None:
            return resource
        for _ in range(MAX_STEPS_PER_PASS):
            now = self.state.clock()
            state = state_of(resource.status.sync, system.system)
            due = due_steps(system.plan(resource, soc), state)
            if not due or not ready(state, now):
                return resource
            outcome = await self.call(system, endpoint, due[0], resource, soc)
            after = record(
                state or fresh_state(system.system, resource.metadata.uid or ""),
                due[0], outcome, self.state.clock(), backoff=self.backoff, draw=self.draw(),
            )  # fmt: skip
            report(kind, resource, system.system, due[0], outcome, self.state.clock())
            written = await asyncio.to_thread(self.write, kind, resource, after)
            if written is None or outcome.result is Result.RETRY:
                return written
            resource = written
        return resource

    async def call(
        self,
        system: SyncSystem[R],
        endpoint: Endpoint,
        step: str,
        resource: R,
        soc: ServiceOnCall,
    ) -> Outcome:
        """One step's call, unless the endpoint's circuit is open or its Secret unreadable."""
        now = self.state.clock()
        wait = self.circuits.closed_in(endpoint.host, now)
        if wait > 0:
            return Outcome(Result.RETRY, f"circuit open: {endpoint.host} keeps failing", wait)
        try:
            credentials = await self.secrets.read(endpoint.namespace, endpoint.secret_refs)
        except SecretUnavailable as error:
            return Outcome(Result.RETRY, str(error))
        try:
            outcome = await system.apply(step, resource, soc, credentials)
        except Exception as error:  # a system that breaks its contract still yields an outcome
            log.warning("%s %s failed: %s", system.system.value, step, type(error).__name__)
            outcome = Outcome(
                Result.RETRY, f"{system.system.value} failed ({type(error).__name__})"
            )
        if outcome.result is Result.RETRY:
            self.circuits.failed(endpoint.host, self.state.clock())
        else:
            self.circuits.succeeded(endpoint.host)
        return outcome

    # -- Reading and writing the object ----------------------------------------------------

    def read(self, kind: Kind[R], namespace: str, name: str) -> R | None:
        custom = self.state.kube.custom
        try:
            with translated():
                if kind.namespaced:
                    body = custom.get_namespaced_custom_object(
                        GROUP, VERSION, namespace, kind.plural, name
                    )
                else:
                    body = custom.get_cluster_custom_object(GROUP, VERSION, kind.plural, name)
        except NotFound:
            return None
        return parse(kind.model, body)

    def write(self, kind: Kind[R], resource: R, state: SyncState) -> R | None:
        """status.sync with the system's new state; on a conflict, onto the fresh object."""
        for _ in range(RECORD_TRIES):
            meta = resource.metadata
            sync = [s.to_json() for s in with_state(resource.status.sync, state)]
            body = {
                "metadata": {"resourceVersion": meta.resource_version},
                "status": {"sync": sync},
            }
            try:
                with translated():
                    answer = self._patch(kind, meta.namespace or "", meta.name or "", body)
            except Conflict:
                fresh = self.read(kind, meta.namespace or "", meta.name or "")
                if fresh is None:
                    return None
                resource = fresh
                continue
            except NotFound:
                return None
            return parse(kind.model, answer)
        log.warning(
            "%s %s: gave up recording sync after conflicts", kind.plural, resource.metadata.name
        )
        return None

    def _patch(self, kind: Kind[R], namespace: str, name: str, body: dict[str, Any]) -> Any:
        custom = self.state.kube.custom
        if kind.namespaced:
            return custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, kind.plural, name, body
            )
        return custom.patch_cluster_custom_object_status(GROUP, VERSION, kind.plural, name, body)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self.client is not None:
            await self.client.aclose()


def start_sync(
    state: ControllerState, indexes: Indexes, kick: Callable[[Hashable, Callable[[], Any]], None]
) -> SyncRunner:
    """The runner with PagerDuty registered: Incidents as alerts, production rollouts as changes."""
    settings = state.settings
    runner = SyncRunner(
        state, indexes, SecretReader(state.kube.core.api_client), kick,
        circuits=Circuits(CircuitPolicy(cool_down=settings.sync_circuit_seconds)),
        client=new_client(),
    )  # fmt: skip
    events = EventsClient(runner.client, settings.pagerduty_events_url, state.clock)
    runner.register(INCIDENTS, PagerDutyIncidents(events))
    runner.register(DEPLOYMENT_RECORDS, PagerDutyChanges(events))
    return runner


def report(
    kind: Kind[R], resource: R, system: TicketSystem, step: str, outcome: Outcome, now: dt.datetime
) -> None:
    """A metric and an audit line per call; the error is already free of credentials."""
    SYNC_CALLS.labels(system.value, outcome.result.value).inc()
    audit(
        "Synced", now, kind=kind.plural, namespace=resource.metadata.namespace,
        name=resource.metadata.name, system=system.value, step=step,
        result=outcome.result.value, error=outcome.error,
    )  # fmt: skip


def runner_of(memo: kopf.Memo) -> SyncRunner | None:
    runner: SyncRunner | None = getattr(memo, "sync", None)
    return runner


def observe_body(memo: kopf.Memo, kind: Kind[Any], body: kopf.Body, type_: str | None) -> None:
    runner = runner_of(memo)
    if runner is None or type_ == "DELETED" or body.metadata.get("deletionTimestamp"):
        return
    if not runner.systems.get(kind.plural):
        return
    resource = parse(kind.model, body)
    if resource is not None:
        runner.observe(kind, resource)


@kopf.on.event(GROUP, VERSION, "incidents", registry=registry, id="sync_incident")
async def sync_incident(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """An Incident changed (or was listed at start-up): deliver what its systems are owed."""
    observe_body(memo, INCIDENTS, body, type)


@kopf.on.event(GROUP, VERSION, "changerequests", registry=registry, id="sync_change_request")
async def sync_change_request(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A ChangeRequest changed (or was listed at start-up): deliver what its systems are owed."""
    observe_body(memo, CHANGE_REQUESTS, body, type)


@kopf.on.event(GROUP, VERSION, "serviceoncalls", registry=registry, id="sync_service")
async def sync_service(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A service's integrations changed (PagerDuty turned on, say): what its objects are now
    owed goes out at once. The index already holds the new ServiceOnCall."""
    runner = runner_of(memo)
    if runner is None:
        return
    if type == "DELETED":
        runner.forget_service(body.metadata.get("uid") or "")
        return
    soc = parse(ServiceOnCall, body)
    if soc is None or not runner.integrations_changed(soc, listed=type is None):
        return
    service = soc.spec.service.name
    runner.offer(lambda name: name == service)
    await runner.offer_records(service)


@kopf.on.event(GROUP, VERSION, "deploymentrecords", registry=registry, id="sync_record")
async def sync_record(body: kopf.Body, type: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A DeploymentRecord was written (or listed at start-up): its change event, if owed."""
    observe_body(memo, DEPLOYMENT_RECORDS, body, type)
