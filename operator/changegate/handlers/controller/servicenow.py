"""ServiceNow in the controller: the outbox systems for Incidents and ChangeRequests, and the poll.

`ServiceNowIncidents` and `ServiceNowChanges` implement the sync runner's
`SyncSystem` (handlers/controller/sync.py): the core plans the steps
(core/incident/servicenow.py, core/change/servicenow.py), adapters/servicenow.py
makes each call, and status.externalTicket shows the number, link and state.
`ReadBack` polls the tickets every `servicenow_poll_seconds` (a job of the one
scheduler, handlers/controller/schedule.py) and applies what people changed in
ServiceNow (state, assignee, work notes, approvals) to our objects "via
ServiceNow", through the admission webhook like any other write.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast
from urllib.parse import urlsplit

from changegate.adapters.kube import Forbidden, KubeError, translated
from changegate.adapters.notify.channels import SecretSource
from changegate.adapters.notify.secrets import SecretUnavailable
from changegate.adapters.servicenow import (
    CHANGE_READ,
    INCIDENT_READ,
    Connection,
    ServiceNowClient,
    ServiceNowFailure,
    Ticket,
    login_of,
)
from changegate.api.v1alpha1 import GROUP, VERSION, ChangeRequest, Incident
from changegate.api.v1alpha1.changerequest import ChangePhase
from changegate.api.v1alpha1.common import (
    ActSource,
    ChangeType,
    SecretKeyRef,
    TicketSystem,
)
from changegate.api.v1alpha1.incident import IncidentPhase
from changegate.api.v1alpha1.serviceoncall import (
    ApprovalPlace,
    ServiceNowAuth,
    ServiceNowIntegration,
    ServiceOnCall,
)
from changegate.core.change import servicenow as change_plan
from changegate.core.common import timestamp
from changegate.core.incident import servicenow as incident_plan
from changegate.core.ports import SecretValue
from changegate.core.schedule import Due
from changegate.core.sync import Outcome, Result, delivered_outcome, state_of
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.schedule import Job
from changegate.handlers.controller.state import ControllerState
from changegate.handlers.controller.sync import CHANGE_REQUESTS, INCIDENTS, Endpoint, SyncRunner

log = logging.getLogger(__name__)

SN = ActSource.SERVICE_NOW
AUTH_KEYS: Mapping[ServiceNowAuth, tuple[str, ...]] = {
    ServiceNowAuth.BASIC: ("username", "password"),
    ServiceNowAuth.OAUTH_CLIENT_CREDENTIALS: ("clientId", "clientSecret"),
    ServiceNowAuth.TOKEN: ("token",),
}
INCIDENT_STATES = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed"}
CHANGE_STATES = {
    "-5": "New", "-4": "Assess", "-3": "Authorize", "-2": "Scheduled",
    "-1": "Implement", "0": "Review", "3": "Closed", "4": "Canceled",
}  # fmt: skip


def secret_refs(integration: ServiceNowIntegration) -> dict[str, SecretKeyRef]:
    """The Secret keys the integration's authentication needs, under their own names."""
    name = integration.secret_ref.name
    return {key: SecretKeyRef(name=name, key=key) for key in AUTH_KEYS[integration.authentication]}


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def outcome_of(failure: ServiceNowFailure) -> Outcome:
    result = Result.RETRY if failure.retryable else Result.REFUSED
    return Outcome(result, failure.message, failure.retry_after)


def _ticket_status(ticket: Ticket, labels: Mapping[str, str], now: dt.datetime) -> dict[str, Any]:
    return {
        "externalTicket": {
            "system": TicketSystem.SERVICE_NOW.value,
            "id": ticket.number or ticket.sys_id,
            "url": ticket.url,
            "state": labels.get(ticket.state, ticket.state),
            "syncedTime": timestamp(now),
        }
    }


Mirrored = TypeVar("Mirrored", Incident, ChangeRequest)


