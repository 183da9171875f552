"""PagerDuty Events API v2, outbound: Incidents as alerts, production rollouts as change events.

Two `SyncSystem`s for the outbox runner (handlers/controller/sync.py):
`PagerDutyIncidents` triggers, acknowledges and resolves one alert per Incident
under dedup_key = the Incident's UID (core/incident/mirror.py plans the steps);
`PagerDutyChanges` sends one change event per production DeploymentRecord
finished within CHANGE_EVENT_HORIZON.
Each step is one POST through adapters/notify/delivery.py: 202 delivered, 400
refused for good, 408/429/5xx and transport trouble retried by the outbox. A
client-side limit keeps each routing key under PagerDuty's ~120 events a minute.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from changegate.adapters.notify.delivery import RetryPolicy, Sender
from changegate.api.v1alpha1 import DeploymentRecord, Incident
from changegate.api.v1alpha1.common import SecretKeyRef, TicketSystem
from changegate.api.v1alpha1.incident import Severity
from changegate.api.v1alpha1.serviceoncall import Link, PagerDutyIntegration, ServiceOnCall
from changegate.core.incident.mirror import TRIGGER, pagerduty_steps
from changegate.core.ports import SecretValue
from changegate.core.sync import Endpoint, Outcome, Result

ENQUEUE = "/v2/enqueue"
CHANGE_ENQUEUE = "/v2/change/enqueue"
CHANGE_STEP = "change"
ROUTING_KEY = "routingKey"
CLIENT = "changegate"
EVENTS_PER_MINUTE = 120
SUMMARY_MAX = 1024
# Change events only for rollouts finished this recently: PagerDuty shows recent changes
# beside its incidents, so an older one (sendChangeEvents turned on later, a record
# retried for hours) would be noise.
CHANGE_EVENT_HORIZON = dt.timedelta(hours=1)
DETAIL_ITEMS = 20

SEVERITIES = {
    Severity.CRITICAL: "critical",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "info",
}


# -- What PagerDuty is sent (pure mappings) ------------------------------------------------


def links_of(*groups: Iterable[Link]) -> list[dict[str, str]]:
    """PagerDuty `links` from named links, each address once."""
    seen: dict[str, str] = {}
    for group in groups:
        for link in group:
            seen.setdefault(link.url, link.name)
    return [{"href": url, "text": name} for url, name in seen.items()]


def _stamp(moment: dt.datetime | None) -> dict[str, str]:
    return {"timestamp": moment.isoformat()} if moment is not None else {}


def source_of(incident: Incident) -> str:
    """Where it happens: the alert's instance when it names one, else the service's namespace."""
    labels = incident.spec.alert.labels if incident.spec.alert else {}
    return labels.get("instance") or f"{incident.spec.service}.{incident.metadata.namespace}"


def incident_details(incident: Incident) -> dict[str, Any]:
    """custom_details: where, which alerts, which recent rollouts may have caused it."""
    status = incident.status
    details: dict[str, Any] = {
        "incident": incident.metadata.name,
        "namespace": incident.metadata.namespace,
        "service": incident.spec.service,
        "severity": incident.spec.severity.value,
        "major": incident.spec.major,
        "alerts": [
            {"name": a.name, "state": a.state.value, "fingerprint": a.fingerprint}
            for a in status.alerts[:DETAIL_ITEMS]
        ],
        "suspect_changes": [
            {"record": s.name, "finished": s.finish_time.isoformat()}
            for s in status.suspect_changes[:DETAIL_ITEMS]
        ],
    }
    if incident.spec.description:
        details["description"] = incident.spec.description
    return details


def trigger_event(incident: Incident, soc: ServiceOnCall, routing_key: str) -> dict[str, Any]:
    """The trigger of the Incident's alert: summary, source, severity, service, team, links."""
    payload: dict[str, Any] = {
        "summary": incident.spec.summary[:SUMMARY_MAX],
        "source": source_of(incident),
        "severity": SEVERITIES[incident.spec.severity],
        "component": incident.spec.service,
        "group": soc.spec.team.name,
        "custom_details": incident_details(incident),
        **_stamp(incident.status.triggered_time or incident.metadata.creation_timestamp),
    }
    if incident.spec.alert is not None:
        payload["class"] = incident.spec.alert.name
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": TRIGGER,
        "dedup_key": dedup_key(incident),
        "payload": payload,
        "client": CLIENT,
    }
    # The incident's own links (from its alerts), else the service's.
    status, spec = incident.status, soc.spec
    links = links_of(status.dashboards or spec.dashboards, status.runbooks or spec.runbooks)
    return event | ({"links": links} if links else {})


