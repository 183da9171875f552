"""A service's most recent Incident: what its ServiceOnCall's status.lastIncident names.

Pure: the controller indexes one small `Opening` per Incident under its service,
and hands this module a service's openings on every Incident and ServiceOnCall
event. The latest opened wins, the name (then the namespace) breaking a tie, so
every pass over the same Incidents names the same one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from changegate.api.v1alpha1.common import ObjectRef


@dataclass(frozen=True, slots=True, order=True)
class Opening:
    """When an Incident was opened, and which: ordered by time, then name, then namespace."""

    time: dt.datetime
    name: str
    namespace: str
    uid: str | None = field(default=None, compare=False)


def last_incident_ref(openings: Iterable[Opening]) -> ObjectRef | None:
    """status.lastIncident as it should read, from the service's openings (open or resolved)."""
    latest = max(openings, default=None)
    if latest is None:
        return None
    return ObjectRef(name=latest.name, namespace=latest.namespace, uid=latest.uid)
