"""Major-incident and reassignment pages are owed by level, on a bounded record of their own.

The timeline keeps its last 128 entries; once notes push the "MajorIncidentPaged" or
"Reassigned" entries out, nothing must page again, and each new reassignment must
still get a key of its own (a repeated key is dropped by the channels as a duplicate).
"""

from __future__ import annotations

import datetime as dt

from changegate.api.v1alpha1.common import AuditEntry
from changegate.api.v1alpha1.incident import Incident
from changegate.core.incident.lifecycle import with_timeline
from changegate.handlers.controller.incidents import (
    MAJOR_PAGED,
    REASSIGNED,
    due_of,
    next_batch,
)
from tests.unit.controller.test_incidents_glue import (
    MANAGERS,
    PAYMENTS,
    SEARCH,
    T0,
    directory,
    incident,
    sent_to,
    settle,
)


def with_notes(found: Incident, count: int, now: dt.datetime) -> Incident:
    """`count` progress notes on the timeline, as people add them."""
    notes = [
        AuditEntry(time=now, actor="alice", action="Noted", message=f"n{i}") for i in range(count)
    ]
    status = found.status.model_copy(
        update={"timeline": with_timeline(found.status.timeline, notes)}
    )
    return found.model_copy(update={"status": status})


def owned_by(found: Incident, service: str) -> Incident:
    return found.model_copy(update={"spec": found.spec.model_copy(update={"service": service})})


def test_a_major_incident_is_paged_once_even_after_its_timeline_entry_dropped_off() -> None:
    where = directory(PAYMENTS, SEARCH, MANAGERS)
    paged = sent_to(incident(), where, T0)
    major = paged.model_copy(update={"spec": paged.spec.model_copy(update={"major": True})})
    done = sent_to(major, where, T0)
    assert done.status.escalation is not None
    assert done.status.escalation.major_paged_time == T0
    later = T0 + dt.timedelta(seconds=10)
    crowded = with_notes(done, 200, later)
    assert len(crowded.status.timeline) == 128
    assert all(e.action != MAJOR_PAGED for e in crowded.status.timeline)
    assert next_batch(settle(crowded, where, later), where, later) is None
    assert due_of(crowded, later) != later  # nothing waits on the major pages


def test_each_reassignment_pages_once_under_a_key_of_its_own_whatever_the_timeline_kept() -> None:
    where = directory(PAYMENTS, SEARCH)
    current = sent_to(incident(), where, T0)
    keys: list[str] = []
    for turn, owner in enumerate(["search", "payments", "search"], start=1):
        now = T0 + dt.timedelta(seconds=turn)
        moved = owned_by(with_notes(current, 200, now), owner)
        assert all(e.action != REASSIGNED for e in moved.status.timeline)
        batch = next_batch(settle(moved, where, now), where, now)
        assert batch is not None
        assert batch.owner == owner
        keys.extend(o.page.idempotency_key for o in batch.outbound)
        current = sent_to(moved, where, now)
        assert current.status.escalation is not None
        assert current.status.escalation.reassignments == turn
        assert next_batch(settle(current, where, now), where, now) is None  # paged once
    assert len(keys) == 3
    assert len(set(keys)) == 3
