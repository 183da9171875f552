"""Escalation (pure): which targets of an incident's escalation policy are owed a page now.

When an incident triggers, the controller copies its service's policy into
status (`take_snapshot`); on every reconcile it asks `plan_escalation` what is
owed at `now`, resolves each abstract target with core.oncall, pages, and
writes back what each target came to (`record_outcomes`). State lives in status.

Timing. A step's `delaySeconds` counts from the previous step, the trigger for
the very first, so a step falls due at the trigger plus the sum of the delays
of every step up to it in the unrolled policy (round 0's steps, then round
1's, ...): cumulative from the trigger, as PagerDuty and GoAlert chain their
rules. The first step's delay therefore also separates one round from the
next. A step whose every target found nobody hands over at once: the next step
falls due when that one did, without its own delay, and the chain goes on.

Stopping. Nothing is owed at or after the first acknowledgement or the
resolution, whichever comes first: a step due at the very instant of the ack
is not paged (the ack wins the tie), nor is one that fell due earlier but was
never sent. No policy means: page the service's on-call once.

Restart safety. Each (incident, round, step, target) has one idempotency key.
A target stays owed until a record with its key is in status, so a controller
killed between paging and recording pages again with the same key (the channel
drops the repeat), and a recorded target is never owed again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from changegate.api.v1alpha1.common import AuditEntry
from changegate.api.v1alpha1.incident import (
    EscalationOutcome,
    EscalationRecord,
    Incident,
    IncidentEscalation,
)
from changegate.api.v1alpha1.serviceoncall import (
    Escalation,
    EscalationStep,
    EscalationTarget,
    EscalationTargetType,
)

OPERATOR = "changegate"
NOBODY_ACTION = "NobodyToPage"
_KEY_PREFIX = "changegate-esc-"

# What a service without an escalation policy gets: its on-call, paged once.
PAGE_ON_CALL_ONCE = Escalation(
    steps=[
        EscalationStep(
            delay_seconds=0, targets=[EscalationTarget(type=EscalationTargetType.ON_CALL)]
        )
    ],
    repeat=0,
)


class EscalationState(StrEnum):
    """Where an escalation stands at an instant."""

    ESCALATING = "Escalating"
    ACKNOWLEDGED = "Acknowledged"
    RESOLVED = "Resolved"
    EXHAUSTED = "Exhausted"


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A step of one round of the policy."""

    cycle: int
    step: int


@dataclass(frozen=True, slots=True)
class DuePage:
    """One abstract target owed a page now; the handler resolves it to people with core.oncall.

    `target` is "the on-call of `service`", "rotation R of `service`", "user U"
    or "the incident manager". `sequence` counts steps across rounds (the step
    a `status.pages` entry names). `key` is the idempotency key of its pages.
    """

    cycle: int
    step: int
    sequence: int
    target: EscalationTarget
    service: str
    due: dt.datetime
    key: str


