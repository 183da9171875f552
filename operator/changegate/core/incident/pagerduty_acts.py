"""What a PagerDuty incident event does to our Incident: the act to apply, or nothing.

After core/incident/pagerduty_webhooks.py has verified and parsed a delivery, the
controller's inbound route (handlers/controller/pagerduty_inbound.py) asks `act_for`
with the Incident as it is now and the service's team. The answer is a merge patch of
the Incident's spec, stamped as the controller and marked via PagerDuty with the
PagerDuty user (the team member whose contacts name them, where one does), or the
reason it changes nothing: a duplicate, an older event than what the Incident holds,
or the echo of our own call (the Incident is in that state already). Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from changegate.api.v1alpha1.common import ActSource
from changegate.api.v1alpha1.incident import (
    Acknowledgement,
    Incident,
    Note,
    Resolution,
    ResolutionCode,
)
from changegate.api.v1alpha1.serviceoncall import ContactType, Member
from changegate.core.common import timestamp
from changegate.core.incident.intake import OPERATOR
from changegate.core.incident.pagerduty_webhooks import PagerDutyEvent, PagerDutyUser

VIA = ActSource.PAGER_DUTY
MAX_NOTES = 64  # spec.notes holds no more
MAX_NOTE = 4096


@dataclass(frozen=True, slots=True)
class InboundAct:
    """The spec merge patch to apply (None: nothing to do) and, in words, what or why not."""

    what: str
    spec: dict[str, Any] | None = None

    @property
    def applies(self) -> bool:
        return self.spec is not None


def nothing(why: str) -> InboundAct:
    return InboundAct(why)


# -- who acted -----------------------------------------------------------------------


def member_of(user: PagerDutyUser, members: Sequence[Member]) -> str | None:
    """The team member whose contacts name this PagerDuty user: its PagerDuty user ID, or an
    email equal to the name PagerDuty gives (the v3 payload carries no email)."""
    for member in members:
        for contact in member.contacts:
            if contact.type is ContactType.PAGER_DUTY and contact.value == user.id:
                return member.user
            if contact.type is ContactType.EMAIL and contact.value.lower() == user.name.lower():
                return member.user
    return None


def external_user(user: PagerDutyUser | None, members: Sequence[Member]) -> str:
    """Who acted, for display: the team member, else PagerDuty's name for the user."""
    if user is None:
        return "PagerDuty"
    return (member_of(user, members) or user.name or user.id or "PagerDuty")[:256]


@dataclass(frozen=True, slots=True)
class Inbound:
    """One event against the Incident as it is now."""

    event: PagerDutyEvent
    incident: Incident
    members: Sequence[Member]

    @property
    def who(self) -> str:
        return external_user(self.event.agent, self.members)

    @property
    def when(self) -> datetime:
        return self.event.occurred_at

    def note(self, text: str) -> InboundAct:
        """Append a note via PagerDuty, unless the same note from the same user is there."""
        notes = self.incident.spec.notes
        text = text[:MAX_NOTE]
        if any(n.via is VIA and n.external_user == self.who and n.text == text for n in notes):
            return nothing("the note is there already (a repeated delivery)")
        if len(notes) >= MAX_NOTES:
            return nothing(f"the Incident holds {MAX_NOTES} notes, the most it can")
        note = Note(author=OPERATOR, time=self.when, text=text, via=VIA, external_user=self.who)
        listed = [n.to_json() for n in notes] + [note.to_json()]
        return InboundAct(f"note by {self.who} via PagerDuty", {"notes": listed})


# -- one function per event type -----------------------------------------------------


def acknowledged(inbound: Inbound) -> InboundAct:
    spec = inbound.incident.spec
    if spec.resolution is not None:
        return nothing("the Incident is resolved")
    if spec.acknowledgements:
        return nothing("the Incident is acknowledged already")
    ack = Acknowledgement(
        user=OPERATOR,
        time=inbound.when,
        comment="acknowledged in PagerDuty",
        via=VIA,
        external_user=inbound.who,
    )
    return InboundAct(
        f"acknowledged by {inbound.who} via PagerDuty", {"acknowledgements": [ack.to_json()]}
    )


def resolved(inbound: Inbound) -> InboundAct:
    if inbound.incident.spec.resolution is not None:
        return nothing("the Incident is resolved already")
    resolution = Resolution(
        # PagerDuty says no more than that it is resolved.
        code=ResolutionCode.FIXED,
        note=f"resolved in PagerDuty by {inbound.who}",
        resolved_by=OPERATOR,
        time=inbound.when,
        via=VIA,
        external_user=inbound.who,
    )
    return InboundAct(
        f"resolved by {inbound.who} via PagerDuty", {"resolution": resolution.to_json()}
    )


def reassigned(inbound: Inbound) -> InboundAct:
    """The first assignee who is a team member becomes the assignee; if none is, a note."""
    spec, event = inbound.incident.spec, inbound.event
    if spec.resolution is not None:
        return nothing("the Incident is resolved")
    if spec.assigned_time is not None and event.occurred_at < spec.assigned_time:
        return nothing("older than the Incident's current assignment")
    members = [m for m in (member_of(a, inbound.members) for a in event.assignees) if m]
    if not members:
        names = ", ".join(a.name or a.id for a in event.assignees) or "nobody"
        return inbound.note(f"reassigned in PagerDuty to {names}")
    if spec.assignee == members[0]:
        return nothing(f"{members[0]} is the assignee already")
    patch = {
        "assignee": members[0],
        "assignedBy": OPERATOR,
        "assignedTime": timestamp(inbound.when),
        "assignedVia": VIA.value,
        "assignedExternalUser": inbound.who,
    }
    return InboundAct(f"assigned to {members[0]} by {inbound.who} via PagerDuty", patch)


def annotated(inbound: Inbound) -> InboundAct:
    if not inbound.event.note:
        return nothing("the note is empty")
    return inbound.note(inbound.event.note)


def priority_updated(inbound: Inbound) -> InboundAct:
    """A note: PagerDuty's priorities are the account's own, with no fixed match to our severity."""
    priority = inbound.event.priority
    return inbound.note(
        f"priority set to {priority} in PagerDuty" if priority else "priority removed in PagerDuty"
    )


def escalated(inbound: Inbound) -> InboundAct:
    event = inbound.event
    level = f" to level {event.escalation_level}" if event.escalation_level is not None else ""
    names = ", ".join(a.name or a.id for a in event.assignees)
    return inbound.note(f"escalated in PagerDuty{level}{': ' + names if names else ''}")


APPLIED: dict[str, Callable[[Inbound], InboundAct]] = {
    "incident.acknowledged": acknowledged,
    "incident.resolved": resolved,
    "incident.reassigned": reassigned,
    "incident.annotated": annotated,
    "incident.priority_updated": priority_updated,
    "incident.escalated": escalated,
}


def act_for(event: PagerDutyEvent, incident: Incident, members: Sequence[Member]) -> InboundAct:
    """The act this event makes on the Incident, or why it makes none."""
    apply = APPLIED.get(event.type)
    if apply is None:
        return nothing(f"{event.type} is not applied to Incidents")
    return apply(Inbound(event, incident, members))
