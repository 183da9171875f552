"""Rollouts that answer an Incident: a change naming it (spec.incidentRef) finished rolling out.

The controller adds one ChangeRolledOut entry per rollout (per DeploymentRecord)
to the Incident's timeline. Level-based: an entry is owed while the timeline
neither names the record nor has dropped it off its bounded end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from changegate.api.v1alpha1.common import AuditEntry
from changegate.core.incident.lifecycle import OPERATOR, TIMELINE_LIMIT

ROLLED_OUT = "ChangeRolledOut"


@dataclass(frozen=True, slots=True)
class AnsweringRollout:
    """One finished rollout of a change that names the incident, and its evidence."""

    change: str
    kind: str
    workload: str
    revision: int
    result: str
    record: str
    finished: dt.datetime


def record_tail(record: str) -> str:
    """How an entry ends: the record's name, which tells rollouts apart."""
    return f", record {record}"


def rollout_entry(rollout: AnsweringRollout, now: dt.datetime) -> AuditEntry:
    """The timeline entry: change X rolled out revision N of Kind/name: Result, record R."""
    message = (
        f"change {rollout.change} rolled out revision {rollout.revision} of"
        f" {rollout.kind}/{rollout.workload}: {rollout.result}{record_tail(rollout.record)}"
    )
    # Cut from the front if ever too long: the record's tail is what tells entries apart.
    return AuditEntry(time=now, actor=OPERATOR, action=ROLLED_OUT, message=message[-1024:])


def noted(timeline: Sequence[AuditEntry], record: str) -> bool:
    """Whether the timeline has the rollout's entry."""
    tail = record_tail(record)
    return any(e.action == ROLLED_OUT and e.message.endswith(tail) for e in timeline)


def dropped_off(timeline: Sequence[AuditEntry], finished: dt.datetime) -> bool:
    """Whether an entry written after the rollout finished may have dropped off: the timeline
    is full and its oldest entry is no older than the rollout."""
    return len(timeline) >= TIMELINE_LIMIT and timeline[0].time >= finished


def owes_entry(timeline: Sequence[AuditEntry], rollout: AnsweringRollout) -> bool:
    """Whether the rollout's entry is still to be added (never twice, never after it aged out)."""
    return not noted(timeline, rollout.record) and not dropped_off(timeline, rollout.finished)