@dataclass(frozen=True, slots=True)
class EscalationFacts:
    """What escalation decides from: the snapshot, the incident's times, what was handled."""

    incident_uid: str
    service: str
    policy: Escalation | None
    triggered: dt.datetime
    acknowledged: dt.datetime | None
    resolved: dt.datetime | None
    records: tuple[EscalationRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class EscalationPlan:
    """What is owed now, and when the scheduler should look again (None: never)."""

    state: EscalationState
    due: tuple[DuePage, ...]
    next_time: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Handled:
    """What one owed target came to: paged (whatever the channels said), or nobody to page."""

    page: DuePage
    outcome: EscalationOutcome


@dataclass(frozen=True, slots=True)
class RecordedEscalation:
    """The escalation status with new records, and the timeline notes they call for."""

    escalation: IncidentEscalation
    notes: tuple[AuditEntry, ...]


def escalation_key(uid: str, cycle: int, step: int, target: EscalationTarget) -> str:
    """The idempotency key of a target's pages: stable across calls and restarts, short."""
    material = "\n".join((uid, str(cycle), str(step), target.type.value, target.name or ""))
    return _KEY_PREFIX + hashlib.sha256(material.encode()).hexdigest()[:40]


def effective_policy(policy: Escalation | None) -> Escalation:
    """The policy to follow: the snapshot, or the service's on-call once when there was none."""
    return policy if policy is not None else PAGE_ON_CALL_ONCE


def positions(policy: Escalation) -> list[Position]:
    """Every step of every round, in the order they fall due."""
    return [
        Position(cycle, step)
        for cycle in range(policy.repeat + 1)
        for step in range(len(policy.steps))
    ]


def distinct_targets(step: EscalationStep) -> tuple[EscalationTarget, ...]:
    """The step's targets, each (type, name) once, in the order written."""
    seen: dict[tuple[EscalationTargetType, str | None], EscalationTarget] = {}
    for target in step.targets:
        seen.setdefault((target.type, target.name), target)
    return tuple(seen.values())


def describe(target: EscalationTarget, service: str) -> str:
    """The target in words, for the timeline."""
    return {
        EscalationTargetType.ON_CALL: f"the on-call of {service}",
        EscalationTargetType.ROTATION: f"rotation {target.name} of {service}",
        EscalationTargetType.USER: f"user {target.name}",
        EscalationTargetType.INCIDENT_MANAGER: "the incident manager",
    }[target.type]


def _keys(uid: str, policy: Escalation, position: Position) -> list[tuple[EscalationTarget, str]]:
    """The targets of a position with their keys."""
    step = policy.steps[position.step]
    return [
        (target, escalation_key(uid, position.cycle, position.step, target))
        for target in distinct_targets(step)
    ]


def _by_key(records: Iterable[EscalationRecord]) -> dict[str, EscalationRecord]:
    """Records by key; the first record of a key is the one that counts."""
    found: dict[str, EscalationRecord] = {}
    for record in records:
        found.setdefault(record.key, record)
    return found


def found_nobody(
    uid: str, policy: Escalation, position: Position, records: Mapping[str, EscalationRecord]
) -> bool:
    """Whether every target of the step was handled and named nobody."""
    return all(
        key in records and records[key].outcome is EscalationOutcome.NOBODY
        for _, key in _keys(uid, policy, position)
    )


def schedule(
    facts: EscalationFacts, records: Mapping[str, EscalationRecord]
) -> list[tuple[Position, dt.datetime]]:
    """When each step of each round falls due (see the module's Timing)."""
    policy = effective_policy(facts.policy)
    slots: list[tuple[Position, dt.datetime]] = []
    at, hand_over = facts.triggered, False
    for position in positions(policy):
        if not hand_over:
            at += dt.timedelta(seconds=policy.steps[position.step].delay_seconds)
        slots.append((position, at))
        hand_over = found_nobody(facts.incident_uid, policy, position, records)
    return slots


def stop_time(facts: EscalationFacts) -> dt.datetime | None:
    """The first instant nothing is owed any more: the ack or the resolution, the earlier."""
    return min((t for t in (facts.acknowledged, facts.resolved) if t is not None), default=None)


def _stopped_state(facts: EscalationFacts, now: dt.datetime) -> EscalationState | None:
    """Resolved or Acknowledged once `now` reached either; None while the escalation runs."""
    if facts.resolved is not None and facts.resolved <= now:
        return EscalationState.RESOLVED
    if facts.acknowledged is not None and facts.acknowledged <= now:
        return EscalationState.ACKNOWLEDGED
    return None


def _owed(
    facts: EscalationFacts,
    position: Position,
    due: dt.datetime,
    records: Mapping[str, EscalationRecord],
) -> list[DuePage]:
    """The targets of a position not handled yet."""
    policy = effective_policy(facts.policy)
    return [
        DuePage(
            cycle=position.cycle,
            step=position.step,
            sequence=position.cycle * len(policy.steps) + position.step,
            target=target,
            service=facts.service,
            due=due,
            key=key,
        )
        for target, key in _keys(facts.incident_uid, policy, position)
        if key not in records
    ]


def _next_time(
    pending: Iterable[dt.datetime], now: dt.datetime, stop: dt.datetime | None
) -> dt.datetime | None:
    """The earliest pending instant after `now`, unless the escalation stops first."""
    ahead = min((t for t in pending if t > now), default=None)
    if ahead is None or (stop is not None and ahead >= stop):
        return None
    return ahead


def plan_escalation(facts: EscalationFacts, now: dt.datetime) -> EscalationPlan:
    """The pages owed at `now` and the next instant anything falls due.

    Level-based: the same facts and `now` give the same plan; a target
    recorded in `facts.records` is never owed again.
    """
    stopped = _stopped_state(facts, now)
    if stopped is not None:
        return EscalationPlan(stopped, (), None)
    records = _by_key(facts.records)
    due: list[DuePage] = []
    pending: list[dt.datetime] = []
    for position, at in schedule(facts, records):
        owed = _owed(facts, position, at, records)
        if owed and at <= now:
            due.extend(owed)
        elif owed:
            pending.append(at)
    next_time = _next_time(pending, now, stop_time(facts))
    state = EscalationState.ESCALATING if due or next_time else EscalationState.EXHAUSTED
    return EscalationPlan(state, tuple(due), next_time)


def take_snapshot(
    current: IncidentEscalation | None,
    service: str,
    policy: Escalation | None,
    now: dt.datetime,
) -> IncidentEscalation:
    """The policy the incident follows: the one copied when it triggered, else `policy` now."""
    if current is not None:
        return current
    copied = policy.model_copy(deep=True) if policy is not None else None
    return IncidentEscalation(service=service, policy=copied, snapshot_time=now)


def _record(handled: Handled, now: dt.datetime) -> EscalationRecord:
    page = handled.page
    return EscalationRecord(
        cycle=page.cycle,
        step=page.step,
        target=page.target,
        key=page.key,
        outcome=handled.outcome,
        time=now,
    )


def _nobody_note(
    policy: Escalation, position: Position, service: str, now: dt.datetime
) -> AuditEntry:
    """The timeline's word that a step found nobody and the escalation moved on."""
    whom = ", ".join(describe(t, service) for t in distinct_targets(policy.steps[position.step]))
    following = positions(policy)
    index = following.index(position) + 1
    then = (
        f"step {following[index].step} of round {following[index].cycle} is due at once"
        if index < len(following)
        else "no step is left"
    )
    where = f"escalation step {position.step} of round {position.cycle}"
    message = f"{where}: nobody to page ({whom}); {then}"
    return AuditEntry(time=now, actor=OPERATOR, action=NOBODY_ACTION, message=message[:1024])


def record_outcomes(
    escalation: IncidentEscalation,
    incident_uid: str,
    handled: Iterable[Handled],
    now: dt.datetime,
) -> RecordedEscalation:
    """The escalation status with what each target came to; a key already recorded is kept.

    Returns a note for each step that these records leave with nobody paged,
    once: recording the same outcomes again adds neither records nor notes.
    """
    known = _by_key(escalation.records)
    fresh = list(_by_key(_record(h, now) for h in handled if h.page.key not in known).values())
    after = {**known, **{r.key: r for r in fresh}}
    policy = effective_policy(escalation.policy)
    touched = sorted({Position(r.cycle, r.step) for r in fresh})
    notes = tuple(
        _nobody_note(policy, position, escalation.service, now)
        for position in touched
        if found_nobody(incident_uid, policy, position, after)
    )
    updated = escalation.model_copy(update={"records": [*escalation.records, *fresh]})
    return RecordedEscalation(updated, notes)


def _acknowledged(incident: Incident, triggered: dt.datetime) -> dt.datetime | None:
    """When it was first acknowledged; an ack of unknown time counts from the trigger."""
    if not incident.spec.acknowledgements:
        return None
    first = incident.spec.acknowledgements[0]
    return first.time or incident.status.acknowledged_time or triggered


def _resolved(incident: Incident, triggered: dt.datetime) -> dt.datetime | None:
    """When it was resolved; a resolution of unknown time counts from the trigger."""
    resolution = incident.spec.resolution
    if resolution is None:
        return None
    return incident.status.resolved_time or resolution.time or triggered


def facts_of(incident: Incident, created: dt.datetime) -> EscalationFacts | None:
    """The escalation facts of an Incident; None until its policy snapshot is in status.

    An acknowledgement or resolution whose time is unknown stops everything:
    better no page than a page after someone took the incident on.
    """
    escalation = incident.status.escalation
    if escalation is None:
        return None
    triggered = incident.status.triggered_time or created
    return EscalationFacts(
        incident_uid=incident.metadata.uid or "",
        service=escalation.service,
        policy=escalation.policy,
        triggered=triggered,
        acknowledged=_acknowledged(incident, triggered),
        resolved=_resolved(incident, triggered),
        records=tuple(escalation.records),
    )
