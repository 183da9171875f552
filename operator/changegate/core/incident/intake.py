"""Merge one delivery of alerts into the latest incident episode of its (service, group).

The intake handler finds the latest Incident of the service and Alertmanager
group (open or resolved), reads it with `episode_of`, calls `merge`, and
persists what it says before answering Alertmanager. The rules:

- each alert is an instance (fingerprint, startsAt); a later startsAt is a new
  instance, and for one instance resolved beats firing, whatever the arrival order;
- nothing older than what is known changes anything, so duplicates are no-ops
  and applying a post twice equals applying it once;
- an episode resolves (AutoResolved) when none of its alerts fires; a person's
  resolution holds until a new alert instance fires;
- a new firing instance after resolution opens a new episode (a new Incident),
  and alerts that started before the previous episode ended are ignored as replays.

An Incident tracks at most MAX_TRACKED_ALERTS alerts, firing ones first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

from changegate.api.v1alpha1.common import AuditEntry
from changegate.api.v1alpha1.incident import (
    AlertState,
    Incident,
    IncidentAlert,
    IncidentPhase,
    Severity,
)
from changegate.core.incident.alerts import (
    DEFAULT_SEVERITY,
    WebhookAlert,
    most_severe,
    severity_of,
)
from changegate.core.incident.routing import Delivery, Route

OPERATOR = "changegate"
MAX_TRACKED_ALERTS = 1000
_LISTED = 3  # alerts or reasons named in one timeline entry before "and N more"


class Outcome(StrEnum):
    """What a delivery did to the group's incidents."""

    OPENED = "Opened"
    """A new episode: create a new Incident."""
    UPDATED = "Updated"
    """The open Incident's alerts changed; it stays open."""
    AUTO_RESOLVED = "AutoResolved"
    """The open Incident's last firing alert resolved: resolve it."""
    UNCHANGED = "Unchanged"
    """Nothing new (a duplicate, a replay, or resolutions with no incident): write nothing."""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert instance as last heard of."""

    fingerprint: str
    name: str
    firing: bool
    start: dt.datetime
    end: dt.datetime | None
    severity: Severity

    def order(self) -> tuple[dt.datetime, bool]:
        """Later instances win; within one instance, resolved wins over firing."""
        return (self.start, not self.firing)


@dataclass(frozen=True, slots=True)
class Episode:
    """The alert state of one Incident of a (service, group)."""

    alerts: tuple[AlertRecord, ...]
    resolved: bool = False
    previous_end: dt.datetime | None = None

    def by_fingerprint(self) -> dict[str, AlertRecord]:
        return {a.fingerprint: a for a in self.alerts}

    @property
    def firing(self) -> bool:
        return any(a.firing for a in self.alerts)

    def end(self) -> dt.datetime | None:
        """When the episode ended by its alerts' own times: later alerts are news."""
        return max((a.end or a.start for a in self.alerts), default=self.previous_end)


@dataclass(frozen=True, slots=True)
class Merge:
    """What to persist: the outcome, the episode after it, and timeline entries to append."""

    outcome: Outcome
    episode: Episode | None
    timeline: tuple[AuditEntry, ...] = ()

    @property
    def severity(self) -> Severity | None:
        """The worst severity among firing alerts (for a new Incident's spec)."""
        alerts = self.episode.alerts if self.episode else ()
        return most_severe(a.severity for a in alerts if a.firing)


def record_of(alert: WebhookAlert) -> AlertRecord:
    """The record of a posted alert."""
    return AlertRecord(
        fingerprint=alert.fingerprint,
        name=alert.name[:256],
        firing=alert.firing,
        start=alert.starts_at,
        end=None if alert.firing else alert.ends_at or alert.starts_at,
        severity=severity_of(alert.labels),
    )


def _newest(records: Iterable[AlertRecord]) -> dict[str, AlertRecord]:
    """The newest record per fingerprint (a post may repeat one)."""
    newest: dict[str, AlertRecord] = {}
    for record in records:
        known = newest.get(record.fingerprint)
        if known is None or record.order() > known.order():
            newest[record.fingerprint] = record
    return newest


def _is_news(
    record: AlertRecord, known: Mapping[str, AlertRecord], horizon: dt.datetime | None
) -> bool:
    """Whether a record tells something the episode does not know yet."""
    old = known.get(record.fingerprint)
    if old is not None:
        return record.order() > old.order()
    return horizon is None or record.start >= horizon


def _canonical(records: Iterable[AlertRecord]) -> tuple[AlertRecord, ...]:
    """Firing first, oldest first, then by fingerprint; at most MAX_TRACKED_ALERTS."""
    ordered = sorted(records, key=lambda a: (not a.firing, a.start, a.fingerprint))
    return tuple(ordered[:MAX_TRACKED_ALERTS])


def _entry(now: dt.datetime, action: str, message: str) -> AuditEntry:
    return AuditEntry(time=now, actor=OPERATOR, action=action, message=message[:1024])


def _listed(items: list[str]) -> str:
    more = len(items) - _LISTED
    return ", ".join(items[:_LISTED]) + (f" and {more} more" if more > 0 else "")


def _describe(records: list[AlertRecord]) -> str:
    return _listed([f"{r.name or 'alert'} ({r.fingerprint})" for r in records])


