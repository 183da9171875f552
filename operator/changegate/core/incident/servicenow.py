"""An Incident as a ServiceNow `incident` record, both ways: the plan out, the read-back in.

Out: `plan` lists the steps the Incident's state calls for (create, note/<i>,
acknowledge, assign/<user>, reassign/<service>, major, resolve) and `fields_for`
says what each sets; the sync runner delivers what is not yet delivered. Acts
that came from ServiceNow are already there, so they plan no step. In:
`read_back` compares the ticket with the Incident and says which acts to apply
"via ServiceNow". Pure: mappings and values only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from changegate.api.v1alpha1.common import ActSource
from changegate.api.v1alpha1.incident import (
    Incident,
    IncidentPhase,
    ResolutionCode,
    Severity,
)

SN = ActSource.SERVICE_NOW

# Severity -> (impact, urgency); ServiceNow's default lookup makes them priority 1 to 4.
IMPACT_URGENCY: Mapping[Severity, tuple[str, str]] = {
    Severity.CRITICAL: ("1", "1"),
    Severity.HIGH: ("1", "2"),
    Severity.MEDIUM: ("2", "2"),
    Severity.LOW: ("3", "2"),
}
# Our phase -> incident state (1 New, 2 In Progress, 6 Resolved).
STATE: Mapping[IncidentPhase, str] = {
    IncidentPhase.TRIGGERED: "1",
    IncidentPhase.ACKNOWLEDGED: "2",
    IncidentPhase.RESOLVED: "6",
}
IN_PROGRESS, RESOLVED, CLOSED, CANCELED = "2", "6", "7", "8"
# Resolution code -> the incident close_code choices of current ServiceNow releases.
CLOSE_CODE: Mapping[ResolutionCode, str] = {
    ResolutionCode.FIXED: "Solution provided",
    ResolutionCode.WORKAROUND: "Workaround provided",
    ResolutionCode.NO_ACTION_NEEDED: "No resolution provided",
    ResolutionCode.DUPLICATE: "Duplicate",
    ResolutionCode.AUTO_RESOLVED: "Resolved by caller",
}
CODE_OF_CLOSE: Mapping[str, ResolutionCode] = {v: k for k, v in CLOSE_CODE.items()}
# The Major Incident Management plugin's field, when the ServiceOnCall names none.
DEFAULT_MAJOR_FIELDS: Mapping[str, str] = {"major_incident_state": "accepted"}
SHORT_DESCRIPTION_MAX = 160
# A step id's argument must be one path segment without spaces.
PLAIN_ARGUMENT = re.compile(r"^[^/\s]{1,100}$")


def marker(incident: Incident, step: str) -> str:
    """The tag a work note carries so a repeated call finds it in the journal."""
    return f"[changegate {incident.metadata.namespace}/{incident.metadata.name}/{step}]"


def argument(value: str) -> str:
    """A value as one segment of a step id: itself when plain, else a short hash."""
    if PLAIN_ARGUMENT.match(value):
        return value
    return "h-" + hashlib.sha256(value.encode()).hexdigest()[:16]


def _note_steps(incident: Incident) -> list[str]:
    return [f"note/{i}" for i, note in enumerate(incident.spec.notes) if note.via is not SN]


def _acknowledge_steps(incident: Incident) -> list[str]:
    first = next(iter(incident.spec.acknowledgements), None)
    return ["acknowledge"] if first is not None and first.via is not SN else []


def _assignment_steps(incident: Incident) -> list[str]:
    spec = incident.spec
    steps = []
    if spec.assignee and spec.assigned_via is not SN:
        steps.append(f"assign/{argument(spec.assignee)}")
    if spec.reassigned_by and spec.reassigned_via is not SN:
        steps.append(f"reassign/{argument(spec.service)}")
    return steps


def plan(incident: Incident) -> list[str]:
    """The steps the Incident's current state calls for, in the order they must reach ServiceNow."""
    spec = incident.spec
    steps = ["create", *_note_steps(incident), *_acknowledge_steps(incident)]
    steps += _assignment_steps(incident)
    if spec.major and spec.major_via is not SN:
        steps.append("major")
    if spec.resolution is not None and spec.resolution.via is not SN:
        steps.append("resolve")
    return steps


@dataclass(frozen=True, slots=True)
class TicketContext:
    """What the ServiceOnCall and the settings add to an incident ticket."""

    assignment_group: str | None = None
    configuration_item: str | None = None
    major_fields: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MAJOR_FIELDS))
    link: str | None = None


def _description(incident: Incident, link: str | None) -> str:
    spec, status = incident.spec, incident.status
    lines = [spec.description or spec.summary, ""]
    lines.append(f"Service: {spec.service} (namespace {incident.metadata.namespace})")
    lines.append(f"changegate Incident: {incident.metadata.name}" + (f" {link}" if link else ""))
    lines += [f"Alert: {a.name} ({a.state.value})" for a in status.alerts[:10]]
    lines += [f"Suspect change: {s.name}" for s in status.suspect_changes[:5]]
    lines += [f"Dashboard: {d.name} {d.url}" for d in status.dashboards]
    lines += [f"Runbook: {r.name} {r.url}" for r in status.runbooks]
    return "\n".join(lines)[:4000]


