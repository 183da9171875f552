"""Incidents: one level-based pass moves an incident along, pages whom it owes, and records it.

A pass reads the Incident live and works out the status it should have
(core.incident.lifecycle: phase and times; the escalation policy copied at
trigger; suspect changes from the DeploymentRecords index). Then it takes the
next batch of pages owed: a reassignment's new owner, the escalation steps
due (core.incident.escalation, targets made people by paging.Directory), a
major incident's incident manager and every service's on-call. It sends them
(paging.Pager: every channel, at once, bounded), and writes the pages and what
each target came to in one status patch guarded by resourceVersion, before it
decides anything more. Killed between sending and recording, the next pass
sends the same pages with the same idempotency keys, which channels drop.

Passes run off Kopf's handlers (Pager.kick): on every event of an Incident,
and from the one scheduler when an escalation step falls due.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import kopf

from changegate.adapters.kube import Conflict
from changegate.api.v1alpha1 import GROUP, VERSION
from changegate.api.v1alpha1.common import AuditEntry
from changegate.api.v1alpha1.incident import (
    EscalationOutcome,
    Incident,
    IncidentPhase,
    IncidentStatus,
)
from changegate.core.incident import lifecycle
from changegate.core.incident.escalation import (
    Handled,
    facts_of,
    plan_escalation,
    record_outcomes,
    take_snapshot,
)
from changegate.core.incident.notification import idempotency_key, page_entry, page_for, recorded
from changegate.core.incident.suspects import suspect_changes, suspect_status
from changegate.core.ports import Page, PageAction, PageOutcome
from changegate.core.schedule import Due
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.paging import Directory, Outbound, Pager, Reach, user_key
from changegate.handlers.controller.registry import registry
from changegate.handlers.controller.schedule import Job, Wakeup
from changegate.handlers.controller.state import ControllerState, audit, log, parse
from changegate.handlers.controller.status import status_patch
from changegate.metrics import (
    ALERT_TO_FIRST_PAGE,
    INCIDENTS_OPENED,
    OPEN_INCIDENTS,
    PAGES,
    TIME_TO_ACKNOWLEDGE,
    TIME_TO_RESOLVE,
)

OPERATOR = "changegate"
REASSIGNED = "Reassigned"
MAJOR_PAGED = "MajorIncidentPaged"
# Batches one pass may send before it lets other work in; a policy has at most 48 steps.
MAX_BATCHES = 64
# Tries to record one batch's outcomes when the Incident changed meanwhile.
RECORD_TRIES = 5


@dataclass
class Batch:
    """Pages owed now, what escalation targets they settle, and what the timeline says of them."""

    outbound: list[Outbound] = field(default_factory=list)
    handled: list[Handled] = field(default_factory=list)
    notes: list[AuditEntry] = field(default_factory=list)
    owner: str | None = None  # a reassignment: escalation follows this service from now on
    major: bool = False  # a major incident's pages: recorded once in status.escalation


def created_of(incident: Incident, now: dt.datetime) -> dt.datetime:
    return incident.metadata.creation_timestamp or now


def open_(status: IncidentStatus) -> bool:
    return status.phase is not IncidentPhase.RESOLVED


def settled(incident: Incident, indexes: Indexes, now: dt.datetime) -> IncidentStatus:
    """The status before any page: lifecycle, the policy copied at trigger, suspect changes."""
    status = lifecycle.reconcile(incident, created_of(incident, now), now)
    update: dict[str, Any] = {}
    if status.escalation is None and open_(status):
        soc = indexes.service(incident.spec.service)
        policy = soc.spec.on_call.escalation if soc else None
        update["escalation"] = take_snapshot(None, incident.spec.service, policy, now)
    started = lifecycle.alert_start(incident) or status.triggered_time
    if started is not None:
        facts = indexes.deployment_facts(incident.spec.service)
        found = suspect_changes(incident.spec.service, facts, started)
        update["suspect_changes"] = suspect_status(found)
    return status.model_copy(update=update)


def with_status(incident: Incident, status: IncidentStatus) -> Incident:
    return incident.model_copy(update={"status": status})


def pages_to(
    incident: Incident, reach: Reach, step: int, key: str, now: dt.datetime
) -> list[Outbound]:
    """One page per person the target names now, each under its own key."""
    return [
        Outbound(
            page_for(
                incident,
                action=PageAction.TRIGGER,
                step=step,
                user=user,
                on_call=reach.on_call,
                now=now,
                key=user_key(key, user),
            ),
            reach.via,
        )
        for user in reach.users
    ]


def reassigned_by(incident: Incident) -> str | None:
    """Who reassigned it, as the webhook stamps it into the spec (when that field exists)."""
    by = getattr(incident.spec, "reassigned_by", None)
    return str(by) if by else None


def reassign_batch(incident: Incident, directory: Directory, now: dt.datetime) -> Batch | None:
    """A new owner (another service, COTS or foundational system): page its on-call once."""
    escalation = incident.status.escalation
    if escalation is None or escalation.service == incident.spec.service:
        return None
    before, after, by = escalation.service, incident.spec.service, reassigned_by(incident)
    turn = escalation.reassignments or 0  # a counter, not the timeline, whose entries drop off
    uid = incident.metadata.uid or ""
    key = idempotency_key(uid, PageAction.TRIGGER, turn, f"reassign/{before}/{after}")
    on_call = directory.on_call(after, now)
    reach = Reach(on_call, on_call[0] if on_call else None, directory.indexes.service(after))
    paged = ", ".join(on_call) or "nobody (nobody is on call)"
    message = f"from {before} to {after} by {by or 'someone'}; paged {paged}"
    note = AuditEntry(time=now, actor=by or OPERATOR, action=REASSIGNED, message=message[:1024])
    return Batch(pages_to(incident, reach, 0, key, now), notes=[note], owner=after)


def escalation_batch(incident: Incident, directory: Directory, now: dt.datetime) -> Batch | None:
    """The escalation targets owed a page now, each made people (or nobody) at once."""
    facts = facts_of(incident, created_of(incident, now))
    if facts is None:
        return None
    plan = plan_escalation(facts, now)
    if not plan.due:
        return None
    batch = Batch()
    for due in plan.due:
        reach = directory.reach(due.target, due.service, now)
        batch.outbound.extend(pages_to(incident, reach, due.sequence, due.key, now))
        batch.handled.append(Handled(due, _outcome(bool(reach.users))))
    return batch


def _outcome(paged: bool) -> EscalationOutcome:
    return EscalationOutcome.PAGED if paged else EscalationOutcome.NOBODY


def major_paged(incident: Incident) -> bool:
    """Whether a major incident's pages went out: status.escalation.majorPagedTime (the
    timeline entry only for incidents paged before that field existed)."""
    escalation = incident.status.escalation
    if escalation is not None and escalation.major_paged_time is not None:
        return True
    return any(e.action == MAJOR_PAGED for e in incident.status.timeline)


def major_batch(incident: Incident, directory: Directory, now: dt.datetime) -> Batch | None:
    """A major incident: the incident manager on call, and every service's on-call, once."""
    if not incident.spec.major or major_paged(incident):
        return None
    uid = incident.metadata.uid or ""
    managers = directory.incident_managers(incident.spec.service, now)
    key = idempotency_key(uid, PageAction.TRIGGER, 0, "major/incident-manager")
    outbound = pages_to(incident, managers, 0, key, now)
    services = 0
    for soc in directory.indexes.all_service_on_calls():
        service = soc.spec.service.name
        users = directory.on_call(service, now)
        reach = Reach(users, users[0] if users else None, soc)
        key = idempotency_key(uid, PageAction.TRIGGER, 0, f"major/{service}")
        outbound.extend(pages_to(incident, reach, 0, key, now))
        services += bool(users)
    whom = ", ".join(managers.users) or "nobody (no incident manager on call)"
    message = f"major incident: paged the incident manager {whom}; notified the on-call of {services} services"
    note = AuditEntry(time=now, actor=OPERATOR, action=MAJOR_PAGED, message=message[:1024])
    return Batch(outbound, notes=[note], major=True)


