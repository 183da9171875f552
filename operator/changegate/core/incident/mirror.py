"""What a paging platform is owed for an Incident (pure): PagerDuty's steps, from its state.

The outbox (core/sync.py, run by handlers/controller/sync.py) delivers the
steps this plan lists and has not delivered yet. PagerDuty mirrors an Incident
as one alert under one dedup_key: trigger, then acknowledge once someone has,
then resolve. An act that came from PagerDuty itself (its `via`) is already
there, so it is not planned: nothing loops back. An Incident resolved before
PagerDuty ever heard of it (the integration turned on later) is left alone.
"""

from __future__ import annotations

from changegate.api.v1alpha1.common import ActSource, SyncState, TicketSystem
from changegate.api.v1alpha1.incident import Incident
from changegate.core.sync import state_of

TRIGGER = "trigger"
ACKNOWLEDGE = "acknowledge"
RESOLVE = "resolve"


def acknowledged_here(incident: Incident) -> bool:
    """Someone acknowledged it, and the first acknowledgement was not made in PagerDuty."""
    acks = incident.spec.acknowledgements
    return bool(acks) and acks[0].via is not ActSource.PAGER_DUTY


def resolved_here(incident: Incident) -> bool:
    """It is resolved, and not by a resolution made in PagerDuty."""
    resolution = incident.spec.resolution
    return resolution is not None and resolution.via is not ActSource.PAGER_DUTY


def triggered_there(state: SyncState | None) -> bool:
    return state is not None and TRIGGER in state.delivered


def tried_there(state: SyncState | None) -> bool:
    """A step was tried: a trigger may have reached PagerDuty though its success went unrecorded
    (the controller killed between the call and the status write)."""
    return state is not None and state.last_attempt_time is not None


def closed_before_paged(incident: Incident, state: SyncState | None) -> list[str]:
    """The steps of an Incident resolved before its trigger was delivered: none if PagerDuty was
    never tried (turned on after it closed), else a resolve in case a trigger got through (a
    resolve of a dedup_key PagerDuty does not know is accepted and changes nothing)."""
    return [RESOLVE] if tried_there(state) and resolved_here(incident) else []


def pagerduty_steps(incident: Incident) -> list[str]:
    """trigger; acknowledge once acknowledged here; resolve once resolved here; in that order.

    Nothing until the controller's first pass has settled the status (its trigger time,
    dashboards, runbooks and suspect changes), so the trigger carries them; nobody is paged
    for an Incident already resolved when PagerDuty first heard of it."""
    if incident.status.triggered_time is None:
        return []
    state = state_of(incident.status.sync, TicketSystem.PAGER_DUTY)
    if incident.spec.resolution is not None and not triggered_there(state):
        return closed_before_paged(incident, state)
    steps = [TRIGGER]
    if acknowledged_here(incident):
        steps.append(ACKNOWLEDGE)
    if resolved_here(incident):
        steps.append(RESOLVE)
    return steps
