"""Alertmanager's webhook payload (version "4"), parsed once at the intake's boundary.

The intake handler hands the raw body to `parse_payload`; everything after it
(routing, merging) reads these models. Bounds are refusals, not truncation: a
post over the bounds gets a 4xx naming the bound, and Alertmanager's
`webhook_config.max_alerts` is the way to stay under it (it truncates there and
says so in `truncatedAlerts`, which the intake records).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from changegate.api.v1alpha1.incident import Severity
from changegate.api.v1alpha1.serviceoncall import Link

PAYLOAD_VERSION = "4"
MAX_ALERTS = 10_000
MAX_LABELS = 64
MAX_LABEL_NAME = 256
MAX_LABEL_VALUE = 4096
MAX_ANNOTATION_VALUE = 16_384
MAX_GROUP_KEY = 4096
# Bodies of MAX_ALERTS alerts with ordinary labels stay well under this; the handler refuses more.
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_LINKS = 16

LabelName = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_NAME)]
LabelValue = Annotated[str, Field(max_length=MAX_LABEL_VALUE)]
AnnotationValue = Annotated[str, Field(max_length=MAX_ANNOTATION_VALUE)]
LabelSet = Annotated[dict[LabelName, LabelValue], Field(max_length=MAX_LABELS)]
AnnotationSet = Annotated[dict[LabelName, AnnotationValue], Field(max_length=MAX_LABELS)]

_URL = re.compile(r"^https?://[^\s]+$")
# Prometheus' and common Alertmanager spellings, lowercased; anything else counts as unknown.
_SEVERITIES: Mapping[str, Severity] = {
    "critical": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "error": Severity.HIGH,
    "high": Severity.HIGH,
    "major": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "warn": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "minor": Severity.MEDIUM,
    "info": Severity.LOW,
    "low": Severity.LOW,
    "none": Severity.LOW,
}
# An alert that reached a paging receiver without a usable severity is taken seriously.
DEFAULT_SEVERITY = Severity.HIGH
_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}


class PayloadError(ValueError):
    """A post the intake will never accept; its message is the 4xx answer's body."""


class AlertStatus(StrEnum):
    """An alert's own status in a notification (the group's status says less)."""

    FIRING = "firing"
    RESOLVED = "resolved"


class _Model(BaseModel):
    # Alertmanager may add fields in later releases of version 4: ignore them.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class WebhookAlert(_Model):
    """One alert of a notification."""

    status: AlertStatus
    labels: LabelSet
    annotations: AnnotationSet = Field(default_factory=dict)
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    generator_url: str = Field(default="", max_length=4096, alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")
    # Grafana's Alertmanager-compatible webhook adds these to each alert.
    dashboard_url: str = Field(default="", max_length=4096, alias="dashboardURL")
    panel_url: str = Field(default="", max_length=4096, alias="panelURL")

    @field_validator("ends_at")
    @classmethod
    def _zero_is_none(cls, value: dt.datetime | None) -> dt.datetime | None:
        """Alertmanager writes Go's zero time (year 1) for "not ended"."""
        return None if value is not None and value.year <= 1 else value

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def firing(self) -> bool:
        return self.status is AlertStatus.FIRING


class WebhookPayload(_Model):
    """A notification of one Alertmanager group, as `webhook_config` posts it."""

    version: str
    group_key: str = Field(min_length=1, max_length=MAX_GROUP_KEY)
    truncated_alerts: int = Field(default=0, ge=0)
    status: AlertStatus
    receiver: str = Field(default="", max_length=1024)
    group_labels: LabelSet = Field(default_factory=dict)
    common_labels: LabelSet = Field(default_factory=dict)
    common_annotations: AnnotationSet = Field(default_factory=dict)
    external_url: str = Field(default="", max_length=4096, alias="externalURL")
    alerts: list[WebhookAlert] = Field(min_length=1, max_length=MAX_ALERTS)

    @model_validator(mode="before")
    @classmethod
    def _version_first(cls, data: Any) -> Any:
        """Check the version before the shape, so another version gets one clear message."""
        if isinstance(data, dict) and data.get("version") != PAYLOAD_VERSION:
            raise ValueError(
                f'payload version must be "{PAYLOAD_VERSION}" (Alertmanager webhook_config),'
                f" got {data.get('version')!r}"
            )
        return data


def _describe(error: ValidationError) -> str:
    """The first few problems, with where they are, short enough for an HTTP answer."""
    problems = []
    for item in error.errors()[:5]:
        where = ".".join(str(part) for part in item["loc"]) or "body"
        problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    more = error.error_count() - len(problems)
    suffix = f" (and {more} more)" if more > 0 else ""
    return "; ".join(problems) + suffix


def parse_payload(body: bytes | str) -> WebhookPayload:
    """The payload of a webhook post, or PayloadError saying what is wrong with it."""
    try:
        return WebhookPayload.model_validate_json(body)
    except ValidationError as error:
        raise PayloadError(f"not an Alertmanager payload: {_describe(error)}") from None


def severity_of(labels: Mapping[str, str]) -> Severity:
    """The severity an alert's `severity` label names, or DEFAULT_SEVERITY."""
    return _SEVERITIES.get(labels.get("severity", "").strip().lower(), DEFAULT_SEVERITY)


def most_severe(severities: Iterable[Severity]) -> Severity | None:
    """The worst of some severities, or None for none."""
    return min(severities, key=_RANK.__getitem__, default=None)


def _link(name: str, url: str) -> Link | None:
    """A link, or None for an address the Incident's schema would refuse."""
    url = url.strip()
    if not _URL.match(url) or len(url) > 2048:
        return None
    return Link(name=name[:256] or url[:256], url=url)


def _unique(links: Iterable[Link | None]) -> tuple[Link, ...]:
    """Links without gaps or repeated addresses, first wins, at most MAX_LINKS."""
    seen: dict[str, Link] = {}
    for link in links:
        if link is not None and link.url not in seen:
            seen[link.url] = link
    return tuple(seen.values())[:MAX_LINKS]


def _alert_dashboards(alert: WebhookAlert) -> Iterable[Link | None]:
    label = alert.name or "alert"
    yield _link(f"{label} dashboard", alert.annotations.get("dashboardURL", alert.dashboard_url))
    yield _link(f"{label} panel", alert.annotations.get("panelURL", alert.panel_url))


def dashboards_of(alerts: Iterable[WebhookAlert], service: Iterable[Link] = ()) -> tuple[Link, ...]:
    """Dashboards from the alerts' annotations (Grafana's dashboardURL, panelURL), then the service's."""
    from_alerts = (link for alert in alerts for link in _alert_dashboards(alert))
    return _unique([*from_alerts, *service])


def runbooks_of(alerts: Iterable[WebhookAlert], service: Iterable[Link] = ()) -> tuple[Link, ...]:
    """Runbooks from the alerts' `runbook_url` annotations, then the service's."""
    from_alerts = (
        _link(f"{alert.name or 'alert'} runbook", alert.annotations.get("runbook_url", ""))
        for alert in alerts
    )
    return _unique([*from_alerts, *service])


def summary_of(alerts: Iterable[WebhookAlert], service: str) -> str:
    """One line for the Incident: the first alert's summary annotation, else its name."""
    first = next(iter(alerts), None)
    if first is None:
        return f"alert on {service}"
    text = first.annotations.get("summary") or f"{first.name or 'alert'} firing on {service}"
    return " ".join(text.split())[:1024] or f"alert on {service}"