class _Mirror(Generic[Mirrored]):
    """What both systems share: the endpoint, the client, a step's outcome, the ticket found
    by our object's UID, status.externalTicket. Each system says how a step is made (`_step`).
    """

    system = TicketSystem.SERVICE_NOW
    plural = ""
    labels: Mapping[str, str] = {}
    table = ""  # the ServiceNow table of the tickets
    read_fields = ""  # what is read of a ticket found
    missing = ""  # why a step other than create is refused when the ticket is gone

    def __init__(self, state: ControllerState, connection: Connection, indexes: Indexes) -> None:
        self.state = state
        self.connection = connection
        self.indexes = indexes

    def integration(self, soc: ServiceOnCall) -> ServiceNowIntegration | None:
        return soc.spec.integrations.service_now

    def _endpoint(self, soc: ServiceOnCall) -> Endpoint | None:
        integration = self.integration(soc)
        if integration is None:
            return None
        namespace = soc.metadata.namespace or ""
        return Endpoint(_host(integration.instance_url), namespace, secret_refs(integration))

    async def apply(
        self, step: str, resource: Mirrored, soc: ServiceOnCall, credentials: SecretValue
    ) -> Outcome:
        integration = self.integration(soc)
        if integration is None:
            return Outcome(Result.REFUSED, "the service has no ServiceNow integration")
        client = self.connection.client(integration, credentials)
        try:
            ticket = await self._step(client, step, resource, integration)
        except ServiceNowFailure as failure:
            return outcome_of(failure)
        await self.show_ticket(resource, ticket)
        return delivered_outcome(ticket.number, ticket.url)

    async def _step(
        self,
        client: ServiceNowClient,
        step: str,
        resource: Mirrored,
        integration: ServiceNowIntegration,
    ) -> Ticket:
        """The call, or calls, one step makes: each system says which."""
        raise NotImplementedError

    async def _ticket(self, client: ServiceNowClient, resource: Mirrored) -> Ticket:
        """The ticket the create step made, found by our object's UID."""
        ticket = await client.find(self.table, resource.metadata.uid or "", self.read_fields)
        if ticket is None:
            raise ServiceNowFailure(self.missing, retryable=False)
        return ticket

    async def show_ticket(self, resource: Incident | ChangeRequest, ticket: Ticket) -> None:
        """status.externalTicket: the number, link and state people look for (when it moved)."""
        shown = resource.status.external_ticket
        label = self.labels.get(ticket.state, ticket.state)
        if shown is not None and shown.id == ticket.number and shown.state == label:
            return
        status = _ticket_status(ticket, self.labels, self.state.clock())
        meta = resource.metadata
        try:
            await asyncio.to_thread(
                self.state.kube.patch_status, self.plural, meta.namespace or "", meta.name or "",
                status,
            )  # fmt: skip
        except KubeError as error:  # shown on the next step or poll; the outbox is what counts
            log.warning("%s %s: externalTicket not written: %s", self.plural, meta.name, error)


class ServiceNowIncidents(_Mirror[Incident]):
    """The outbox system that keeps an Incident's ServiceNow incident record in step."""

    plural = "incidents"
    labels = INCIDENT_STATES
    table = "incident"
    read_fields = INCIDENT_READ
    missing = "ServiceNow has no incident for this Incident"

    def endpoint(self, incident: Incident, soc: ServiceOnCall) -> Endpoint | None:
        return self._endpoint(soc)

    def plan(self, incident: Incident, soc: ServiceOnCall) -> list[str]:
        return incident_plan.plan(incident)

    def context(self, integration: ServiceNowIntegration) -> incident_plan.TicketContext:
        major = integration.major_incident_fields or incident_plan.DEFAULT_MAJOR_FIELDS
        return incident_plan.TicketContext(
            integration.assignment_group, integration.configuration_item, major
        )

    async def _step(
        self,
        client: ServiceNowClient,
        step: str,
        incident: Incident,
        integration: ServiceNowIntegration,
    ) -> Ticket:
        context = self.context(integration)
        if step == "create":
            fields = incident_plan.create_fields(incident, context)
            return await client.create_incident(incident.metadata.uid or "", fields)
        ticket = await self._ticket(client, incident)
        note = incident_plan.note_for(step, incident)
        if note is not None:
            await client.add_work_note(ticket, incident_plan.marker(incident, step), note)
            return ticket
        return await client.update(ticket, incident_plan.fields_for(step, incident, context))


