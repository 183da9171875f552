"""Builders of Alertmanager posts and deliveries for the incident core's tests."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from changegate.core.incident.alerts import WebhookPayload
from changegate.core.incident.routing import (
    Delivery,
    RoutingConfig,
    ServiceDirectory,
    ServiceEntry,
    split_post,
)

T0 = dt.datetime(2025, 3, 30, 0, 0, tzinfo=dt.UTC)
GROUP = '{}/{severity="critical"}:{alertname="HighErrorRate"}'
ZERO_TIME = "0001-01-01T00:00:00Z"
DIRECTORY = ServiceDirectory(
    (
        ServiceEntry("payments", frozenset({"payments-prod"})),
        ServiceEntry("checkout", frozenset({"checkout-prod"})),
    )
)
CONFIG = RoutingConfig(fallback_service="platform")


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def alert(
    fingerprint: str = "a1",
    *,
    starts: float = 0,
    ends: float | None = None,
    name: str = "HighErrorRate",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One alert as Alertmanager posts it; resolved when `ends` is given."""
    return {
        "status": "firing" if ends is None else "resolved",
        "labels": {"alertname": name, "service": "payments", **(labels or {})},
        "annotations": annotations or {},
        "startsAt": at(starts).isoformat().replace("+00:00", "Z"),
        "endsAt": ZERO_TIME if ends is None else at(ends).isoformat().replace("+00:00", "Z"),
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def body(*alerts: dict[str, Any], group_key: str = GROUP, **extra: Any) -> dict[str, Any]:
    """A version 4 notification of some alerts."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "changegate",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
        **extra,
    }


def payload(*alerts: dict[str, Any], **extra: Any) -> WebhookPayload:
    return WebhookPayload.model_validate_json(json.dumps(body(*alerts, **extra)))


def delivery(*alerts: dict[str, Any], **extra: Any) -> Delivery:
    """The one delivery of a post whose alerts all route to one service."""
    (only,) = split_post(payload(*alerts, **extra), DIRECTORY, CONFIG)
    return only
