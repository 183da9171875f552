"""The Alertmanager intake: an HTTPS receiver in the controller role that opens and updates Incidents.

POST /alerts checks the bearer token (a key of a Secret), bounds the body, parses it
once (core.incident.alerts), splits it by service (core.incident.routing), merges each
(service, group) into its latest Incident (core.incident.intake) and writes the result
before answering: 2xx once everything is persisted, 503 when the API server could not
be written (Alertmanager retries; a retry changes nothing already written), 4xx for
what it will never accept. Started by the controller's Kopf startup handler; its
serving certificate is reloaded when the mounted files rotate (adapters/tls.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from pydantic import ValidationError

from changegate.adapters.kube import Conflict, KubeError
from changegate.adapters.tls import ServingCertificate
from changegate.api.v1alpha1.common import ObjectMeta
from changegate.api.v1alpha1.incident import (
    AlertState,
    Incident,
    IncidentOrigin,
    IncidentSpec,
    Resolution,
    ResolutionCode,
    Severity,
    SourceAlert,
)
from changegate.core.incident.alerts import (
    DEFAULT_SEVERITY,
    PayloadError,
    WebhookAlert,
    dashboards_of,
    most_severe,
    parse_payload,
    runbooks_of,
    summary_of,
)
from changegate.core.incident.intake import (
    OPERATOR,
    Merge,
    Outcome,
    episode_of,
    merge,
    status_alerts,
)
from changegate.core.incident.lifecycle import with_timeline
from changegate.core.incident.routing import (
    Delivery,
    RoutingConfig,
    ServiceDirectory,
    ServiceEntry,
    directory_of,
    split_post,
)
from changegate.core.ports import Clock
from changegate.handlers.controller.indexes import Indexes, snapshot
from changegate.handlers.controller.state import ControllerState
from changegate.metrics import INTAKE_REQUESTS

log = logging.getLogger(__name__)

PATH = "/alerts"
LABEL_SERVICE = "changegate.io/service"
LABEL_GROUP = "changegate.io/alert-group"
LABEL_EPISODE = "changegate.io/episode"
CONCURRENCY = 4  # API writes in flight at once; one per service at a time
ATTEMPTS = 5  # reads and writes of one delivery before its post answers 503
TOKEN_TTL_SECONDS = 30.0  # a rotated token is picked up this soon


class IncidentStore(Protocol):
    """What the intake needs of the API server (the KubeAdapter; a fake in unit tests).

    Blocking calls that raise KubeError (Conflict on a stale resourceVersion).
    """

    def list_incidents(self, label_selector: str) -> list[dict[str, Any]]: ...

    def create_incident(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None: ...

    def patch_incident(
        self, namespace: str, name: str, body: dict[str, Any], resource_version: str
    ) -> dict[str, Any]: ...

    def patch_incident_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str
    ) -> dict[str, Any]: ...

    def secret_value(self, namespace: str, name: str, key: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Services:
    """The service directory for routing, and the namespace each service's Incidents go to."""

    directory: ServiceDirectory
    namespaces: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    """Read once at start-up from the settings."""

    routing: RoutingConfig
    namespace: str  # the release's: the token Secret, and Incidents of services without one
    token_secret: str
    token_key: str
    max_body_bytes: int


class RetryDelivery(Exception):
    """Someone else wrote the group's Incidents meanwhile: read them again and merge anew."""


# -- persistence of one delivery (blocking; runs in the intake's threads) ---------------


def group_hash(group_key: str) -> str:
    """A label-safe stand-in for Alertmanager's group key (which is too long for a label)."""
    return hashlib.sha256(group_key.encode()).hexdigest()[:40]


def episode_number(incident: Incident) -> int:
    raw = incident.metadata.labels.get(LABEL_EPISODE, "")
    return int(raw) if raw.isdigit() else 0


