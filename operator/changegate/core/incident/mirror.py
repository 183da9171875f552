"""What a paging platform is owed for an Incident (pure): PagerDuty's steps, from its state.

The outbox (core/sync.py, run by handlers/controller/sync.py) delivers the
steps this plan lists and has not delivered yet. PagerDuty mirrors an Incident
as one alert under one dedup_key: trigger, then acknowledge once someone has,
then resolve. An act that came from PagerDuty itself (its `via`) is already
there, so it is not planned: nothing loops back.
"""

from __future__ import annotations

from changegate.api.v1alpha1.common import ActSource
from changegate.api.v1alpha1.incident import Incident

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


def pagerduty_steps(incident: Incident) -> list[str]:
    """trigger; acknowledge once acknowledged here; resolve once resolved here; in that order.

    Nothing until the controller's first pass has settled the status (its trigger time,
    dashboards, runbooks and suspect changes), so the trigger carries them."""
    if incident.status.triggered_time is None:
        return []
    steps = [TRIGGER]
    if acknowledged_here(incident):
        steps.append(ACKNOWLEDGE)
    if resolved_here(incident):
        steps.append(RESOLVE)
    return steps
