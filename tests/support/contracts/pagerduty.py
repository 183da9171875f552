"""PagerDuty Events API v2 as a local contract server: /v2/enqueue and /v2/change/enqueue.

Integration tests point changegate's PagerDuty adapter at `PagerDutyServer.url`.
Every request is checked against PagerDuty's published description (see
`validate_event`, `validate_change_event`); accepted alert events drive one
incident per (routing_key, dedup_key) so a test can assert what PagerDuty would
show. Acting on an incident "in PagerDuty" sends a signed v3 webhook back.
"""

from __future__ import annotations

import datetime
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from tests.support.contracts.pagerduty_webhooks import WebhookSender, incident_event
from tests.support.contracts.server import ContractServer

ROUTING_KEY_LENGTH = 32
DEDUP_KEY_MAX = 255
SUMMARY_MAX = 1024
EVENT_ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
EVENT_FIELDS = frozenset(
    {
        "routing_key",
        "event_action",
        "dedup_key",
        "payload",
        "client",
        "client_url",
        "links",
        "images",
    }
)
PAYLOAD_FIELDS = frozenset(
    {"summary", "timestamp", "severity", "source", "component", "group", "class", "custom_details"}
)
CHANGE_FIELDS = frozenset({"routing_key", "payload", "links", "images"})
CHANGE_PAYLOAD_FIELDS = frozenset({"summary", "timestamp", "source", "custom_details"})
# RFC 3339 date-time, also taking the +hhmm offset of PagerDuty's own examples.
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})$")
RATE_WINDOW = datetime.timedelta(minutes=1)

Clock = Callable[[], datetime.datetime]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# ---- Validation: one small rule per documented constraint ----------------------------


def validate_event(body: object, *, strict: bool = True) -> list[str]:
    """Errors in an alert event (`/v2/enqueue`); empty when PagerDuty would accept it."""
    if not isinstance(body, dict):
        return ["Event object must be a JSON object"]
    errors = _unknown_fields(body, EVENT_FIELDS, "", strict)
    errors += _routing_key(body)
    action = body.get("event_action")
    if action not in EVENT_ACTIONS:
        errors.append(f"'event_action' must be one of {', '.join(EVENT_ACTIONS)}")
    errors += _dedup_key(body, required=action in ("acknowledge", "resolve"))
    if action == "trigger" and "payload" not in body:
        errors.append("'payload' is missing or blank")
    if "payload" in body:
        errors += _payload(body["payload"], strict)
    errors += _optional_string(body, "client", "")
    if "client_url" in body and not _is_url(body["client_url"]):
        errors.append("'client_url' must be a URL")
    return errors + _links(body) + _images(body)


def validate_change_event(body: object, *, strict: bool = True) -> list[str]:
    """Errors in a change event (`/v2/change/enqueue`); empty when PagerDuty would accept it."""
    if not isinstance(body, dict):
        return ["Change event object must be a JSON object"]
    errors = _unknown_fields(body, CHANGE_FIELDS, "", strict)
    errors += _routing_key(body)
    payload = body.get("payload")
    if not isinstance(payload, dict):
        errors.append("'payload' is missing or not an object")
    else:
        errors += _unknown_fields(payload, CHANGE_PAYLOAD_FIELDS, "payload.", strict)
        errors += _summary(payload)
        errors += _optional_string(payload, "source", "payload.")
        errors += _timestamp(payload)
        errors += _custom_details(payload)
    return errors + _links(body) + _images(body)


def _unknown_fields(
    body: Mapping[str, object], known: frozenset[str], prefix: str, strict: bool
) -> list[str]:
    if not strict:
        return []
    return [f"'{prefix}{name}' is not a field of this object" for name in sorted(set(body) - known)]


def _routing_key(body: Mapping[str, object]) -> list[str]:
    key = body.get("routing_key")
    if not isinstance(key, str) or not key:
        return ["'routing_key' is missing or blank"]
    if len(key) != ROUTING_KEY_LENGTH:
        return [f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)"]
    return []