def incident_name(service: str, group: str, episode: int) -> str:
    """Deterministic, so a retry after a crash finds the Incident instead of making another."""
    return f"{service}-{group[:10]}-{episode}"


def incidents_of(store: IncidentStore, service: str, group: str) -> list[Incident]:
    """The group's Incidents of the service, oldest episode first; unparsable ones skipped."""
    found = []
    for body in store.list_incidents(f"{LABEL_SERVICE}={service},{LABEL_GROUP}={group}"):
        try:
            found.append(Incident.model_validate(body))
        except ValidationError as error:
            log.warning("skipping an Incident that does not parse: %s", error.errors()[:3])
    return sorted(found, key=episode_number)


def unfilled(incident: Incident) -> bool:
    """Created by an attempt that did not get to write its status (a crash, a lost answer)."""
    return not incident.status.alerts and incident.spec.resolution is None


def owes_resolution(incident: Incident) -> bool:
    """Every alert resolved but the spec not yet: a crash between the two writes."""
    alerts = incident.status.alerts
    return (
        bool(alerts)
        and incident.spec.resolution is None
        and all(a.state is AlertState.RESOLVED for a in alerts)
    )


def _source_alert(alert: WebhookAlert, group_key: str) -> SourceAlert:
    labels = dict(sorted(alert.labels.items())[:64])
    url = alert.generator_url if alert.generator_url.startswith(("http://", "https://")) else None
    return SourceAlert(
        fingerprint=alert.fingerprint,
        name=(alert.name or "alert")[:256],
        labels={k: v[:1024] for k, v in labels.items()},
        start_time=alert.starts_at,
        generator_url=url if url and len(url) <= 2048 and " " not in url else None,
        group_key=group_key[:1024],
    )


def new_incident(
    delivery: Delivery, result: Merge, namespace: str, episode: int, group: str
) -> dict[str, Any]:
    """The Incident a new episode opens (its status is written right after)."""
    firing = {a.fingerprint for a in (result.episode.alerts if result.episode else ()) if a.firing}
    first = next(a for a in delivery.alerts if a.fingerprint in firing)
    incident = Incident(
        metadata=ObjectMeta(
            name=incident_name(delivery.service, group, episode),
            namespace=namespace,
            labels={
                LABEL_SERVICE: delivery.service,
                LABEL_GROUP: group,
                LABEL_EPISODE: str(episode),
            },
        ),
        spec=IncidentSpec(
            service=delivery.service,
            summary=summary_of([first], delivery.service),
            severity=result.severity or DEFAULT_SEVERITY,
            origin=IncidentOrigin.ALERT,
            alert=_source_alert(first, delivery.group_key),
        ),
    )
    body = incident.to_json()
    body.pop("status", None)
    return body


def status_of(
    incident: Incident, result: Merge, delivery: Delivery, entry: ServiceEntry | None
) -> dict[str, Any]:
    """The status fields the intake owns, after the merge."""
    status = incident.status
    episode = result.episode
    dashboards = [*status.dashboards, *(entry.dashboards if entry else ())]
    runbooks = [*status.runbooks, *(entry.runbooks if entry else ())]
    return {
        "alerts": [a.to_json() for a in status_alerts(episode)] if episode else [],
        "timeline": [e.to_json() for e in with_timeline(status.timeline, result.timeline)],
        "dashboards": [d.to_json() for d in dashboards_of(delivery.alerts, dashboards)],
        "runbooks": [r.to_json() for r in runbooks_of(delivery.alerts, runbooks)],
        "previousEpisodeEndTime": (
            episode.previous_end.isoformat() if episode and episode.previous_end else None
        ),
    }


def auto_resolution(now: dt.datetime) -> Resolution:
    return Resolution(
        code=ResolutionCode.AUTO_RESOLVED,
        note="every alert of the group has resolved",
        resolved_by=OPERATOR,
        time=now,
    )