def next_batch(incident: Incident, directory: Directory, now: dt.datetime) -> Batch | None:
    """What is owed first: a reassignment, then escalation, then a major incident's pages."""
    if not open_(incident.status):
        return None
    return (
        reassign_batch(incident, directory, now)
        or escalation_batch(incident, directory, now)
        or major_batch(incident, directory, now)
    )


def with_outcomes(
    status: IncidentStatus,
    uid: str,
    batch: Batch,
    sent: Iterable[tuple[Page, PageOutcome]],
    now: dt.datetime,
) -> IncidentStatus:
    """The status with the batch's pages, escalation records and timeline notes."""
    notes = list(batch.notes)
    escalation = status.escalation
    if escalation is not None and batch.handled:
        written = record_outcomes(escalation, uid, batch.handled, now)
        escalation, notes = written.escalation, [*notes, *written.notes]
    if escalation is not None and batch.owner is not None:
        turns = (escalation.reassignments or 0) + 1
        escalation = escalation.model_copy(update={"service": batch.owner, "reassignments": turns})
    if escalation is not None and batch.major:
        escalation = escalation.model_copy(update={"major_paged_time": now})
    return status.model_copy(
        update={
            "pages": recorded(status.pages, [page_entry(p, o) for p, o in sent]),
            "escalation": escalation,
            "timeline": lifecycle.with_timeline(status.timeline, notes),
        }
    )


