"""PagerDuty webhooks (v3) as they arrive: is a delivery genuine and fresh, and what does it say.

The controller's inbound route (handlers/controller/pagerduty_inbound.py) hands the
raw body, its `X-PagerDuty-Signature` header, the subscription secrets and the time
to these functions before anything else reads the body; core/incident/pagerduty_acts.py
then turns a parsed event into an act on the Incident. Pure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# Deliveries older than this are refused: PagerDuty delivers within seconds and retries
# briefly; a replay of a captured request after the window gets nowhere.
MAX_AGE = timedelta(minutes=15)
# Clocks differ a little; an event from further in the future than this is refused too.
MAX_SKEW = timedelta(minutes=5)
SIGNATURE_VERSION = "v1="


class EventRefused(Exception):
    """A delivery that is not a well-formed, fresh v3 incident event; the text says why."""


def signature_valid(body: bytes, header: str, secrets: tuple[str, ...]) -> bool:
    """Whether one of the header's `v1=<hex>` signatures (several during a secret's rotation)
    is HMAC-SHA256 of the raw body under one of the secrets, compared in constant time."""
    given = [
        part.strip()[len(SIGNATURE_VERSION) :].encode()
        for part in header.split(",")
        if part.strip().startswith(SIGNATURE_VERSION)
    ]
    expected = [
        hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
        for secret in secrets
        if secret
    ]
    # Every pair is compared, whatever matches first, so timing says nothing of which.
    matches = [hmac.compare_digest(g, e) for g in given for e in expected]
    return any(matches)


@dataclass(frozen=True, slots=True)
class PagerDutyUser:
    """A PagerDuty user reference: its ID and its name (`summary`)."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class PagerDutyEvent:
    """One v3 incident event, read once at the boundary."""

    id: str
    type: str  # incident.acknowledged, incident.annotated, ...
    occurred_at: datetime
    agent: PagerDutyUser | None  # who did it; None for PagerDuty itself or an integration
    incident_id: str  # PagerDuty's incident ID
    incident_key: str | None  # our dedup_key (the Incident's UID); absent on notes
    status: str | None = None
    assignees: tuple[PagerDutyUser, ...] = ()
    priority: str | None = None
    escalation_level: int | None = None
    note: str | None = None


def parse_event(body: bytes) -> PagerDutyEvent:
    """The event of a v3 envelope `{"event": {...}}`; EventRefused when it is not one."""
    try:
        event = json.loads(body)["event"]
        data = event["data"]
        kind = str(event["event_type"])
        occurred = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError) as error:
        raise EventRefused(f"not a PagerDuty v3 webhook event: {error!s:.200}") from error
    if occurred.tzinfo is None or not isinstance(data, dict):
        raise EventRefused("not a PagerDuty v3 webhook event: occurred_at or data malformed")
    if kind == "incident.annotated":
        incident, note = _reference(data.get("incident")), str(data.get("content") or "")
    else:
        incident, note = data, None
    return PagerDutyEvent(
        id=str(event.get("id") or ""),
        type=kind,
        occurred_at=occurred,
        agent=_user(event.get("agent")),
        incident_id=str(incident.get("id") or ""),
        incident_key=_text(incident.get("incident_key")),
        status=_text(incident.get("status")),
        assignees=tuple(u for u in map(_user, incident.get("assignees") or ()) if u),
        priority=_text(_reference(incident.get("priority")).get("summary")),
        escalation_level=_level(incident.get("escalation_level")),
        note=note,
    )


def refuse_stale(event: PagerDutyEvent, now: datetime) -> None:
    """EventRefused when the event happened before MAX_AGE ago or after now + MAX_SKEW."""
    if event.occurred_at < now - MAX_AGE:
        raise EventRefused(
            f"stale event: occurred at {event.occurred_at.isoformat()}, more than"
            f" {int(MAX_AGE.total_seconds())} s ago"
        )
    if event.occurred_at > now + MAX_SKEW:
        raise EventRefused(f"event from the future: occurred at {event.occurred_at.isoformat()}")


def _reference(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and str(value) else None


def _user(value: Any) -> PagerDutyUser | None:
    reference = _reference(value)
    if reference.get("type") not in ("user_reference", "user"):
        return None
    return PagerDutyUser(str(reference.get("id") or ""), str(reference.get("summary") or ""))


def _level(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