def spec_changes(incident: Incident, result: Merge, now: dt.datetime) -> dict[str, Any]:
    """Spec fields to write: the auto-resolution, and a severity that got worse (never better)."""
    changes: dict[str, Any] = {}
    if result.outcome is Outcome.AUTO_RESOLVED or owes_resolution(incident):
        changes["resolution"] = auto_resolution(now).to_json()
    worse = most_severe([incident.spec.severity, result.severity or Severity.LOW])
    if result.outcome is Outcome.UPDATED and worse is not incident.spec.severity:
        changes["severity"] = worse.value if worse else None
    return changes


def write(
    store: IncidentStore,
    incident: Incident,
    result: Merge,
    delivery: Delivery,
    entry: ServiceEntry | None,
    now: dt.datetime,
) -> Incident:
    """Status first, then the spec (a crash between them is repaired by owes_resolution);
    the Incident as written."""
    namespace, name = incident.metadata.namespace or "", incident.metadata.name or ""
    body = store.patch_incident_status(
        namespace,
        name,
        status_of(incident, result, delivery, entry),
        incident.metadata.resource_version or "",
    )
    written = Incident.model_validate(body)
    changes = spec_changes(written, result, now)
    if changes:
        body = store.patch_incident(
            namespace, name, {"spec": changes}, written.metadata.resource_version or ""
        )
        written = Incident.model_validate(body)
    return written


@dataclass(frozen=True, slots=True)
class Persisted:
    """What one delivery came to, for the answer."""

    service: str
    incident: str | None
    outcome: Outcome
    opened: Incident | None = None  # as written, for its first page


def persist_once(
    store: IncidentStore,
    delivery: Delivery,
    namespace: str,
    entry: ServiceEntry | None,
    now: dt.datetime,
) -> Persisted:
    """Merge the delivery into the group's latest Incident and write what changed."""
    group = group_hash(delivery.group_key)
    found = incidents_of(store, delivery.service, group)
    latest = found[-1] if found else None
    if latest is not None and unfilled(latest):
        previous = found[-2] if len(found) > 1 else None
        result = merge(episode_of(previous) if previous else None, delivery, now)
        if result.outcome is Outcome.OPENED:
            written = write(store, latest, result, delivery, entry, now)
            return Persisted(delivery.service, latest.metadata.name, result.outcome, written)
    result = merge(episode_of(latest) if latest else None, delivery, now)
    if result.outcome is Outcome.OPENED:
        episode = episode_number(latest) + 1 if latest else 1
        body = new_incident(delivery, result, namespace, episode, group)
        created = store.create_incident(namespace, body)
        if created is None:  # an earlier attempt created it: read the group again
            raise RetryDelivery(f"Incident {body['metadata']['name']} exists already")
        opened = Incident.model_validate(created)
        written = write(store, opened, result, delivery, entry, now)
        return Persisted(delivery.service, opened.metadata.name, result.outcome, written)
    if latest is None:
        return Persisted(delivery.service, None, result.outcome)
    if result.outcome is Outcome.UNCHANGED:
        if owes_resolution(latest):
            write_resolution(store, latest, now)
        return Persisted(delivery.service, latest.metadata.name, result.outcome)
    write(store, latest, result, delivery, entry, now)
    return Persisted(delivery.service, latest.metadata.name, result.outcome)


def write_resolution(store: IncidentStore, incident: Incident, now: dt.datetime) -> None:
    store.patch_incident(
        incident.metadata.namespace or "",
        incident.metadata.name or "",
        {"spec": {"resolution": auto_resolution(now).to_json()}},
        incident.metadata.resource_version or "",
    )


def persist(
    store: IncidentStore,
    delivery: Delivery,
    namespace: str,
    entry: ServiceEntry | None,
    clock: Clock,
) -> Persisted:
    """persist_once, again while someone else wrote meanwhile (Conflict, a create that ran)."""
    for _ in range(ATTEMPTS - 1):
        try:
            return persist_once(store, delivery, namespace, entry, clock())
        except (Conflict, RetryDelivery) as error:
            log.debug("intake for %s retried: %s", delivery.service, error)
    return persist_once(store, delivery, namespace, entry, clock())


