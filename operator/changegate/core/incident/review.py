"""Rules for people's writes to an Incident: who may act, stamped with who they are.

The mutating webhook (handlers/webhook/incidents.py) calls `review_incident` with
the authenticated user, the service's team and the incident managers' groups. A
chain of small named rules (`RULES`; the first that decides wins) refuses with a
reason, or accepts with the JSON patch that stamps each act's user and time. Acts
made in PagerDuty or ServiceNow (`via`, `externalUser`) are the controller's to write.
Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from changegate.api.v1alpha1.incident import Incident, IncidentSpec, Resolution
from changegate.core.common import User, timestamp

# Acts on a single field: (field, JSON name, and the JSON names of its stamps: who, when).
SINGLE_ACTS = (
    ("assignee", "assignee", "assignedBy", "assignedTime"),
    ("commander", "commander", "commanderAssignedBy", "commanderAssignedTime"),
    ("caused_by", "causedBy", "causeConfirmedBy", "causeConfirmedTime"),
    ("service", "service", "reassignedBy", "reassignedTime"),
)

# Single-field acts that may come from PagerDuty or ServiceNow: the act's JSON name, and
# the JSON names of where it came from and who made it there.
EXTERNAL_SINGLES = (
    ("assignee", "assignedVia", "assignedExternalUser"),
    ("service", "reassignedVia", "reassignedExternalUser"),
    ("major", "majorVia", "majorExternalUser"),
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the webhook answers for a write of an Incident."""

    allowed: bool
    message: str = ""
    reason: str = "Accepted"
    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Responders:
    """Who may act on the incident: its service's team and the incident managers."""

    service: str
    team: frozenset[str] | None  # spec.team.members users; None: no ServiceOnCall declares it
    manager_groups: frozenset[str]

    def may_act(self, user: User) -> bool:
        return self.is_manager(user) or user.username in (self.team or ())

    def is_manager(self, user: User) -> bool:
        return user.in_any(self.manager_groups)

    def who(self) -> str:
        groups = ", ".join(sorted(self.manager_groups)) or "none"
        managers = f"the incident managers (group {groups})"
        if self.team is None:
            return f"{managers}: no ServiceOnCall declares service {self.service}"
        members = ", ".join(sorted(self.team)) or "none"
        return f"the team of service {self.service} ({members}) and {managers}"


@dataclass(frozen=True, slots=True)
class IncidentWrite:
    """One CREATE or UPDATE of an Incident; `old` is None on CREATE."""

    old: Incident | None
    new: Incident
    user: User
    responders: Responders  # of the service that owns the incident before the write
    now: datetime
    operator: bool = False  # the controller's own identity (intake, auto-resolution)

    @property
    def before(self) -> IncidentSpec | None:
        return self.old.spec if self.old else None

    def acts(self) -> list[str]:
        """What this write does that counts as acting on the incident, by JSON field name."""
        new, old = self.new.spec, self.before
        if old is None:
            blank = IncidentSpec(service=new.service, summary=new.summary, severity=new.severity)
            return _acts_between(blank, new)
        return _acts_between(old, new) + _other_edits(old, new)


def _acts_between(old: IncidentSpec, new: IncidentSpec) -> list[str]:
    acts = [json for attr, json, _, _ in SINGLE_ACTS if getattr(old, attr) != getattr(new, attr)]
    if len(new.acknowledgements) != len(old.acknowledgements):
        acts.append("acknowledgements")
    if len(new.notes) != len(old.notes):
        acts.append("notes")
    if _unstamped(new.resolution) != _unstamped(old.resolution):
        acts.append("resolution")
    if old.major != new.major:
        acts.append("major")
    if old.freeze_changes != new.freeze_changes:
        acts.append("freezeChanges")
    return acts


def _other_edits(old: IncidentSpec, new: IncidentSpec) -> list[str]:
    """Edits of what is wrong and how bad: acting too, when the write is an UPDATE."""
    fields = ("summary", "description", "severity", "affectedServices")
    return [f for f in fields if getattr(old, _attr(f)) != getattr(new, _attr(f))]


def _unstamped(resolution: Resolution | None) -> Resolution | None:
    if resolution is None:
        return None
    return resolution.model_copy(update={"resolved_by": None, "time": None})


def refuse(reason: str, message: str) -> Verdict:
    return Verdict(False, message, reason)


# -- the rules, in the order RULES runs them ----------------------------------