class ServiceNowChanges(_Mirror[ChangeRequest]):
    """The outbox system that keeps a production ChangeRequest's change_request in step."""

    plural = "changerequests"
    labels = CHANGE_STATES
    table = "change_request"
    read_fields = CHANGE_READ
    missing = "ServiceNow has no change for this ChangeRequest"

    def endpoint(self, change: ChangeRequest, soc: ServiceOnCall) -> Endpoint | None:
        if (change.metadata.namespace or "") not in soc.spec.production_namespaces():
            return None
        return self._endpoint(soc)

    def plan(self, change: ChangeRequest, soc: ServiceOnCall) -> list[str]:
        in_sn = soc.spec.change_policy.approvals_in is ApprovalPlace.SERVICE_NOW
        return change_plan.plan(change, in_sn)

    def template_id(self, change: ChangeRequest) -> str | None:
        ref = change.spec.template_ref
        if change.spec.type is not ChangeType.STANDARD or ref is None:
            return None
        template = self.indexes.template(change.metadata.namespace or "", ref.name)
        return template.spec.service_now_template if template else None

    async def _step(
        self,
        client: ServiceNowClient,
        step: str,
        change: ChangeRequest,
        integration: ServiceNowIntegration,
    ) -> Ticket:
        if step == "create":
            fields = change_plan.create_fields(
                change, integration.assignment_group, integration.configuration_item
            )
            template = self.template_id(change)
            model = change_plan.MODEL[change.spec.type]
            if model == "standard" and template is None:
                model = "normal"  # no ServiceNow template mirrors ours: a normal change there
            return await client.create_change(change.metadata.uid or "", model, fields, template)
        ticket = await self._ticket(client, change)
        return await client.update(ticket, change_plan.fields_for(step, change))


# ---- The read-back poll ----


def external_identity(soc: ServiceOnCall, remote: str) -> str:
    """A ServiceNow user as our user: the team member whose user name or a contact matches."""
    wanted = remote.casefold()
    for member in soc.spec.team.members:
        values = [member.user, *(c.value for c in member.contacts)]
        if any(value.casefold() == wanted for value in values):
            return member.user
    return remote


def _created(soc: ServiceOnCall, resource: Incident | ChangeRequest) -> bool:
    state = state_of(resource.status.sync, TicketSystem.SERVICE_NOW)
    return state is not None and "create" in state.delivered


Kick = Callable[[Hashable, Callable[[], Awaitable[None]]], None]
Fresh = TypeVar("Fresh", Incident, ChangeRequest)