# -- the token ----------------------------------------------------------------------


@dataclass
class Token:
    """The bearer token from its Secret, re-read every TOKEN_TTL_SECONDS; never logged."""

    store: IncidentStore
    namespace: str
    secret: str
    key: str
    _value: str | None = None
    _read_at: float = field(default=-TOKEN_TTL_SECONDS * 2)

    def current(self) -> str | None:
        """The token, or None when the Secret or its key is missing (then nobody gets in)."""
        if time.monotonic() - self._read_at >= TOKEN_TTL_SECONDS:
            self._value = self.store.secret_value(self.namespace, self.secret, self.key) or None
            self._read_at = time.monotonic()
        return self._value


def authorized(header: str, token: str | None) -> bool:
    """Whether the Authorization header carries the token, compared in constant time."""
    scheme, _, given = header.partition(" ")
    if token is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


# -- the HTTP handler ----------------------------------------------------------------


def _answer(status: int, result: str, message: str, **extra: Any) -> web.Response:
    INTAKE_REQUESTS.labels(result).inc()
    body = json.dumps({"message": message, **extra})
    return web.Response(status=status, text=body, content_type="application/json")


@dataclass
class Intake:
    """The intake's state: its port to the API server, config, the services, locks, threads."""

    store: IncidentStore
    config: IntakeConfig
    services: Callable[[], Services]
    clock: Clock
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="intake")
    )
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    token: Token | None = None
    # Told of each Incident opened once it is persisted, as written, so its first page goes
    # out now instead of after the watch brings the Incident back or a read fetches it.
    opened: Callable[[Incident], None] | None = None

    def __post_init__(self) -> None:
        self.token = Token(
            self.store, self.config.namespace, self.config.token_secret, self.config.token_key
        )

    async def blocking(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def deliver(self, delivery: Delivery, services: Services) -> Persisted | str:
        """Persist one service's delivery under its lock; the error text when it failed."""
        namespace = services.namespaces.get(delivery.service, self.config.namespace)
        entry = services.directory.named(delivery.service)
        lock = self.locks.setdefault(delivery.service, asyncio.Lock())
        async with lock:
            try:
                persisted: Persisted = await self.blocking(
                    persist, self.store, delivery, namespace, entry, self.clock
                )
            except (KubeError, RetryDelivery) as error:
                log.warning("intake could not persist alerts of %s: %s", delivery.service, error)
                return f"{delivery.service}: {error}"
        if persisted.opened is not None and self.opened is not None:
            self.opened(persisted.opened)
        return persisted

    async def receive(self, request: web.Request) -> web.Response:
        assert self.token is not None
        try:
            token = await self.blocking(self.token.current)
        except KubeError as error:
            log.warning("intake cannot read its token Secret: %s", error)
            return _answer(503, "unavailable", "the intake cannot check tokens right now")
        if not authorized(request.headers.get("Authorization", ""), token):
            return _answer(401, "unauthorized", "unauthorized")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            limit = self.config.max_body_bytes
            return _answer(413, "too_large", f"body over {limit} bytes: lower max_alerts")
        try:
            payload = await self.blocking(parse_payload, body)
        except PayloadError as error:
            return _answer(400, "invalid", str(error))
        services = self.services()
        deliveries = split_post(payload, services.directory, self.config.routing)
        outcomes = await asyncio.gather(*(self.deliver(d, services) for d in deliveries))
        failed = [o for o in outcomes if isinstance(o, str)]
        if failed:
            return _answer(503, "unavailable", "not persisted, retry: " + "; ".join(failed)[:2048])
        incidents = [
            {"service": o.service, "incident": o.incident, "outcome": o.outcome.value}
            for o in outcomes
            if isinstance(o, Persisted)
        ]
        return _answer(200, "accepted", "persisted", incidents=incidents)


Route = tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]