def _dedup_key(body: Mapping[str, object], *, required: bool) -> list[str]:
    if "dedup_key" not in body:
        return ["'dedup_key' is required for acknowledge and resolve events"] if required else []
    key = body["dedup_key"]
    if not isinstance(key, str) or (required and not key):
        return ["'dedup_key' must be a non-empty string"]
    if len(key) > DEDUP_KEY_MAX:
        return [f"'dedup_key' is too long (maximum is {DEDUP_KEY_MAX} characters)"]
    return []


def _payload(payload: object, strict: bool) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' must be an object"]
    errors = _unknown_fields(payload, PAYLOAD_FIELDS, "payload.", strict)
    errors += _summary(payload)
    source = payload.get("source")
    if not isinstance(source, str) or not source:
        errors.append("'payload.source' is missing or blank")
    if payload.get("severity") not in SEVERITIES:
        errors.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
    for name in ("component", "group", "class"):
        errors += _optional_string(payload, name, "payload.")
    return errors + _timestamp(payload) + _custom_details(payload)


def _summary(payload: Mapping[str, object]) -> list[str]:
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        return ["'payload.summary' is missing or blank"]
    if len(summary) > SUMMARY_MAX:
        return [f"'payload.summary' is too long (maximum is {SUMMARY_MAX} characters)"]
    return []


def _timestamp(payload: Mapping[str, object]) -> list[str]:
    if "timestamp" not in payload:
        return []
    stamp = payload["timestamp"]
    if not isinstance(stamp, str) or not TIMESTAMP.match(stamp):
        return ["'payload.timestamp' must be an ISO 8601 date-time with an offset"]
    try:
        datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return ["'payload.timestamp' is not a valid date-time"]
    return []


def _custom_details(payload: Mapping[str, object]) -> list[str]:
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        return ["'payload.custom_details' must be an object"]
    return []


def _optional_string(body: Mapping[str, object], name: str, prefix: str) -> list[str]:
    if name in body and not isinstance(body[name], str):
        return [f"'{prefix}{name}' must be a string"]
    return []


def _links(body: Mapping[str, object]) -> list[str]:
    return _list_of_objects(body, "links", required="href", strings=("href", "text"), https=False)


def _images(body: Mapping[str, object]) -> list[str]:
    return _list_of_objects(
        body, "images", required="src", strings=("src", "href", "alt"), https=True
    )


def _list_of_objects(
    body: Mapping[str, object], name: str, *, required: str, strings: tuple[str, ...], https: bool
) -> list[str]:
    if name not in body:
        return []
    items = body[name]
    if not isinstance(items, list):
        return [f"'{name}' must be an array"]
    errors: list[str] = []
    for index, item in enumerate(items):
        where = f"'{name}[{index}]"
        if not isinstance(item, dict):
            errors.append(f"{where}' must be an object")
            continue
        if required not in item:
            errors.append(f"{where}.{required}' is required")
        errors += [
            f"{where}.{key}' is not a field of this object"
            for key in sorted(set(item) - set(strings))
        ]
        errors += [
            f"{where}.{key}' must be a string"
            for key in strings
            if key in item and not isinstance(item[key], str)
        ]
        errors += [
            f"{where}.{key}' must be a URL"
            for key in ("href", "src")
            if isinstance(item.get(key), str) and not _is_url(item[key])
        ]
        if https and isinstance(item.get("src"), str) and not item["src"].startswith("https://"):
            errors.append(f"{where}.src' must be served via HTTPS")
    return errors