def follow_up_event(incident: Incident, action: str, routing_key: str) -> dict[str, Any]:
    """acknowledge or resolve: the same routing key and dedup_key as the trigger."""
    return {"routing_key": routing_key, "event_action": action, "dedup_key": dedup_key(incident)}


def dedup_key(incident: Incident) -> str:
    """The Incident's UID: stable across retries and restarts, 36 characters."""
    return incident.metadata.uid or ""


def change_summary(record: DeploymentRecord) -> str:
    spec = record.spec
    images = f" ({spec.image_summary})" if spec.image_summary else ""
    verb = "rolled out" if spec.result.value == "Succeeded" else "failed to roll out"
    change = f" under {spec.change_request.name}" if spec.change_request else ""
    text = f"{spec.service}: {spec.workload.kind.value}/{spec.workload.name} {verb}{images}{change}"
    return f"{text} in {spec.environment} by {spec.deployer or 'unknown'}"[:SUMMARY_MAX]


def change_details(record: DeploymentRecord) -> dict[str, Any]:
    """custom_details of a change event: commit, change, deployer, record and the rest."""
    spec = record.spec
    details: dict[str, Any] = {
        "record": record.metadata.name,
        "service": spec.service,
        "environment": spec.environment,
        "namespace": spec.namespace,
        "workload": f"{spec.workload.kind.value}/{spec.workload.name}",
        "revision": spec.revision,
        "result": spec.result.value,
        "admission": spec.admission.value,
        "images": [i.image for i in spec.images[:DETAIL_ITEMS]],
        "change": spec.change_request.name if spec.change_request else None,
        "change_type": spec.change_type.value if spec.change_type else None,
        "deployer": spec.deployer,
        "requester": spec.requester,
        "approvers": list(spec.approvers),
        "commit": spec.source.commit if spec.source else None,
        "repository": spec.source.repository if spec.source else None,
        "lead_time_seconds": spec.lead_time_seconds,
    }
    return {k: v for k, v in details.items() if v is not None}


def change_links(record: DeploymentRecord, soc: ServiceOnCall) -> list[dict[str, str]]:
    """The pull request and pipeline run behind the rollout, then the service's dashboards."""
    source = record.spec.source
    found: list[Link] = []
    if source is not None:
        if source.pull_request:
            found.append(Link(name="pull request", url=source.pull_request))
        if source.pipeline_run:
            found.append(Link(name="pipeline run", url=source.pipeline_run))
        if source.repository.startswith(("https://", "http://")):
            found.append(Link(name="repository", url=source.repository))
    return links_of(found, soc.spec.dashboards)


def change_steps(record: DeploymentRecord, now: dt.datetime) -> list[str]:
    """The record's change event while its rollout finished within the horizon, else none."""
    return [CHANGE_STEP] if now - record.spec.finish_time <= CHANGE_EVENT_HORIZON else []