class ReadBack:
    """Every `servicenow_poll_seconds`, what people changed in ServiceNow, applied here."""

    def __init__(
        self,
        state: ControllerState,
        indexes: Indexes,
        secrets: SecretSource,
        connection: Connection,
        kick: Kick | None = None,
        runner: SyncRunner | None = None,
    ) -> None:
        self.state = state
        self.indexes = indexes
        self.secrets = secrets
        self.connection = connection
        self.kick = kick  # thread-safe: the scheduler's job runs in a worker thread
        self.runner = runner
        self.next_poll: dt.datetime | None = None
        self.refused: set[tuple[str, str]] = set()
        # A pass and a callback's read never run at once: each would add the same note.
        self.reading = asyncio.Lock()

    @property
    def interval(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.state.settings.servicenow_poll_seconds)

    def due(self, now: dt.datetime) -> dt.datetime | None:
        """When the next pass falls due: None while no service mirrors to ServiceNow."""
        if not any(s.spec.integrations.service_now for s in self.indexes.all_service_on_calls()):
            return None
        if self.next_poll is None:
            self.next_poll = now + self.interval
        return self.next_poll

    def start_pass(self, now: dt.datetime) -> None:
        """The scheduler found a pass due: run it off the scheduler, the next one an interval on."""
        self.next_poll = now + self.interval
        if self.kick is not None:
            self.kick(("servicenow", "read-back"), self.poll)

    async def poll(self) -> None:
        self.sweep()
        async with self.reading:
            for incident, soc in list(self._incidents()):
                await self._guarded(self.read_incident, incident, soc)
            for change, soc in list(self._changes()):
                await self._guarded(self.read_change, change, soc)

    async def read_one(self, table: str, uid: str) -> bool:
        """The one ticket of our object with this UID read back now (the instance's callback
        named it): False when no object read back has that UID. The object is read afresh,
        as a pass may just have written it; failures reach the caller."""
        async with self.reading:
            if table == "incident":
                for incident, soc in list(self._incidents()):
                    if incident.metadata.uid == uid:
                        await self.read_incident(await self._fresh(Incident, incident), soc)
                        return True
                return False
            for change, soc in list(self._changes()):
                if change.metadata.uid == uid:
                    await self.read_change(await self._fresh(ChangeRequest, change), soc)
                    return True
            return False

    async def _fresh(self, kind: type[Fresh], seen: Fresh) -> Fresh:
        meta = seen.metadata
        plural = "incidents" if kind is Incident else "changerequests"
        with translated():
            body = await asyncio.to_thread(
                self.state.kube.custom.get_namespaced_custom_object,
                GROUP, VERSION, meta.namespace or "", plural, meta.name or "",
            )  # fmt: skip
        return kind.model_validate(body)

    async def _guarded(self, read: Callable[..., Any], resource: Any, soc: ServiceOnCall) -> None:
        try:
            await read(resource, soc)
        except (ServiceNowFailure, SecretUnavailable, KubeError) as error:
            log.info("ServiceNow read-back of %s: %s", resource.metadata.name, error)

    def sweep(self) -> None:
        """Offer the outbox every object of a mirrored service again: steps a ServiceOnCall
        change made due (approvalsIn set after a change was raised) go out without waiting
        for the object's next event."""
        if self.runner is not None:
            self.runner.offer(self._mirrored)

    def _mirrored(self, service: str) -> bool:
        soc = self.indexes.service(service)
        return soc is not None and soc.spec.integrations.service_now is not None

    def _incidents(self) -> Iterator[tuple[Incident, ServiceOnCall]]:
        for incident in list(self.indexes.all_incidents()):
            soc = self.indexes.service(incident.spec.service)
            open_ = incident.status.phase is not IncidentPhase.RESOLVED
            if soc and soc.spec.integrations.service_now and open_ and _created(soc, incident):
                yield incident, soc

    def _changes(self) -> Iterator[tuple[ChangeRequest, ServiceOnCall]]:
        for change in list(self.indexes.all_changes()):
            soc = self.indexes.service(change.spec.service)
            if soc is None or soc.spec.integrations.service_now is None:
                continue
            in_sn = soc.spec.change_policy.approvals_in is ApprovalPlace.SERVICE_NOW
            pending = (change.status.phase or ChangePhase.PENDING) is ChangePhase.PENDING
            if in_sn and pending and _created(soc, change):
                yield change, soc

    async def _client(self, soc: ServiceOnCall) -> ServiceNowClient:
        integration = soc.spec.integrations.service_now
        assert integration is not None
        refs = secret_refs(integration)
        secret = await self.secrets.read(soc.metadata.namespace or "", refs)
        return self.connection.client(integration, secret)

    async def read_incident(self, incident: Incident, soc: ServiceOnCall) -> None:
        client = await self._client(soc)
        ticket = await client.find("incident", incident.metadata.uid or "", INCIDENT_READ)
        if ticket is None:
            return
        journal = [
            incident_plan.RemoteNote(external_identity(soc, e.author), e.text)
            for e in await client.work_notes(ticket.sys_id)
        ]
        assignee = login_of(ticket.fields, "assigned_to")
        mapped = external_identity(soc, assignee) if assignee else ""
        by = external_identity(soc, ticket.fields.get("sys_updated_by", ""))
        found = incident_plan.read_back(incident, ticket.fields, mapped, by, journal)
        if not found:
            return
        body = incident.to_json()
        for act in incident_acts(found, assignee):
            body = await asyncio.to_thread(self._apply, "incidents", body, act)

    async def read_change(self, change: ChangeRequest, soc: ServiceOnCall) -> None:
        client = await self._client(soc)
        ticket = await client.find("change_request", change.metadata.uid or "", CHANGE_READ)
        if ticket is None:
            return
        decisions = [
            change_plan.RemoteDecision(external_identity(soc, d.approver), d.state, d.comments)
            for d in await client.approvers(ticket.sys_id)
        ]
        approval = ticket.fields.get("approval", "")
        body = change.to_json()
        for wanted in change_plan.approvals_to_record(change, approval, decisions):
            key = (change.metadata.uid or "", wanted.approver)
            if key in self.refused:
                continue
            value = {
                "decision": wanted.decision.value,
                "comment": wanted.comment[:1024],
                "via": SN.value,
                "externalUser": wanted.approver,
            }
            try:
                body = await asyncio.to_thread(
                    self._apply, "changerequests", body, Append("approvals", value)
                )
            except Forbidden as error:  # refused by admission (segregation of duties)
                self.refused.add(key)
                log.warning(
                    "approval of %s via ServiceNow by %s refused: %s",
                    change.metadata.name, wanted.approver, error,
                )  # fmt: skip

    def _apply(self, plural: str, body: dict[str, Any], act: Act) -> dict[str, Any]:
        """One act as a JSON patch of the object as last seen; the object after it."""
        meta = body.get("metadata", {})
        operations = act.operations(body) if isinstance(act, Append) else act
        with translated():
            answer = self.state.kube.custom.patch_namespaced_custom_object(
                GROUP, VERSION, meta.get("namespace", ""), plural, meta.get("name", ""),
                operations, _content_type="application/json-patch+json",
            )  # fmt: skip
        return cast(dict[str, Any], answer)