def report(before: Incident, after: IncidentStatus, sent: list[tuple[Page, PageOutcome]]) -> None:
    """Metrics and audit lines of what one written pass did."""
    service, severity = before.spec.service, before.spec.severity.value
    if before.status.escalation is None and after.escalation is not None:
        INCIDENTS_OPENED.labels(service, severity).inc()
    if after.phase is not before.status.phase:
        if (
            after.phase is IncidentPhase.ACKNOWLEDGED
            and after.time_to_acknowledge_seconds is not None
        ):
            TIME_TO_ACKNOWLEDGE.labels(service).observe(after.time_to_acknowledge_seconds)
        if after.phase is IncidentPhase.RESOLVED and after.time_to_resolve_seconds is not None:
            TIME_TO_RESOLVE.labels(service).observe(after.time_to_resolve_seconds)
    for _, outcome in sent:
        PAGES.labels(outcome.channel.value, outcome.result.value).inc()
    if sent and not before.status.pages:
        started = lifecycle.alert_start(before) or after.triggered_time
        if started is not None:
            ALERT_TO_FIRST_PAGE.labels(service).observe(
                max(0.0, (min(o.time for _, o in sent) - started).total_seconds())
            )
    for page, outcome in sent:
        audit(
            "Paged", outcome.time, incident=before.metadata.name, namespace=before.metadata.namespace,
            service=page.service, user=outcome.user, channel=outcome.channel.value,
            result=outcome.result.value, key=page.idempotency_key,
        )  # fmt: skip


@dataclass
class IncidentWork:
    """What incident passes need: the controller's state and indexes, a pager, the directory."""

    state: ControllerState
    indexes: Indexes
    pager: Pager
    wakeup: Wakeup | None = None  # the scheduler's, told when an Incident's next step is due

    @property
    def directory(self) -> Directory:
        return Directory(self.indexes, self.state.settings.incident_management_service)

    def kick(self, namespace: str, name: str) -> None:
        self.pager.kick((namespace, name), lambda: self.run_pass(namespace, name))

    def kick_if_owed(self, namespace: str, name: str) -> None:
        """A pass now if the Incident, as the index has it, owes one (or does not parse); the
        scheduler told of a later step. The echo of a pass's own write owes nothing: no read."""
        now = self.state.clock()
        found = list(self.indexes.incidents.get((namespace, name), ()))
        dues = [at for at in (due_of(incident, now) for incident in found) if at is not None]
        if not found or any(at <= now for at in dues):
            self.kick(namespace, name)
        for at in dues:  # due now is this pass's; waking the scheduler for it would only repeat it
            if at > now and self.wakeup is not None:
                self.wakeup.due_at(at)

    def kick_opened(self, incident: Incident) -> None:
        """A pass for an Incident the intake has just written: its first batch starts from
        that body, without reading it back (the alert-to-page path); later ones read."""
        namespace, name = incident.metadata.namespace or "", incident.metadata.name or ""
        held = [incident]
        self.pager.kick(
            (namespace, name), lambda: self.run_pass(namespace, name, held.pop() if held else None)
        )

    def kick_threadsafe(self, namespace: str, name: str) -> None:
        self.pager.kick_threadsafe((namespace, name), lambda: self.run_pass(namespace, name))

    def read(self, namespace: str, name: str) -> Incident | None:
        body = self.state.kube.get_incident(namespace, name)
        return parse(Incident, body) if body is not None else None

    async def run_pass(self, namespace: str, name: str, first: Incident | None = None) -> None:
        """Batches until nothing is owed: each sent, then recorded, before the next is decided.
        `first`: the Incident as just written, for the first batch; each later batch starts
        from the Incident as the previous one recorded it (read only when neither is known)."""
        known = first
        for _ in range(MAX_BATCHES):
            again, known = await self.one_batch(namespace, name, known)
            if not again:
                return

    async def one_batch(
        self, namespace: str, name: str, known: Incident | None = None
    ) -> tuple[bool, Incident | None]:
        """Settle the status, send what is owed first, record it; whether to look again, and
        the Incident as recorded."""
        incident = known or await asyncio.to_thread(self.read, namespace, name)
        if incident is None or incident.metadata.deletion_timestamp is not None:
            return False, None
        now = self.state.clock()
        current = with_status(incident, settled(incident, self.indexes, now))
        batch = next_batch(current, self.directory, now)
        sent = await self.pager.send(batch.outbound) if batch else []
        recorded = await asyncio.to_thread(self.record, incident, batch, sent)
        return batch is not None and recorded is not None, recorded

    def record(
        self, incident: Incident, batch: Batch | None, sent: list[tuple[Page, PageOutcome]]
    ) -> Incident | None:
        """Write the settled status with the batch's outcomes; on a conflict, onto the fresh
        one. The Incident as written (as it was, when nothing needed writing after a batch);
        None when nothing was written, or the Incident is gone."""
        for _ in range(RECORD_TRIES):
            now = self.state.clock()
            status = settled(incident, self.indexes, now)
            if batch is not None:
                status = with_outcomes(status, incident.metadata.uid or "", batch, sent, now)
            patch = status_patch(incident.status.to_json(), status.to_json())
            if patch is None:
                return incident if batch is not None else None
            try:
                written = self.state.kube.patch_status(
                    "incidents", incident.metadata.namespace or "", incident.metadata.name or "",
                    patch, incident.metadata.resource_version,
                )  # fmt: skip
            except Conflict:
                fresh = self.read(incident.metadata.namespace or "", incident.metadata.name or "")
                if fresh is None:
                    return None
                incident = fresh
                continue
            report(incident, status, sent)
            return parse(Incident, written)
        log.warning(
            "incident %s: gave up recording after %d conflicts",
            incident.metadata.name,
            RECORD_TRIES,
        )
        return None


