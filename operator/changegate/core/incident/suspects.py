"""Suspect changes: the service's rollouts that finished shortly before its alert started.

The controller gathers the service's DeploymentRecords as facts, calls
`suspect_changes` with the incident's alert start, and lists the result in
the Incident's status; a person may then confirm one as the cause.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from changegate.api.v1alpha1.deploymentrecord import DeploymentRecord
from changegate.api.v1alpha1.incident import SuspectChange
from changegate.core.common import seconds_between

SUSPECT_WINDOW = dt.timedelta(hours=24)
MAX_SUSPECTS = 16


@dataclass(frozen=True, slots=True)
class DeploymentFact:
    """What suspicion needs of one DeploymentRecord."""

    service: str
    name: str
    finish: dt.datetime


@dataclass(frozen=True, slots=True)
class Suspect:
    """A rollout that finished `seconds_before` the alert started."""

    name: str
    finish: dt.datetime
    seconds_before: int


def fact_of(record: DeploymentRecord) -> DeploymentFact:
    """The fact of a DeploymentRecord."""
    return DeploymentFact(record.spec.service, record.metadata.name or "", record.spec.finish_time)


def suspect_changes(
    service: str,
    facts: Iterable[DeploymentFact],
    alert_start: dt.datetime,
    window: dt.timedelta = SUSPECT_WINDOW,
) -> tuple[Suspect, ...]:
    """The service's rollouts that finished in `window` up to the alert's start, newest first."""
    earliest = alert_start - window
    found = (
        Suspect(f.name, f.finish, seconds_between(f.finish, alert_start))
        for f in facts
        if f.service == service and f.name and earliest <= f.finish <= alert_start
    )
    newest_first = sorted(found, key=lambda s: (-s.finish.timestamp(), s.name))
    return tuple(newest_first[:MAX_SUSPECTS])


def suspect_status(suspects: Iterable[Suspect]) -> list[SuspectChange]:
    """The suspects as an Incident's status lists them."""
    return [
        SuspectChange(name=s.name, finish_time=s.finish, seconds_before=s.seconds_before)
        for s in suspects
    ]