@dataclass(frozen=True, slots=True)
class Append:
    """An entry appended to a spec list: `/-` when the list exists, else the list created,
    only if the object is still the one seen (so a list made meanwhile is not replaced)."""

    field: str
    value: dict[str, Any]

    def operations(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        path = f"/spec/{self.field}"
        if body.get("spec", {}).get(self.field):
            return [{"op": "add", "path": f"{path}/-", "value": self.value}]
        version = body.get("metadata", {}).get("resourceVersion")
        return [
            {"op": "test", "path": "/metadata/resourceVersion", "value": version},
            {"op": "add", "path": path, "value": [self.value]},
        ]


# An act read back: a list entry to append, or JSON patch operations as they are.
Act = Append | list[dict[str, Any]]


def read_back_jobs(read_back: ReadBack) -> tuple[Job, ...]:
    """The scheduler's ServiceNow job: one read-back pass every servicenow_poll_seconds."""

    def dues(state: ControllerState, _: Indexes) -> Iterator[Due]:
        at = read_back.due(state.clock())
        if at is not None:
            yield Due("servicenow-read-back", at)
            # The pass after: the scheduler sleeps until it rather than a whole TICK.
            yield Due("servicenow-read-back", at + read_back.interval)

    def run(_: ControllerState, __: Indexes, ___: Hashable, now: dt.datetime) -> None:
        read_back.start_pass(now)

    return (Job("servicenow-read-back", dues, run),)


def start_servicenow(
    runner: SyncRunner, state: ControllerState, indexes: Indexes, kick: Kick
) -> ReadBack:
    """Register both systems with the outbox (sharing its HTTP client); the read-back poll."""
    connection = Connection(runner.client)
    runner.register(INCIDENTS, ServiceNowIncidents(state, connection, indexes))
    runner.register(CHANGE_REQUESTS, ServiceNowChanges(state, connection, indexes))
    return ReadBack(state, indexes, runner.secrets, connection, kick, runner)


def incident_acts(found: incident_plan.ReadBack, remote_assignee: str) -> list[Act]:
    """The acts, one write each, that apply what ServiceNow said to the Incident."""
    acts: list[Act] = []
    for note in found.notes:
        acts.append(
            Append("notes", {"text": note.text, "via": SN.value, "externalUser": note.author})
        )
    if found.acknowledge_by:
        value = {
            "comment": "In Progress in ServiceNow",
            "via": SN.value,
            "externalUser": found.acknowledge_by,
        }
        acts.append(Append("acknowledgements", value))
    if found.assignee:
        acts.append(
            [
                {"op": "add", "path": "/spec/assignee", "value": found.assignee},
                {"op": "add", "path": "/spec/assignedVia", "value": SN.value},
                {"op": "add", "path": "/spec/assignedExternalUser", "value": remote_assignee},
            ]
        )
    if found.resolve:
        code, text, by = found.resolve
        value = {"code": code.value, "note": text, "via": SN.value, "externalUser": by}
        acts.append([{"op": "add", "path": "/spec/resolution", "value": value}])
    return acts
