"""A service's most recent Incident: what its ServiceOnCall's status.lastIncident names.

Pure: the controller indexes one small `Opening` per Incident under its service.
The latest opened wins, the name (then the namespace) breaking a tie, so every
pass over the same Incidents names the same one. `last_incident_due` tells the
scheduler when to write it: SETTLE after the first Incident the status does not
show yet, so an alert storm writes each service's status once per SETTLE, not
once per Incident (every write of a ServiceOnCall is a watch event for every
watcher of them, the webhook's cache included).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from changegate.api.v1alpha1.common import ObjectRef

SETTLE = dt.timedelta(seconds=30)
AT_ONCE = dt.datetime.min.replace(tzinfo=dt.UTC)


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


def last_incident_due(written: ObjectRef | None, openings: list[Opening]) -> dt.datetime | None:
    """When status.lastIncident (now `written`) must be written again, or None: it is right.

    At once when it names an Incident that is gone; else SETTLE after the first opening
    newer than the one it names (all of them, when it names none).
    """
    if last_incident_ref(openings) == written:
        return None
    shown = next(
        (
            o
            for o in openings
            if written and (o.namespace, o.name) == (written.namespace, written.name)
        ),
        None,
    )
    if written is not None and shown is None:
        return AT_ONCE
    newer = [o for o in openings if shown is None or o > shown]
    return min(newer).time + SETTLE if newer else AT_ONCE