def written_by_operator(write: IncidentWrite) -> Verdict | None:
    """The controller opens incidents from alerts and resolves them when the alerts do."""
    return Verdict(True, reason="WrittenByOperator") if write.operator else None


def lists_append_only(write: IncidentWrite) -> Verdict | None:
    """Acknowledgements and notes are a record: entries are appended, never edited or removed."""
    old = write.before
    if old is None:
        return None
    new = write.new.spec
    for name, before, after in (
        ("acknowledgements", old.acknowledgements, new.acknowledgements),
        ("notes", old.notes, new.notes),
    ):
        if list(after[: len(before)]) != list(before):
            return refuse(
                "AppendOnly",
                f"spec.{name} can only be appended: existing entries cannot be changed or"
                " removed; append a new entry instead",
            )
    return None


def sources_by_controller(write: IncidentWrite) -> Verdict | None:
    """Only the controller says an act was made in PagerDuty or ServiceNow, and by whom there:
    anyone else could pass their own act off as the vendor's."""
    fields = _sources_set(write)
    if not fields:
        return None
    return refuse(
        "SourceSetByController",
        f"{', '.join(fields)}: set only by changegate's controller, when it applies an act"
        " made in PagerDuty or ServiceNow; leave them out (your own act is recorded as yours)",
    )


def _sources_set(write: IncidentWrite) -> list[str]:
    """The via and externalUser fields this write sets or changes, as spec paths."""
    old, new = write.before, write.new.spec
    found = []
    for name, before, after in (
        ("acknowledgements", old.acknowledgements if old else [], new.acknowledgements),
        ("notes", old.notes if old else [], new.notes),
    ):
        for index in range(len(before), len(after)):
            found += _source_of(f"spec.{name}[{index}].", after[index], None)
    found += _source_of("spec.resolution.", new.resolution, old.resolution if old else None)
    for _, via, external in EXTERNAL_SINGLES:
        for json in (via, external):
            if getattr(new, _attr(json)) != (getattr(old, _attr(json)) if old else None):
                found.append(f"spec.{json}")
    return found


def _source_of(prefix: str, act: object, before: object) -> list[str]:
    return [
        prefix + json
        for attr, json in (("via", "via"), ("external_user", "externalUser"))
        if getattr(act, attr, None) != getattr(before, attr, None)
    ]


def stamps_by_webhook(write: IncidentWrite) -> Verdict | None:
    """Who and when of an act are stamped; written by hand without the act, they are refused."""
    old = write.before
    new = write.new.spec
    acted = set(write.acts())
    for _, json, by, at in SINGLE_ACTS:
        if json in acted:
            continue  # the stamp is overwritten below
        for stamp in (by, at):
            name = _attr(stamp)
            if getattr(new, name) != (getattr(old, name) if old else None):
                return refuse(
                    "StampedField",
                    f"spec.{stamp} is stamped by changegate when spec.{json} changes;"
                    " leave it as it is",
                )
    return None


def no_change_to_stamp(write: IncidentWrite) -> Verdict | None:
    """Metadata edits and a bare new incident (anyone RBAC lets open one) pass as they are."""
    return None if write.acts() else Verdict(True)


def responders_only(write: IncidentWrite) -> Verdict | None:
    """Only the service's team and the incident managers act on an incident."""
    responders = write.responders
    if responders.may_act(write.user):
        return None
    acts = ", ".join(f"spec.{a}" for a in write.acts())
    return refuse(
        "NotAResponder",
        f"{write.user.username} may not act on Incident {write.new.metadata.name} ({acts}):"
        f" only {responders.who()} may",
    )


def freeze_by_incident_managers(write: IncidentWrite) -> Verdict | None:
    """A change freeze stops every team's delivery: the incident managers' call alone.

    Declaring major is the responders' (the team asks for help); freezing is not."""
    if "freezeChanges" not in write.acts() or write.responders.is_manager(write.user):
        return None
    groups = ", ".join(sorted(write.responders.manager_groups)) or "none"
    return refuse(
        "FreezeByIncidentManagers",
        f"only incident managers (group {groups}) may set or clear spec.freezeChanges;"
        f" {write.user.username} may declare the incident major and ask them to freeze changes",
    )


def cause_among_suspects(write: IncidentWrite) -> Verdict | None:
    """A confirmed cause is one of the rollouts the incident lists as suspects."""
    cause = write.new.spec.caused_by
    if cause is None or "causedBy" not in write.acts():
        return None
    suspects = [s.name for s in (write.old or write.new).status.suspect_changes]
    if cause in suspects:
        return None
    return refuse(
        "CauseNotASuspect",
        f"spec.causedBy names {cause}, which is not among the incident's suspect changes"
        f" (status.suspectChanges: {', '.join(suspects) or 'none'})",
    )