def _notes(
    news: list[AlertRecord], routes: Mapping[str, Route], delivery: Delivery, now: dt.datetime
) -> tuple[AuditEntry, ...]:
    """Timeline entries for the news: what fired, what resolved, why it came here."""
    entries = []
    firing = [r for r in news if r.firing]
    resolved = [r for r in news if not r.firing]
    if firing:
        entries.append(_entry(now, "AlertsFiring", f"{len(firing)} firing: {_describe(firing)}"))
    if resolved:
        entries.append(
            _entry(now, "AlertsResolved", f"{len(resolved)} resolved: {_describe(resolved)}")
        )
    reasons = sorted({routes[r.fingerprint].reason for r in news if r.fingerprint in routes})
    if reasons:
        entries.append(_entry(now, "AlertsRouted", f"to {delivery.service}: {_listed(reasons)}"))
    if delivery.truncated_alerts:
        entries.append(
            _entry(
                now,
                "AlertsTruncated",
                f"Alertmanager left out {delivery.truncated_alerts} alerts (its max_alerts)",
            )
        )
    return tuple(entries)


def _dropped_note(
    kept: tuple[AlertRecord, ...], wanted: int, now: dt.datetime
) -> tuple[AuditEntry, ...]:
    dropped = wanted - len(kept)
    if dropped <= 0:
        return ()
    message = f"{dropped} alerts not tracked: an incident lists at most {MAX_TRACKED_ALERTS}"
    return (_entry(now, "AlertsNotTracked", message),)


def _open(
    latest: Episode | None, posted: dict[str, AlertRecord], delivery: Delivery, now: dt.datetime
) -> Merge:
    """A new episode when the post has a firing alert that is news; else nothing."""
    known = latest.by_fingerprint() if latest else {}
    horizon = latest.end() if latest else None
    news = [r for r in posted.values() if _is_news(r, known, horizon)]
    if not any(r.firing for r in news):
        return Merge(Outcome.UNCHANGED, latest)
    alerts = _canonical(news)
    episode = Episode(alerts=alerts, previous_end=horizon)
    routes = {a.fingerprint: r for a, r in zip(delivery.alerts, delivery.routes, strict=True)}
    notes = _notes(list(alerts), routes, delivery, now) + _dropped_note(alerts, len(news), now)
    opened = _entry(now, "Opened", f"alert group {delivery.group_key[:512]}")
    return Merge(Outcome.OPENED, episode, (opened, *notes))


def _update(
    latest: Episode, posted: dict[str, AlertRecord], delivery: Delivery, now: dt.datetime
) -> Merge:
    """The open episode with the post's news; resolved when nothing fires any more."""
    known = latest.by_fingerprint()
    news = [r for r in posted.values() if _is_news(r, known, latest.previous_end)]
    merged = {**known, **{r.fingerprint: r for r in news}}
    alerts = _canonical(merged.values())
    if alerts == latest.alerts:
        return Merge(Outcome.UNCHANGED, latest)
    still_firing = any(a.firing for a in alerts)
    episode = replace(latest, alerts=alerts, resolved=not still_firing)
    routes = {a.fingerprint: r for a, r in zip(delivery.alerts, delivery.routes, strict=True)}
    kept = {a.fingerprint for a in alerts}
    notes = _notes([r for r in news if r.fingerprint in kept], routes, delivery, now)
    notes += _dropped_note(alerts, len(merged), now)
    if still_firing:
        return Merge(Outcome.UPDATED, episode, notes)
    done = _entry(now, "AutoResolved", "every alert of the group has resolved")
    return Merge(Outcome.AUTO_RESOLVED, episode, (*notes, done))


def merge(latest: Episode | None, delivery: Delivery, now: dt.datetime) -> Merge:
    """What one delivery does to the latest episode of its (service, group), if any."""
    posted = _newest(record_of(alert) for alert in delivery.alerts)
    if latest is None or latest.resolved:
        return _open(latest, posted, delivery, now)
    return _update(latest, posted, delivery, now)


def record_from_status(alert: IncidentAlert) -> AlertRecord:
    """The record of an alert as an Incident's status keeps it."""
    return AlertRecord(
        fingerprint=alert.fingerprint,
        name=alert.name,
        firing=alert.state is AlertState.FIRING,
        start=alert.start_time,
        end=alert.end_time,
        severity=alert.severity or DEFAULT_SEVERITY,
    )


def episode_of(incident: Incident) -> Episode:
    """The episode an Incident holds; resolved by its alerts or by a person."""
    status = incident.status
    resolved = incident.spec.resolution is not None or status.phase is IncidentPhase.RESOLVED
    return Episode(
        alerts=tuple(record_from_status(a) for a in status.alerts),
        resolved=resolved,
        previous_end=status.previous_episode_end_time,
    )


def status_alerts(episode: Episode) -> list[IncidentAlert]:
    """The episode's alerts as an Incident's status lists them."""
    return [
        IncidentAlert(
            fingerprint=a.fingerprint,
            name=a.name,
            state=AlertState.FIRING if a.firing else AlertState.RESOLVED,
            severity=a.severity,
            start_time=a.start,
            end_time=a.end,
        )
        for a in episode.alerts
    ]
