"""ServiceOnCall status.lastIncident's choice, from the service's openings: the incident
opened last, the name (then the namespace) breaking a tie; none is None."""

from __future__ import annotations

import datetime as dt

import pytest

from changegate.core.incident.latest import (
    AT_ONCE,
    SETTLE,
    Opening,
    last_incident_due,
    last_incident_ref,
)

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def opening(name: str, minutes: float, namespace: str = "pay") -> Opening:
    return Opening(T0 + dt.timedelta(minutes=minutes), name, namespace, f"uid-{name}")


@pytest.mark.parametrize(
    ("openings", "want"),
    [
        ([], None),
        ([opening("inc-a", 1), opening("inc-b", 5), opening("inc-c", 3)], "inc-b"),
        ([opening("inc-b", 5), opening("inc-a", 5)], "inc-b"),  # same second: the name
        ([opening("inc-a", 5, "x"), opening("inc-a", 5, "y")], "inc-a"),
    ],
    ids=["none", "newest", "tie-by-name", "tie-by-namespace"],
)
def test_the_latest_opening_wins(openings: list[Opening], want: str | None) -> None:
    ref = last_incident_ref(openings)
    assert (ref.name if ref else None) == want


def test_the_order_seen_never_changes_the_answer() -> None:
    openings = [
        opening("inc-a", 5, "y"),
        opening("inc-b", 5),
        opening("inc-a", 5, "x"),
        opening("inc-0", 1),
    ]
    for order in (openings, openings[::-1], sorted(openings)):
        assert last_incident_ref(order) == last_incident_ref([opening("inc-b", 5)])


def test_the_reference_names_namespace_and_uid() -> None:
    ref = last_incident_ref([opening("inc-1", 1, namespace="team-pay")])
    assert ref is not None
    assert ref.to_json() == {"name": "inc-1", "namespace": "team-pay", "uid": "uid-inc-1"}


def test_the_write_is_due_settled_after_the_first_incident_not_shown() -> None:
    """An alert storm: three Incidents opening after the one shown are written once, SETTLE
    after the first of them; nothing is due once the status shows the latest."""
    shown = opening("inc-0", 0)
    storm = [shown, opening("inc-1", 1), opening("inc-2", 2), opening("inc-3", 3)]
    written = last_incident_ref([shown])
    assert last_incident_due(written, storm) == storm[1].time + SETTLE
    assert last_incident_due(last_incident_ref(storm), storm) is None


def test_nothing_shown_yet_is_due_settled_after_the_first_and_a_gone_one_at_once() -> None:
    first, second = opening("inc-1", 1), opening("inc-2", 2)
    assert last_incident_due(None, [second, first]) == first.time + SETTLE
    assert last_incident_due(None, []) is None
    gone = last_incident_ref([opening("inc-9", 9)])
    assert last_incident_due(gone, [first]) == AT_ONCE  # deleted: fall back now
    assert last_incident_due(gone, []) == AT_ONCE  # deleted, none left: clear now
