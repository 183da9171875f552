"""What points at Incidents from elsewhere: a service's lastIncident, and changes that answer one.

ServiceOnCall status.lastIncident (core.incident.latest) is a job of the
controller's scheduler: due, from the indexes, a few seconds after an Incident
opens (settled, so an alert storm writes it once per service, not per Incident)
or at once after the one it names is deleted; written, that one key only. A finished rollout of a
change naming an Incident (spec.incidentRef) adds one entry to that Incident's
timeline (core.incident.rollouts), called from the rollouts handler on each event
of the workload: read live and written under its resourceVersion, so never twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterator
from typing import Any

from changegate.adapters.kube import Conflict
from changegate.api.v1alpha1 import AdmissionBasis, ChangeRequest, ServiceOnCall
from changegate.api.v1alpha1.incident import Incident
from changegate.core.change.retention import record_due
from changegate.core.change.rollouts import Observation
from changegate.core.incident.latest import last_incident_due, last_incident_ref
from changegate.core.incident.lifecycle import with_timeline
from changegate.core.incident.rollouts import AnsweringRollout, owes_entry, rollout_entry
from changegate.core.schedule import Due
from changegate.handlers.controller.indexes import Environment, Indexes
from changegate.handlers.controller.state import ControllerState, audit, log, parse

LAST_INCIDENT = "lastIncident"
NOTE_TRIES = 5  # the incident pass writes the same timeline: retry onto a fresh read


def last_incident_patch(soc: ServiceOnCall, indexes: Indexes) -> dict[str, Any] | None:
    """{lastIncident: ...} when the status names another incident than it should; else None."""
    wanted = last_incident_ref(indexes.incident_openings(soc.spec.service.name))
    if wanted == soc.status.last_incident:
        return None
    return {LAST_INCIDENT: wanted.to_json() if wanted else None}


def refresh_last_incident(state: ControllerState, indexes: Indexes, service: str) -> None:
    """Write the service's lastIncident if the indexed ServiceOnCall's differs (a merge patch
    of that key alone, so who is on call, versions and DORA figures are left as they are)."""
    soc = indexes.service(service)
    patch = last_incident_patch(soc, indexes) if soc is not None else None
    if soc is None or patch is None:
        return
    namespace, name = soc.metadata.namespace or "", soc.metadata.name or ""
    state.kube.patch_status("serviceoncalls", namespace, name, patch)


def last_incident_dues(_: ControllerState, indexes: Indexes) -> Iterator[Due]:
    """The scheduler's: each service whose lastIncident is to write, and when (settled)."""
    for soc in indexes.all_service_on_calls():
        service = soc.spec.service.name
        at = last_incident_due(soc.status.last_incident, indexes.incident_openings(service))
        if at is not None:
            yield Due(service, at)


def write_last_incident(
    state: ControllerState, indexes: Indexes, key: Hashable, _: dt.datetime
) -> None:
    refresh_last_incident(state, indexes, str(key))


def answered_incident(
    indexes: Indexes, change: ChangeRequest, soc_namespace: str
) -> Incident | None:
    """The Incident the change names, as indexed: in the change's namespace, else where the
    service's ServiceOnCall opens them; None when it names none or neither has it."""
    ref = change.spec.incident_ref
    if ref is None:
        return None
    for namespace in (change.metadata.namespace or "", soc_namespace):
        found = indexes.incident(namespace, ref.name)
        if found is not None:
            return found
    return None


def note_rollout(
    state: ControllerState,
    indexes: Indexes,
    change: ChangeRequest,
    rollout: AnsweringRollout,
    soc_namespace: str,
) -> None:
    """Add the rollout's entry to the Incident its change names, once; quietly nothing when
    the change names none, the Incident does not exist, or the index shows the entry."""
    indexed = answered_incident(indexes, change, soc_namespace)
    if indexed is None or not owes_entry(indexed.status.timeline, rollout):
        return  # the usual case on later events: no API call
    found = (indexed.metadata.namespace or "", indexed.metadata.name or "")
    for _ in range(NOTE_TRIES):
        # The index may lag our own last write: decide on a live read, write under its version.
        body = state.kube.get_incident(*found)
        incident = parse(Incident, body) if body is not None else None
        if incident is None or not owes_entry(incident.status.timeline, rollout):
            return
        now = state.clock()
        timeline = with_timeline(incident.status.timeline, [rollout_entry(rollout, now)])
        try:
            state.kube.patch_incident_status(
                *found, {"timeline": [e.to_json() for e in timeline]},
                incident.metadata.resource_version or "",
            )  # fmt: skip
        except Conflict:
            continue
        audit(
            "IncidentAnswered", now, incident=found[1], namespace=found[0],
            change=rollout.change, record=rollout.record, result=rollout.result,
        )  # fmt: skip
        return
    log.warning("incident %s/%s: gave up noting rollout %s", *found, rollout.record)


def note_answering_rollout(
    state: ControllerState,
    indexes: Indexes,
    seen: Observation,
    change: ChangeRequest | None,
    environment: Environment,
) -> None:
    """A finished rollout under a change that names an Incident: its timeline entry. Rollbacks
    and break-glass rollouts are not the change's own; evidence past retention is history."""
    if change is None or change.spec.incident_ref is None:
        return
    if seen.basis is not AdmissionBasis.CHANGE or seen.result is None or seen.finished is None:
        return
    due = record_due(seen.finished, state.settings.retention_days)
    if due is not None and due <= state.clock():
        return
    rollout = AnsweringRollout(
        change.metadata.name or "", seen.kind.value, seen.name, seen.revision,
        seen.result.value, seen.key, seen.finished,
    )  # fmt: skip
    note_rollout(state, indexes, change, rollout, environment.soc_namespace)