def _is_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlparse(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# ---- What PagerDuty would show ----------------------------------------------------------


@dataclass
class PagerDutyIncident:
    """One incident, as PagerDuty keeps it for a (routing_key, dedup_key) while it is open."""

    id: str
    number: int
    routing_key: str
    dedup_key: str
    summary: str
    severity: str
    status: str = "triggered"
    triggers: int = 1
    actions: list[str] = field(default_factory=lambda: ["trigger"])
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.status != "resolved"

    @property
    def statuses(self) -> list[str]:
        """The statuses it went through, in order, repeats folded: e.g. triggered, acknowledged, resolved."""
        seen: list[str] = []
        for action in self.actions:
            status = {"trigger": "triggered", "acknowledge": "acknowledged", "resolve": "resolved"}[
                action
            ]
            if not seen or seen[-1] != status:
                seen.append(status)
        return seen


class PagerDutyServer(ContractServer):
    """The Events API v2 contract: validation, dedup, incidents, and signed webhooks back."""

    name = "pagerduty"

    def __init__(
        self,
        *,
        tls: bool = False,
        workdir: Path | None = None,
        strict: bool = True,
        events_per_minute: int | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        super().__init__(tls=tls, workdir=workdir)
        self.strict = strict
        self.events_per_minute = events_per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._change_events: list[dict[str, Any]] = []
        self._rejected: list[tuple[str, object, list[str]]] = []
        self._ignored: list[dict[str, Any]] = []
        self._incidents: list[PagerDutyIncident] = []
        self._recent: dict[str, deque[datetime.datetime]] = {}
        self.webhooks: WebhookSender | None = None

    def stop(self) -> None:
        if self.webhooks is not None:
            self.webhooks.close()
        super().stop()

    def error_body(self, status: int, message: str) -> Mapping[str, Any]:
        if status == 429:
            return {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly. Please retry later.",
            }
        return {"status": "Internal Server Error", "message": message}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/enqueue", self._enqueue)
        app.router.add_post("/v2/change/enqueue", self._change_enqueue)

    # ---- What a test reads ----

    @property
    def events(self) -> list[dict[str, Any]]:
        """Accepted alert events, in order of arrival."""
        with self._lock:
            return list(self._events)

    @property
    def change_events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._change_events)

    @property
    def rejected(self) -> list[tuple[str, object, list[str]]]:
        """(path, body, errors) of every request answered 400."""
        with self._lock:
            return list(self._rejected)

    @property
    def ignored(self) -> list[dict[str, Any]]:
        """Accepted acknowledge/resolve events that matched no open incident."""
        with self._lock:
            return list(self._ignored)

    def incidents(
        self, routing_key: str | None = None, dedup_key: str | None = None
    ) -> list[PagerDutyIncident]:
        with self._lock:
            return [
                incident
                for incident in self._incidents
                if (routing_key is None or incident.routing_key == routing_key)
                and (dedup_key is None or incident.dedup_key == dedup_key)
            ]

    def incident(self, routing_key: str, dedup_key: str) -> PagerDutyIncident | None:
        """The latest incident for this key, or None."""
        found = self.incidents(routing_key, dedup_key)
        return found[-1] if found else None

    # ---- What a person does in PagerDuty ----

    def subscribe(self, url: str, secrets: Iterable[str], *, verify: Any = True) -> WebhookSender:
        """Send v3 webhooks for incident changes made with `act` to `url`, signed with `secrets`."""
        self.webhooks = WebhookSender(url, list(secrets), verify=verify)
        return self.webhooks

    def act(
        self,
        routing_key: str,
        dedup_key: str,
        event_type: str,
        *,
        agent: str = "Alice Responder",
        **details: Any,
    ) -> dict[str, Any]:
        """Change the incident as a responder would and send the v3 webhook; returns the event sent."""
        incident = self.incident(routing_key, dedup_key)
        if incident is None:
            raise LookupError(f"no PagerDuty incident for {dedup_key!r}")
        status = {"incident.acknowledged": "acknowledged", "incident.resolved": "resolved"}.get(
            event_type
        )
        with self._lock:
            if status is not None:
                incident.status = status
                incident.actions.append(
                    {"acknowledged": "acknowledge", "resolved": "resolve"}[status]
                )
        event = incident_event(
            event_type,
            incident_id=incident.id,
            incident_key=incident.dedup_key,
            status=incident.status,
            title=incident.summary,
            agent_name=agent,
            occurred_at=self.clock(),
            **details,
        )
        if self.webhooks is not None:
            self.webhooks.send(event)
        return event

    # ---- Handlers ----

    async def _enqueue(self, request: web.Request) -> web.Response:
        return await self._accept(request, validate_event, self._apply_event)

    async def _change_enqueue(self, request: web.Request) -> web.Response:
        return await self._accept(request, validate_change_event, self._apply_change_event)

    async def _accept(
        self,
        request: web.Request,
        validate: Callable[..., list[str]],
        apply: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self._refuse(request.path, None, ["JSON parse error"], unrecognized=True)
        if request.content_type != "application/json":
            return self._refuse(request.path, body, ["Content-Type must be application/json"])
        errors = validate(body, strict=self.strict)
        if errors:
            return self._refuse(request.path, body, errors)
        if self._throttled(body["routing_key"]):
            return web.json_response(self.error_body(429, ""), status=429)
        return web.json_response(apply(body), status=202)

    def _refuse(
        self, path: str, body: object, errors: list[str], *, unrecognized: bool = False
    ) -> web.Response:
        with self._lock:
            self._rejected.append((path, body, errors))
        if unrecognized:
            answer = {
                "status": "Unrecognized object",
                "message": "Event object format is unrecognized",
                "errors": errors,
            }
        else:
            answer = {
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": errors,
            }
        return web.json_response(answer, status=400)

    def _throttled(self, routing_key: str) -> bool:
        if self.events_per_minute is None:
            return False
        now = self.clock()
        with self._lock:
            recent = self._recent.setdefault(routing_key, deque())
            while recent and now - recent[0] >= RATE_WINDOW:
                recent.popleft()
            if len(recent) >= self.events_per_minute:
                return True
            recent.append(now)
            return False

    def _apply_event(self, body: dict[str, Any]) -> dict[str, Any]:
        action = body["event_action"]
        dedup_key = body.get("dedup_key") or uuid.uuid4().hex
        with self._lock:
            self._events.append(body)
            if action == "trigger":
                self._trigger(body, dedup_key)
            else:
                self._follow_up(body, dedup_key, action)
        return {"status": "success", "message": "Event processed", "dedup_key": dedup_key}

    def _trigger(self, body: dict[str, Any], dedup_key: str) -> None:
        current = self._open_incident(body["routing_key"], dedup_key)
        if current is not None:
            # An open alert with this key absorbs the trigger: no second incident, no second page.
            current.triggers += 1
            current.actions.append("trigger")
            current.events.append(body)
            return
        number = len(self._incidents) + 1
        self._incidents.append(
            PagerDutyIncident(
                id=f"Q{number:06d}",
                number=number,
                routing_key=body["routing_key"],
                dedup_key=dedup_key,
                summary=body["payload"]["summary"],
                severity=body["payload"]["severity"],
                events=[body],
            )
        )

    def _follow_up(self, body: dict[str, Any], dedup_key: str, action: str) -> None:
        current = self._open_incident(body["routing_key"], dedup_key)
        if current is None:
            self._ignored.append(body)
            return
        current.actions.append(action)
        current.events.append(body)
        if action == "resolve":
            current.status = "resolved"
        elif current.status == "triggered":
            current.status = "acknowledged"

    def _open_incident(self, routing_key: str, dedup_key: str) -> PagerDutyIncident | None:
        for incident in reversed(self._incidents):
            if (
                incident.routing_key == routing_key
                and incident.dedup_key == dedup_key
                and incident.open
            ):
                return incident
        return None

    def _apply_change_event(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._change_events.append(body)
        return {"status": "success", "message": "Change event processed"}