def create_fields(incident: Incident, context: TicketContext) -> dict[str, str]:
    """The new ticket's fields (correlation_id is added by the adapter)."""
    impact, urgency = IMPACT_URGENCY[incident.spec.severity]
    fields = {
        "short_description": incident.spec.summary[:SHORT_DESCRIPTION_MAX],
        "description": _description(incident, context.link),
        "impact": impact,
        "urgency": urgency,
        "correlation_display": "changegate",
    }
    if context.assignment_group:
        fields["assignment_group"] = context.assignment_group
    if context.configuration_item:
        fields["cmdb_ci"] = context.configuration_item
    return fields


def _note_text(incident: Incident, index: int) -> str:
    note = incident.spec.notes[index]
    return f"{note.author or 'someone'}: {note.text}"


def _resolve_fields(incident: Incident) -> dict[str, str]:
    resolution = incident.spec.resolution
    if resolution is None:
        return {}
    by = resolution.resolved_by or "changegate"
    return {
        "state": RESOLVED,
        "close_code": CLOSE_CODE[resolution.code],
        "close_notes": f"{resolution.note}\n(resolved by {by} in changegate)",
    }


def fields_for(step: str, incident: Incident, context: TicketContext) -> dict[str, str]:
    """What a step (other than create and notes) sets on the ticket."""
    kind, _, _ = step.partition("/")
    spec = incident.spec
    if kind == "acknowledge":
        first = spec.acknowledgements[0]
        fields = {"state": IN_PROGRESS}
        if first.user and not spec.assignee:
            fields["assigned_to"] = first.user
        return fields
    if kind == "assign":
        return {"assigned_to": spec.assignee or ""}
    if kind == "reassign":
        return {"assignment_group": context.assignment_group or ""}
    if kind == "major":
        return dict(context.major_fields)
    if kind == "resolve":
        return _resolve_fields(incident)
    raise ValueError(f"no fields for step {step}")


def note_for(step: str, incident: Incident) -> str | None:
    """The work note a step writes: a note's text, or None for steps that set fields."""
    kind, _, index = step.partition("/")
    if kind == "note":
        return _note_text(incident, int(index))
    return None


# ---- Read-back: what changed in ServiceNow ----


@dataclass(frozen=True, slots=True)
class RemoteNote:
    """A work note written in ServiceNow (not by changegate)."""

    author: str
    text: str


@dataclass(frozen=True, slots=True)
class ReadBack:
    """Acts to apply to the Incident "via ServiceNow"; empty when the two agree."""

    acknowledge_by: str | None = None
    resolve: tuple[ResolutionCode, str, str] | None = None  # code, note, by
    assignee: str | None = None
    notes: tuple[RemoteNote, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.acknowledge_by or self.resolve or self.assignee or self.notes)


def _resolution(incident: Incident, ticket: Mapping[str, str], by: str) -> ReadBack | None:
    if ticket.get("state") not in (RESOLVED, CLOSED, CANCELED) or incident.spec.resolution:
        return None
    code = CODE_OF_CLOSE.get(ticket.get("close_code", ""), ResolutionCode.FIXED)
    note = ticket.get("close_notes") or "Resolved in ServiceNow."
    return ReadBack(resolve=(code, note[:4096], by))


def _new_notes(incident: Incident, journal: Sequence[RemoteNote]) -> tuple[RemoteNote, ...]:
    """Work notes not written by changegate and not yet on the Incident (same author and text)."""
    have = {(n.external_user, n.text) for n in incident.spec.notes if n.via is SN}
    fresh = []
    for entry in journal:
        if entry.text.startswith("[changegate ") or not entry.text.strip():
            continue
        if (entry.author, entry.text) not in have:
            have.add((entry.author, entry.text))
            fresh.append(RemoteNote(entry.author, entry.text[:4096]))
    return tuple(fresh)


def _assignee(incident: Incident, remote: str) -> str | None:
    """ServiceNow's assignee when it differs from ours (an empty one is not applied).

    Our acknowledge step names the acknowledger as assignee when we had none:
    seeing them back is our own write, not a reassignment in ServiceNow.
    """
    first = next(iter(incident.spec.acknowledgements), None)
    ours = incident.spec.assignee or (first.user if first else None)
    return remote if remote and remote != ours else None


def read_back(
    incident: Incident,
    ticket: Mapping[str, str],
    assignee: str,
    updated_by: str,
    journal: Sequence[RemoteNote],
) -> ReadBack:
    """What ServiceNow says that the Incident does not, as acts (assignee already mapped)."""
    notes = _new_notes(incident, journal)
    resolved = _resolution(incident, ticket, updated_by)
    if resolved is not None:
        return ReadBack(resolve=resolved.resolve, notes=notes)
    acknowledge = None
    in_progress = ticket.get("state") == IN_PROGRESS
    if in_progress and not incident.spec.acknowledgements:
        acknowledge = assignee or updated_by
    return ReadBack(acknowledge, None, _assignee(incident, assignee), notes)
