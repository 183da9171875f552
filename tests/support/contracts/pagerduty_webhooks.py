"""PagerDuty's outbound webhooks (v3), as PagerDuty would send them to changegate.

`incident_event` builds the JSON envelope of one incident event; `WebhookSender`
signs it with the subscription's secret(s) (`X-PagerDuty-Signature: v1=<hex>`,
several during rotation) and POSTs it, optionally misbehaving the way real
deliveries do: duplicated, out of order, unsigned, wrongly signed or stale.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import random
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

INCIDENT_EVENT_TYPES = (
    "incident.triggered",
    "incident.acknowledged",
    "incident.unacknowledged",
    "incident.resolved",
    "incident.reopened",
    "incident.reassigned",
    "incident.annotated",
    "incident.priority_updated",
    "incident.escalated",
    "incident.delegated",
)
STATUS_FOR = {
    "incident.acknowledged": "acknowledged",
    "incident.resolved": "resolved",
    "incident.triggered": "triggered",
}
API = "https://api.pagerduty.com"


def sign(body: bytes, secrets: Iterable[str]) -> str:
    """The X-PagerDuty-Signature value: `v1=<hex HMAC-SHA256>` per secret, comma-separated."""
    return ",".join(
        "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest() for secret in secrets
    )


def _reference(kind: str, ident: str, summary: str) -> dict[str, Any]:
    return {
        "id": ident,
        "type": f"{kind}_reference",
        "summary": summary,
        "self": f"{API}/{kind}s/{ident}",
        "html_url": f"https://example.pagerduty.com/{kind}s/{ident}",
    }


def incident_event(
    event_type: str,
    *,
    incident_id: str,
    incident_key: str,
    status: str | None = None,
    title: str = "changegate incident",
    agent_name: str = "Alice Responder",
    agent_id: str = "PUSER01",
    occurred_at: datetime.datetime | None = None,
    assignees: Sequence[str] = (),
    priority: str | None = None,
    escalation_level: int | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """One v3 webhook envelope `{"event": {...}}` for an incident.

    `incident.annotated` carries the note (`data.type` incident_note, with the
    incident as a reference); every other type carries the incident itself.
    """
    if event_type not in INCIDENT_EVENT_TYPES:
        raise ValueError(f"not a PagerDuty incident event type: {event_type}")
    incident = _reference("incident", incident_id, title)
    incident.update(
        {
            "type": "incident",
            "number": int("".join(ch for ch in incident_id if ch.isdigit()) or 1),
            "status": status or STATUS_FOR.get(event_type, "acknowledged"),
            "incident_key": incident_key,
            "title": title,
            "urgency": "high",
            "assignees": [
                _reference("user", f"PUSER{i:02d}", name) for i, name in enumerate(assignees, 2)
            ],
            "priority": _reference("priority", f"PPRI{priority}", priority) if priority else None,
        }
    )
    if escalation_level is not None:
        incident["escalation_level"] = escalation_level
    data: dict[str, Any] = incident
    if event_type == "incident.annotated":
        data = {
            "id": "PNOTE" + uuid.uuid4().hex[:6].upper(),
            "type": "incident_note",
            "content": note or "",
            "trashed": False,
            "incident": _reference("incident", incident_id, title),
        }
    moment = occurred_at or datetime.datetime.now(datetime.UTC)
    return {
        "event": {
            "id": uuid.uuid4().hex[:26].upper(),
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": moment.astimezone(datetime.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "agent": _reference("user", agent_id, agent_name),
            "client": None,
            "data": data,
        }
    }


def stale(
    event: dict[str, Any], age: datetime.timedelta = datetime.timedelta(hours=1)
) -> dict[str, Any]:
    """A copy of `event` that happened `age` ago: what a delayed redelivery looks like."""
    moment = datetime.datetime.now(datetime.UTC) - age
    copy: dict[str, Any] = json.loads(json.dumps(event))
    copy["event"]["occurred_at"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return copy


class WebhookSender:
    """Delivers v3 webhooks to one URL, signed with the subscription's secrets."""

    def __init__(
        self,
        url: str,
        secrets: Sequence[str],
        *,
        verify: Any = True,
        subscription_id: str = "PSUB001",
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.secrets = list(secrets)
        self.subscription_id = subscription_id
        self._client = httpx.Client(verify=verify, timeout=timeout)
        self.responses: list[httpx.Response] = []

    def close(self) -> None:
        self._client.close()

    def send(
        self,
        event: dict[str, Any],
        *,
        signature: str = "valid",
        copies: int = 1,
    ) -> list[httpx.Response]:
        """POST `event` `copies` times; `signature` is valid, none, wrong or a literal header value."""
        body = json.dumps(event, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "PagerDuty-Webhook/V3.0",
            "X-Webhook-Id": event["event"]["id"],
            "X-Webhook-Subscription": self.subscription_id,
        }
        value = self._signature(body, signature)
        if value is not None:
            headers["X-PagerDuty-Signature"] = value
        answers = [
            self._client.post(self.url, content=body, headers=headers) for _ in range(copies)
        ]
        self.responses.extend(answers)
        return answers

    def send_all(
        self, events: Sequence[dict[str, Any]], *, order: str = "in_order", seed: int = 0
    ) -> list[httpx.Response]:
        """Deliver several events: in_order, reversed or shuffled (delivery is unordered)."""
        chosen = list(events)
        if order == "reversed":
            chosen.reverse()
        elif order == "shuffled":
            random.Random(seed).shuffle(chosen)
        elif order != "in_order":
            raise ValueError(f"unknown order: {order}")
        return [answer for event in chosen for answer in self.send(event)]

    def _signature(self, body: bytes, signature: str) -> str | None:
        if signature == "valid":
            return sign(body, self.secrets)
        if signature == "none":
            return None
        if signature == "wrong":
            return sign(body, ["not-the-subscription-secret"])
        return signature