def intake_app(intake: Intake, routes: Sequence[Route] = ()) -> web.Application:
    """POST /alerts, and the other receivers that share the server (POST path, handler)."""
    app = web.Application(client_max_size=intake.config.max_body_bytes)
    app.router.add_post(PATH, intake.receive)
    for path, handler in routes:
        app.router.add_post(path, handler)
    return app


# -- wiring into the controller ----------------------------------------------------


def services_of(socs: Sequence[Any]) -> Services:
    """The directory and each service's namespace from some ServiceOnCalls."""
    namespaces = {soc.spec.service.name: soc.metadata.namespace or "" for soc in socs}
    return Services(directory_of(socs), namespaces)


@dataclass
class LiveServices:
    """The services of the ServiceOnCall index (live), built again only when a spec changed.

    The directory comes from the specs alone, and a spec change moves the object's
    generation (a status write does not: who is on call, lastIncident, DORA figures), so
    the same objects at the same generations mean nothing changed: no directory built per
    post, nor after each status write of an alert storm.
    """

    store: Mapping[Any, Any]
    _seen: tuple[tuple[Any, ...], ...] = ()
    _built: Services | None = None

    def __call__(self) -> Services:
        socs = tuple(soc for _, found in snapshot(self.store) for soc in found)
        seen = tuple(
            (m.namespace, m.name, m.uid, m.generation) for m in (soc.metadata for soc in socs)
        )
        if self._built is None or seen != self._seen:
            self._built, self._seen = services_of(socs), seen
        return self._built


async def hold(runner: web.AppRunner, intake: Intake, certificate: ServingCertificate) -> None:
    """Keep the server, reloading its certificate on rotation, until the controller stops
    (cancels this task)."""
    try:
        await certificate.watch()
    finally:
        await runner.cleanup()
        intake.executor.shutdown(wait=False, cancel_futures=True)


async def start_intake(
    intake: Intake,
    address: str,
    port: int,
    certificate: ServingCertificate,
    routes: Sequence[Route] = (),
) -> asyncio.Task[None]:
    """Bind the HTTPS server (failing loudly at start-up) and return the task that holds it."""
    runner = web.AppRunner(intake_app(intake, routes), access_log=None, shutdown_timeout=10)
    await runner.setup()
    await web.TCPSite(runner, address, port, ssl_context=certificate.context).start()
    log.info("alert intake listening on https://%s:%d%s", address, port, PATH)
    return asyncio.create_task(hold(runner, intake, certificate))


async def serve(
    state: ControllerState,
    indexes: Indexes,
    routes: Sequence[Route] = (),
    opened: Callable[[Incident], None] | None = None,
) -> asyncio.Task[None] | None:
    """Start the intake, with the other receivers' routes, if the settings enable it; the
    task to cancel at cleanup. `opened` is told of each Incident opened (the pager's kick)."""
    settings = state.settings
    if not settings.intake_enabled:
        return None
    if settings.intake_cert_file is None or settings.intake_key_file is None:
        raise RuntimeError("the alert intake needs a serving certificate and key (HTTPS only)")
    config = IntakeConfig(
        routing=RoutingConfig(settings.intake_fallback_service, settings.intake_service_label),
        namespace=settings.namespace,
        token_secret=settings.intake_token_secret,
        token_key=settings.intake_token_key,
        max_body_bytes=settings.intake_max_body_bytes,
    )
    intake = Intake(
        state.kube, config, LiveServices(indexes.service_on_calls), state.clock,
        opened=opened,
    )  # fmt: skip
    certificate = ServingCertificate(settings.intake_cert_file, settings.intake_key_file)
    return await start_intake(
        intake, settings.intake_address, settings.intake_port, certificate, routes
    )