def due_of(incident: Incident, now: dt.datetime) -> dt.datetime | None:
    """When the incident next needs a pass that no event wakes: now when its status lags or a
    reassignment or major declaration waits; else its next escalation step; None when nothing."""
    lags = incident.status.observed_generation != incident.metadata.generation
    if lags or lifecycle.phase_of(incident) is not incident.status.phase:
        return now  # the status lags the spec (a note, an ack): the event's pass did not write it
    if incident.spec.resolution is not None:
        return None
    facts = facts_of(incident, created_of(incident, now))
    if facts is None:
        return created_of(incident, now)
    escalation = incident.status.escalation
    waiting = (escalation is not None and escalation.service != incident.spec.service) or (
        incident.spec.major and not major_paged(incident)
    )
    plan = plan_escalation(facts, now)
    if waiting or plan.due:
        return now
    return plan.next_time


def count_open(incidents: Iterable[Incident]) -> None:
    """The open-incidents gauge, by service, from the incidents that exist."""
    counts = Counter(i.spec.service for i in incidents if i.spec.resolution is None)
    OPEN_INCIDENTS.clear()
    for service, count in counts.items():
        OPEN_INCIDENTS.labels(service).set(count)


def jobs(work: IncidentWork) -> tuple[Job, ...]:
    """The scheduler's escalation job: incidents whose next step (or pending work) is due."""

    def dues(state: ControllerState, indexes: Indexes) -> Iterator[Due]:
        incidents = list(indexes.all_incidents())
        count_open(incidents)
        now = state.clock()
        for incident in incidents:
            at = due_of(incident, now)
            if at is not None:
                yield Due((incident.metadata.namespace, incident.metadata.name), at)

    def run(_: ControllerState, __: Indexes, key: Hashable, ___: dt.datetime) -> None:
        namespace, name = cast(tuple[str, str], key)
        work.kick_threadsafe(namespace, name)

    return (Job("escalation", dues, run),)


@kopf.on.event(GROUP, VERSION, "incidents", registry=registry)
async def incident_event(
    body: kopf.Body, type: str | None, memo: kopf.Memo, namespace: str, name: str, **_: Any
) -> None:
    """Any change of an Incident (created, acknowledged, reassigned, resolved): one more pass
    when it owes one (the scheduler's TICK finds anything missed)."""
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        return
    work: IncidentWork | None = getattr(memo, "incidents", None)
    if work is not None:
        work.kick_if_owed(namespace, name)
