"""A service's most recent Incident: what its ServiceOnCall's status.lastIncident names.

Pure: the controller hands it the Incidents it indexes, on every Incident and
ServiceOnCall event. The latest created wins, the name (then the namespace)
breaking a tie, so every pass over the same Incidents names the same one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from changegate.api.v1alpha1.common import ObjectRef
from changegate.api.v1alpha1.incident import Incident

NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)


def opened_time(incident: Incident) -> dt.datetime:
    """When it was opened: its creation, else when it triggered (a body not yet stored)."""
    return incident.metadata.creation_timestamp or incident.status.triggered_time or NEVER


def latest_incident(incidents: Iterable[Incident], service: str) -> Incident | None:
    """The service's incident opened last, open or resolved; None when it has none."""
    return max(
        (i for i in incidents if i.spec.service == service),
        key=lambda i: (opened_time(i), i.metadata.name or "", i.metadata.namespace or ""),
        default=None,
    )


def last_incident_ref(incidents: Iterable[Incident], service: str) -> ObjectRef | None:
    """status.lastIncident as it should read."""
    latest = latest_incident(incidents, service)
    if latest is None:
        return None
    metadata = latest.metadata
    return ObjectRef(name=metadata.name or "", namespace=metadata.namespace, uid=metadata.uid)