def change_event(record: DeploymentRecord, soc: ServiceOnCall, routing_key: str) -> dict[str, Any]:
    """The change event of one finished production rollout."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "payload": {
            "summary": change_summary(record),
            "source": CLIENT,
            "custom_details": change_details(record),
            **_stamp(record.spec.finish_time),
        },
    }
    links = change_links(record, soc)
    return event | ({"links": links} if links else {})


# -- How it is sent ---------------------------------------------------------------------------


class RateLimit:
    """At most `per_minute` events per routing key in any minute (PagerDuty's documented rate).

    Keys are held hashed: the routing key is a credential.
    """

    def __init__(self, per_minute: int = EVENTS_PER_MINUTE) -> None:
        self.per_minute = per_minute
        self._sent: dict[str, deque[dt.datetime]] = {}

    def wait(self, routing_key: str, now: dt.datetime) -> float:
        """Seconds until an event may be sent; 0 means now, and counts it as sent."""
        key = hashlib.sha256(routing_key.encode()).hexdigest()
        sent = self._sent.setdefault(key, deque())
        while sent and now - sent[0] >= dt.timedelta(minutes=1):
            sent.popleft()
        if len(sent) >= self.per_minute:
            return (sent[0] + dt.timedelta(minutes=1) - now).total_seconds()
        sent.append(now)
        return 0.0


def outcome_of(
    accepted: bool, retryable: bool, error: str | None, retry_after: float | None
) -> Outcome:
    if accepted:
        return Outcome(Result.DELIVERED)
    return Outcome(Result.RETRY if retryable else Result.REFUSED, error, retry_after)


class EventsClient:
    """One POST per event to the Events API; the outbox, not this client, retries."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        clock: Callable[[], dt.datetime],
        limit: RateLimit | None = None,
    ) -> None:
        self.sender = Sender(client, RetryPolicy(attempts=1), clock=clock)
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.limit = limit or RateLimit()

    @property
    def host(self) -> str:
        return httpx.URL(self.base_url).host or self.base_url

    async def send(self, path: str, event: dict[str, Any], routing_key: str) -> Outcome:
        wait = self.limit.wait(routing_key, self.clock())
        if wait > 0:
            return Outcome(Result.RETRY, "held back: 120 events a minute per routing key", wait)
        body = json.dumps(event, separators=(",", ":")).encode()
        done = await self.sender.post(
            self.base_url + path,
            body,
            {"Content-Type": "application/json"},
            lambda r: r.status_code == httpx.codes.ACCEPTED,
            [routing_key],
        )
        return outcome_of(done.accepted, done.retryable, done.error, done.retry_after)


def routing_key_of(credentials: SecretValue) -> str | None:
    return credentials.get(ROUTING_KEY)


def secret_refs(integration: PagerDutyIntegration) -> dict[str, SecretKeyRef]:
    return {ROUTING_KEY: integration.secret_ref}


MISSING_KEY = Outcome(Result.RETRY, "the PagerDuty Secret has no routing key")


class PagerDutyIncidents:
    """Incidents as PagerDuty alerts: trigger, acknowledge, resolve under one dedup_key."""

    system = TicketSystem.PAGER_DUTY

    def __init__(self, events: EventsClient) -> None:
        self.events = events

    def endpoint(self, resource: Incident, soc: ServiceOnCall) -> Endpoint | None:
        integration = soc.spec.integrations.pager_duty
        if integration is None or not resource.metadata.uid:
            return None
        return Endpoint(self.events.host, soc.metadata.namespace or "", secret_refs(integration))

    def plan(self, resource: Incident, soc: ServiceOnCall) -> list[str]:
        return pagerduty_steps(resource)

    async def apply(
        self, step: str, resource: Incident, soc: ServiceOnCall, credentials: SecretValue
    ) -> Outcome:
        key = routing_key_of(credentials)
        if key is None:
            return MISSING_KEY
        if step == TRIGGER:
            event = trigger_event(resource, soc, key)
        else:
            event = follow_up_event(resource, step, key)
        return await self.events.send(ENQUEUE, event, key)


class PagerDutyChanges:
    """Finished production rollouts as PagerDuty change events, one per DeploymentRecord."""

    system = TicketSystem.PAGER_DUTY

    def __init__(self, events: EventsClient) -> None:
        self.events = events

    def endpoint(self, resource: DeploymentRecord, soc: ServiceOnCall) -> Endpoint | None:
        integration = soc.spec.integrations.pager_duty
        if integration is None or not integration.send_change_events:
            return None
        if not resource.spec.production:
            return None
        return Endpoint(self.events.host, soc.metadata.namespace or "", secret_refs(integration))

    def plan(self, resource: DeploymentRecord, soc: ServiceOnCall) -> list[str]:
        return change_steps(resource, self.events.clock())

    async def apply(
        self, step: str, resource: DeploymentRecord, soc: ServiceOnCall, credentials: SecretValue
    ) -> Outcome:
        key = routing_key_of(credentials)
        if key is None:
            return MISSING_KEY
        return await self.events.send(CHANGE_ENQUEUE, change_event(resource, soc, key), key)