def stamp_acts(write: IncidentWrite) -> Verdict:
    """Each act recorded as the authenticated user, now; a name typed for someone else is
    overwritten (and said so in a warning), not refused, so that `kubectl apply` of an
    edited manifest still works."""
    patch: list[dict[str, Any]] = []
    warnings: list[str] = []
    for part in (_stamp_singles, _stamp_lists, _stamp_resolution, _clear_sources):
        more, said = part(write)
        patch += more
        warnings += said
    return Verdict(True, reason="ActsStamped", patch=patch, warnings=tuple(warnings))


# -- stamping -----------------------------------------------------------------

Stamped = tuple[list[dict[str, Any]], list[str]]


def _attr(json: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in json)


def _add(path: str, value: Any) -> dict[str, Any]:
    # "add" sets an object member whether or not it exists (RFC 6902).
    return {"op": "add", "path": path, "value": value}


def _stamp_singles(write: IncidentWrite) -> Stamped:
    acted = set(write.acts())
    patch = []
    for _, json, by, at in SINGLE_ACTS:
        if json in acted:
            patch += [
                _add(f"/spec/{by}", write.user.username),
                _add(f"/spec/{at}", timestamp(write.now)),
            ]
    return patch, []


def _stamp_lists(write: IncidentWrite) -> Stamped:
    old, new, user = write.before, write.new.spec, write.user.username
    patch: list[dict[str, Any]] = []
    warnings: list[str] = []
    for name, who, before, after in (
        ("acknowledgements", "user", old.acknowledgements if old else [], new.acknowledgements),
        ("notes", "author", old.notes if old else [], new.notes),
    ):
        for index in range(len(before), len(after)):
            typed = getattr(after[index], who)
            if typed not in (None, user):
                warnings.append(_overwritten(f"spec.{name}[{index}].{who}", typed, user))
            patch += [
                _add(f"/spec/{name}/{index}/{who}", user),
                _add(f"/spec/{name}/{index}/time", timestamp(write.now)),
            ]
    return patch, warnings


def _stamp_resolution(write: IncidentWrite) -> Stamped:
    resolution = write.new.spec.resolution
    if resolution is None or "resolution" not in write.acts():
        return [], []
    user = write.user.username
    said = []
    if resolution.resolved_by not in (None, user):
        said.append(_overwritten("spec.resolution.resolvedBy", resolution.resolved_by, user))
    patch = [
        _add("/spec/resolution/resolvedBy", user),
        _add("/spec/resolution/time", timestamp(write.now)),
    ]
    return patch, said


def _clear_sources(write: IncidentWrite) -> Stamped:
    """A person redoing an act made in PagerDuty or ServiceNow makes it theirs: the old
    source goes (a manifest applied again may still carry it)."""
    new, acted = write.new.spec, set(write.acts())
    paths = [
        f"/spec/{json}"
        for act, via, external in EXTERNAL_SINGLES
        if act in acted
        for json in (via, external)
        if getattr(new, _attr(json)) is not None
    ]
    if new.resolution is not None and "resolution" in acted:
        paths += [
            f"/spec/resolution/{json}"
            for attr, json in (("via", "via"), ("external_user", "externalUser"))
            if getattr(new.resolution, attr) is not None
        ]
    return [{"op": "remove", "path": path} for path in paths], []


def _overwritten(where: str, typed: str | None, user: str) -> str:
    return f"{where} named {typed}; recorded as {user}, the authenticated user"


Rule = Callable[[IncidentWrite], Verdict | None]

# The review of an Incident write, in order: the first rule that decides wins.
RULES: tuple[Rule, ...] = (
    written_by_operator,
    lists_append_only,
    sources_by_controller,
    stamps_by_webhook,
    no_change_to_stamp,
    responders_only,
    freeze_by_incident_managers,
    cause_among_suspects,
    stamp_acts,
)


def first_verdict(rules: Sequence[Rule], write: IncidentWrite) -> Verdict:
    """The verdict of the first rule that decides; the chain ends in one that always does."""
    return next(verdict for rule in rules if (verdict := rule(write)) is not None)


def review_incident(write: IncidentWrite) -> Verdict:
    """Refuse the write with a reason, or accept it with the stamps of its acts."""
    return first_verdict(RULES, write)
