"""Who is on call for a service at an instant, from which rotation or override, until when.

A Schedule is a ServiceOnCall's `spec.onCall` made ready to evaluate: its
rotations on their wall clocks, its working hours and holidays, its overrides.
`who_is_on_call` answers for one instant; nobody on call is an answer too,
with a reason, never an empty silence. `until` is the next instant the answer
changes. The controller writes it to status, escalation pages from it, and
`changegate oncall` prints it; the incident manager's schedule is the same
thing built from the incident-management ServiceOnCall.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from changegate.api.v1alpha1.serviceoncall import Coverage, OnCall, OnCallNow, Override
from changegate.core.common import timestamp
from changegate.core.oncall.rotation import RotationPlan
from changegate.core.oncall.wallclock import as_utc
from changegate.core.oncall.working_hours import WorkingCalendar

# Instants at which the answer might change, examined before `until` gives up
# and names the last one as "ask again then" (only a schedule whose answer
# never changes for months of hourly handoffs gets that far).
_MAX_STEPS = 1000


class Source(StrEnum):
    """What put a person on call."""

    ROTATION = "Rotation"
    OVERRIDE = "Override"
    INCIDENT_MANAGER = "IncidentManager"


class Reason(StrEnum):
    """Why the answer is what it is; CamelCase, so it can be a condition's reason."""

    ON_CALL = "OnCall"
    INCIDENT_MANAGER = "IncidentManager"
    NO_ROTATIONS = "NoRotations"
    NOT_STARTED = "NotStarted"
    OUTSIDE_COVERAGE = "OutsideCoverage"


@dataclass(frozen=True, slots=True)
class OnCallEntry:
    """One person on call, and what put them there.

    `rotation` names the rotation whose shift they hold (also when an override
    took that shift over); `replaces` names whom an override stands in for.
    """

    user: str
    source: Source
    rotation: str | None = None
    replaces: str | None = None


@dataclass(frozen=True, slots=True)
class OnCallAnswer:
    """Who is on call at `at`, why, and `until` when this answer holds (None: for good)."""

    at: dt.datetime
    entries: tuple[OnCallEntry, ...]
    reason: Reason
    message: str
    until: dt.datetime | None

    @property
    def users(self) -> tuple[str, ...]:
        """Everyone on call, each once, in the order of the entries."""
        return tuple(dict.fromkeys(entry.user for entry in self.entries))

    @property
    def nobody(self) -> bool:
        """Whether nobody is on call: a state to escalate, never to drop."""
        return not self.entries

    def in_rotation(self, name: str) -> tuple[str, ...]:
        """Who holds the named rotation's shift now (an override standing in included)."""
        return tuple(dict.fromkeys(e.user for e in self.entries if e.rotation == name))


