"""What the core needs from the outside world, as Protocols: the ports adapters fill.

The core is pure: it takes values and returns decisions, so today its one port
is the clock, which handlers read once per event and pass in as `now`. Ports
for external systems (ticketing, paging, chat) join here as they land.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """The current time, timezone-aware; tests pass a fixed one."""

    def __call__(self) -> dt.datetime: ...


# Notifications: the port every paging channel fills (Kubernetes Events, a
# generic webhook, Slack; PagerDuty and ServiceNow plug in the same way). A
# Page is what to say, built by core.incident.notification; a PageOutcome is
# what happened, recorded in the Incident's status.pages.

from collections.abc import Mapping  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from enum import StrEnum  # noqa: E402

from changegate.api.v1alpha1.incident import PageChannel, PageResult, Severity  # noqa: E402


class PageAction(StrEnum):
    """What a page tells the far side about the incident (PagerDuty's event_action)."""

    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class PageLink:
    """A dashboard or runbook travelling with a page."""

    name: str
    url: str


@dataclass(frozen=True, slots=True)
class Page:
    """One page about one incident for one target, as every channel renders it.

    `idempotency_key` is derived from the incident's uid, the action, the
    escalation step and the target, so a retry or a restarted controller sends
    the same key and the far side can drop the repeat.
    """

    incident_uid: str
    incident_name: str
    namespace: str
    service: str
    severity: Severity
    summary: str
    action: PageAction
    user: str | None
    on_call: str | None
    escalation_step: int
    major: bool
    dashboards: tuple[PageLink, ...]
    runbooks: tuple[PageLink, ...]
    acknowledge_command: str
    idempotency_key: str
    time: dt.datetime


class SecretValue:
    """Values read from a Kubernetes Secret, by the names a channel documents.

    Never printed: repr and str hide the values, so neither a log line nor an
    exception message can carry them by accident.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def get(self, name: str) -> str | None:
        """The value under `name`, or None when the Secret had none."""
        return self._values.get(name)

    def values(self) -> tuple[str, ...]:
        """Every value, so an adapter can scrub them out of text it did not write."""
        return tuple(v for v in self._values.values() if v)

    def __repr__(self) -> str:
        return f"SecretValue(names={sorted(self._values)}, values=<hidden>)"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class PageOutcome:
    """What one channel did with one page; never holds a secret."""

    channel: PageChannel
    user: str | None
    result: PageResult
    attempts: int
    time: dt.datetime
    error: str | None = field(default=None)


class Notifier(Protocol):
    """A paging channel. `send` never raises: a failure is an outcome, not an exception."""

    @property
    def channel(self) -> PageChannel: ...

    async def send(self, page: Page, secret: SecretValue | None) -> PageOutcome: ...
