"""PagerDuty webhooks (v3) inbound: POST /pagerduty on the intake's HTTPS server.

Each delivery is checked before anything reads it (core/incident/pagerduty_webhooks.py:
`X-PagerDuty-Signature` against the subscription secrets of one Secret, then freshness),
matched to our Incident (its UID is the dedup_key we send; notes name only PagerDuty's
incident ID, which the Incident carries as a label once any other event named it) and
applied as core/incident/pagerduty_acts.py says, stamped as the controller and marked
via PagerDuty. Answers: 401 unsigned or wrongly signed, 400 malformed or stale, 503
when the API server could not be read or written (PagerDuty retries), 200 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from changegate.adapters.kube import Conflict, KubeError
from changegate.api.v1alpha1.incident import Incident
from changegate.api.v1alpha1.serviceoncall import Member
from changegate.core.incident.pagerduty_acts import InboundAct, act_for
from changegate.core.incident.pagerduty_webhooks import (
    EventRefused,
    PagerDutyEvent,
    parse_event,
    refuse_stale,
    signature_valid,
)
from changegate.core.ports import Clock
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.intake import IncidentStore, Route, Token
from changegate.handlers.controller.state import ControllerState
from changegate.metrics import PAGERDUTY_WEBHOOKS

log = logging.getLogger(__name__)

PATH = "/pagerduty"
LABEL_PAGERDUTY_INCIDENT = "changegate.io/pagerduty-incident"
MAX_BODY_BYTES = 1024 * 1024  # a v3 event is a few kilobytes
ATTEMPTS = 4  # reads and writes of one event before it answers 503
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


class InboundStore(IncidentStore, Protocol):
    """What the route needs of the API server: the intake's, and one Incident by name."""

    def get_incident(self, namespace: str, name: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class Applied:
    """What one event came to, for the answer."""

    incident: str
    act: InboundAct


def answer(status: int, result: str, message: str, **extra: Any) -> web.Response:
    PAGERDUTY_WEBHOOKS.labels(result).inc()
    body = json.dumps({"message": message, **extra})
    return web.Response(status=status, text=body, content_type="application/json")


# -- finding the Incident and applying the act (blocking; runs in a thread) -----------


def label_patch(event: PagerDutyEvent, incident: Incident) -> dict[str, Any]:
    """The PagerDuty incident ID as a label, so that later notes (which name only it) find us."""
    ident = event.incident_id
    labels = incident.metadata.labels
    if not _LABEL_VALUE.match(ident) or labels.get(LABEL_PAGERDUTY_INCIDENT) == ident:
        return {}
    return {"metadata": {"labels": {LABEL_PAGERDUTY_INCIDENT: ident}}}


def apply_once(
    store: InboundStore, event: PagerDutyEvent, where: tuple[str, str], members: Sequence[Member]
) -> Applied | None:
    """Read the Incident, decide, write; None when it is gone. Conflict: someone wrote first."""
    namespace, name = where
    body = store.get_incident(namespace, name)
    if body is None:
        return None
    incident = Incident.model_validate(body)
    act = act_for(event, incident, members)
    patch = {**label_patch(event, incident), **({"spec": act.spec} if act.applies else {})}
    if patch:
        store.patch_incident(namespace, name, patch, incident.metadata.resource_version or "")
    return Applied(name, act)


def apply(
    store: InboundStore, event: PagerDutyEvent, where: tuple[str, str], members: Sequence[Member]
) -> Applied | None:
    """apply_once, again while someone else wrote the Incident meanwhile."""
    for _ in range(ATTEMPTS - 1):
        try:
            return apply_once(store, event, where, members)
        except Conflict:
            log.debug("PagerDuty event %s: the Incident changed meanwhile, again", event.id)
    return apply_once(store, event, where, members)


def find_incident(indexes: Indexes, event: PagerDutyEvent) -> Incident | None:
    """Our Incident: by its UID (the dedup_key we sent), else by the PagerDuty ID label."""
    found: list[Incident] = list(indexes.all_incidents())
    if event.incident_key:
        by_key = [i for i in found if i.metadata.uid == event.incident_key]
        if by_key:
            return by_key[0]
    labelled = LABEL_PAGERDUTY_INCIDENT
    by_id = [i for i in found if i.metadata.labels.get(labelled) == event.incident_id]
    return by_id[0] if by_id and event.incident_id else None


def members_of(indexes: Indexes, service: str) -> list[Member]:
    """The service's team, whose contacts map PagerDuty users to team members."""
    soc = indexes.service(service)
    return list(soc.spec.team.members) if soc else []


# -- the HTTP handler ------------------------------------------------------------------


@dataclass
class PagerDutyInbound:
    """The route's state: its port to the API server, the indexes, the secrets, the clock."""

    store: InboundStore
    indexes: Indexes
    secrets: Sequence[Token]
    clock: Clock
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @classmethod
    def of(cls, state: ControllerState, indexes: Indexes) -> PagerDutyInbound:
        settings = state.settings
        tokens = [
            Token(state.kube, settings.namespace, settings.pagerduty_webhook_secret, key)
            for key in settings.pagerduty_webhook_secret_keys
        ]
        return cls(state.kube, indexes, tokens, state.clock)

    def routes(self) -> list[Route]:
        return [(PATH, self.receive)]

    def current_secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (token.current() for token in self.secrets) if s)

    async def receive(self, request: web.Request) -> web.Response:
        try:
            secrets = await asyncio.to_thread(self.current_secrets)
        except KubeError as error:
            log.warning("PagerDuty webhooks: cannot read the signing Secret: %s", error)
            return answer(503, "unavailable", "cannot check signatures right now")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return answer(413, "invalid", f"body over {MAX_BODY_BYTES} bytes")
        body = await request.read()
        if not signature_valid(body, request.headers.get("X-PagerDuty-Signature", ""), secrets):
            return answer(401, "unsigned", "missing or wrong X-PagerDuty-Signature")
        try:
            event = parse_event(body)
            refuse_stale(event, self.clock())
        except EventRefused as error:
            stale = str(error).startswith(("stale", "event from the future"))
            return answer(400, "stale" if stale else "invalid", str(error))
        return await self.deliver(event)

    async def deliver(self, event: PagerDutyEvent) -> web.Response:
        """Apply the event to its Incident, one event per Incident at a time."""
        incident = find_incident(self.indexes, event)
        if incident is None:
            return answer(200, "ignored", "no Incident of changegate has this incident")
        where = (incident.metadata.namespace or "", incident.metadata.name or "")
        members = members_of(self.indexes, incident.spec.service)
        async with self.locks.setdefault(incident.metadata.uid or where[1], asyncio.Lock()):
            try:
                applied = await asyncio.to_thread(apply, self.store, event, where, members)
            except (KubeError, ValidationError) as error:
                log.warning("PagerDuty event %s not applied: %s", event.id, str(error)[:300])
                return answer(503, "unavailable", "not applied, retry")
        if applied is None:
            return answer(200, "ignored", "the Incident is gone")
        result = "applied" if applied.act.applies else "ignored"
        log.info("PagerDuty %s on %s: %s", event.type, where[1], applied.act.what)
        return answer(200, result, applied.act.what, incident=applied.incident)