@dataclass(frozen=True, slots=True)
class OverrideWindow:
    """An override with its window in UTC."""

    user: str
    replaces: str | None
    start: dt.datetime
    end: dt.datetime

    @classmethod
    def of(cls, override: Override) -> OverrideWindow:
        return cls(
            override.user,
            override.replaces,
            as_utc(override.start_time),
            as_utc(override.end_time),
        )

    def holds_at(self, moment: dt.datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class CoveredRotation:
    """A rotation and when it is on call."""

    plan: RotationPlan
    coverage: Coverage


@dataclass(frozen=True, slots=True)
class Schedule:
    """An on-call schedule ready to evaluate; `fallback` is on call when nobody else is."""

    rotations: tuple[CoveredRotation, ...]
    hours: WorkingCalendar
    overrides: tuple[OverrideWindow, ...]
    fallback: str | None = None


@dataclass(frozen=True, slots=True)
class _View:
    """The answer at one instant, without its `until`: what `until` compares."""

    entries: tuple[OnCallEntry, ...]
    reason: Reason
    message: str


def service_schedule(on_call: OnCall) -> Schedule:
    """The schedule of a service's `spec.onCall`; ScheduleError for an unknown time zone."""
    return Schedule(
        rotations=tuple(
            CoveredRotation(RotationPlan.of(rotation, on_call.time_zone), rotation.coverage)
            for rotation in on_call.rotations
        ),
        hours=WorkingCalendar.of(on_call.working_hours, on_call.time_zone),
        overrides=tuple(OverrideWindow.of(override) for override in on_call.overrides),
    )


def incident_manager_schedule(on_call: OnCall) -> Schedule:
    """The incident managers' schedule, from the incident-management ServiceOnCall's onCall.

    Its rotations, working hours, holidays and overrides work as for any
    service; its `incidentManager`, when named, is on call whenever they
    leave nobody, so a single named manager is a complete schedule.
    """
    manager = on_call.incident_manager.user if on_call.incident_manager else None
    schedule = service_schedule(on_call)
    return Schedule(schedule.rotations, schedule.hours, schedule.overrides, manager)


def who_is_on_call(schedule: Schedule, at: dt.datetime) -> OnCallAnswer:
    """Who is on call at an instant, why, and until when."""
    at = as_utc(at)
    view = _view(schedule, at)
    return OnCallAnswer(at, view.entries, view.reason, view.message, _until(schedule, at, view))


def upcoming(schedule: Schedule, at: dt.datetime, count: int) -> tuple[OnCallAnswer, ...]:
    """The next `count` answers from `at`: each holds from its `at` to its `until`."""
    answers: list[OnCallAnswer] = []
    moment: dt.datetime | None = as_utc(at)
    while moment is not None and len(answers) < count:
        answers.append(who_is_on_call(schedule, moment))
        moment = answers[-1].until
    return tuple(answers)


def on_call_now(answer: OnCallAnswer) -> OnCallNow | None:
    """The ServiceOnCall status entry for an answer: its first person, or None for nobody."""
    if answer.nobody:
        return None
    first = answer.entries[0]
    return OnCallNow(
        user=first.user,
        rotation=first.rotation,
        override=first.source is Source.OVERRIDE,
        until_time=answer.until,
    )


def _view(schedule: Schedule, at: dt.datetime) -> _View:
    entries = _with_overrides(_rotation_entries(schedule, at), schedule.overrides, at)
    if entries:
        return _View(entries, Reason.ON_CALL, _describe(entries))
    if schedule.fallback is not None:
        entry = OnCallEntry(schedule.fallback, Source.INCIDENT_MANAGER)
        return _View((entry,), Reason.INCIDENT_MANAGER, _describe((entry,)))
    return _nobody(schedule, at)


def _rotation_entries(schedule: Schedule, at: dt.datetime) -> tuple[OnCallEntry, ...]:
    """The participants whose shift holds now, in rotations whose coverage includes now."""
    entries: list[OnCallEntry] = []
    for rotation in schedule.rotations:
        shift = rotation.plan.shift_at(at)
        if shift is not None and _covers(rotation.coverage, schedule.hours, at):
            entries.append(OnCallEntry(shift.user, Source.ROTATION, rotation.plan.name))
    return tuple(entries)


def _covers(coverage: Coverage, hours: WorkingCalendar, at: dt.datetime) -> bool:
    if coverage is Coverage.ALWAYS:
        return True
    return hours.is_working(at) == (coverage is Coverage.WORKING_HOURS)


def _with_overrides(
    entries: tuple[OnCallEntry, ...], overrides: tuple[OverrideWindow, ...], at: dt.datetime
) -> tuple[OnCallEntry, ...]:
    """Overrides always win: their user is on call for the whole window.

    One without `replaces` takes the place of everyone the rotations put on
    call; one with `replaces` takes that person's place, and is on call beside
    the others when that person is not (a swap that missed is never a gap).
    Overrides apply in the order listed, so a swap of a swap follows through.
    """
    active = [override for override in overrides if override.holds_at(at)]
    result = [] if any(o.replaces is None for o in active) else list(entries)
    for override in active:
        if override.replaces is None:
            result.append(OnCallEntry(override.user, Source.OVERRIDE))
            continue
        hits = [i for i, entry in enumerate(result) if entry.user == override.replaces]
        for i in hits:
            result[i] = OnCallEntry(
                override.user, Source.OVERRIDE, result[i].rotation, override.replaces
            )
        if not hits:
            result.append(OnCallEntry(override.user, Source.OVERRIDE, None, override.replaces))
    return tuple(result)


def _nobody(schedule: Schedule, at: dt.datetime) -> _View:
    """Nobody on call, with the reason a person can act on."""
    if not schedule.rotations:
        return _View((), Reason.NO_ROTATIONS, "nobody is on call: no rotation is declared")
    starts = [r.plan.start for r in schedule.rotations]
    if all(start > at for start in starts):
        first = timestamp(min(starts))
        return _View((), Reason.NOT_STARTED, f"nobody is on call: rotations start at {first}")
    # The message names no day (holiday or not): it must change only where the answer can.
    message = "nobody is on call: no rotation's coverage includes this time"
    return _View((), Reason.OUTSIDE_COVERAGE, message)


def _describe(entries: tuple[OnCallEntry, ...]) -> str:
    return ", ".join(_describe_entry(entry) for entry in entries)


def _describe_entry(entry: OnCallEntry) -> str:
    if entry.source is Source.INCIDENT_MANAGER:
        return f"{entry.user} (incident manager)"
    if entry.source is Source.ROTATION:
        return f"{entry.user} ({entry.rotation})"
    instead = f" for {entry.replaces}" if entry.replaces else ""
    within = f" in {entry.rotation}" if entry.rotation else ""
    return f"{entry.user} (override{instead}{within})"


def _until(schedule: Schedule, at: dt.datetime, view: _View) -> dt.datetime | None:
    """The first instant after `at` whose answer differs from `view`.

    None when nothing can change any more. After _MAX_STEPS instants that
    changed nothing, the next one: the answer holds at least until then.
    """
    moment = at
    for _ in range(_MAX_STEPS):
        candidate = _next_candidate(schedule, moment)
        if candidate is None or _view(schedule, candidate) != view:
            return candidate
        moment = candidate
    return _next_candidate(schedule, moment)


def _next_candidate(schedule: Schedule, after: dt.datetime) -> dt.datetime | None:
    """The first instant after `after` at which a rotation, working hours or override changes."""
    candidates = [
        edge
        for override in schedule.overrides
        for edge in (override.start, override.end)
        if edge > after
    ]
    candidates.extend(_rotation_changes(schedule, after))
    if any(r.coverage is not Coverage.ALWAYS for r in schedule.rotations):
        change = schedule.hours.next_change(after)
        if change is not None:
            candidates.append(change)
    return min(candidates, default=None)


def _rotation_changes(schedule: Schedule, after: dt.datetime) -> list[dt.datetime]:
    """Each rotation's start, or its next handoff when it has more than one participant."""
    changes: list[dt.datetime] = []
    for rotation in schedule.rotations:
        plan = rotation.plan
        shift = plan.shift_at(after)
        if shift is None:
            changes.append(plan.start)
        elif len(set(plan.participants)) > 1:
            changes.append(shift.end)
    return changes
