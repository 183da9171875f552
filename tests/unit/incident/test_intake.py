"""Merging deliveries into episodes, one rule per table row, and the status round trip."""

from __future__ import annotations

from dataclasses import replace

import pytest

from changegate.api.v1alpha1.incident import (
    Incident,
    IncidentOrigin,
    IncidentSpec,
    IncidentStatus,
    Resolution,
    ResolutionCode,
    Severity,
    SourceAlert,
)
from changegate.core.incident.intake import (
    MAX_TRACKED_ALERTS,
    Episode,
    Merge,
    Outcome,
    episode_of,
    merge,
    status_alerts,
)
from tests.unit.incident.builders import alert, at, delivery

NOW = at(60)


def apply(*posts: list[dict[str, object]]) -> tuple[list[Episode], list[Merge]]:
    """Each post merged into the latest episode, as the intake would persist it."""
    episodes: list[Episode] = []
    merges = []
    for alerts in posts:
        result = merge(episodes[-1] if episodes else None, delivery(*alerts), NOW)
        merges.append(result)
        if result.outcome is Outcome.OPENED:
            episodes.append(result.episode)  # type: ignore[arg-type]
        elif result.outcome is not Outcome.UNCHANGED:
            episodes[-1] = result.episode  # type: ignore[assignment]
    return episodes, merges


def states(episode: Episode) -> dict[str, bool]:
    return {a.fingerprint: a.firing for a in episode.alerts}


FIRE_A = [alert("a1", starts=0)]
FIRE_AB = [alert("a1", starts=0), alert("b2", starts=1)]
A_RESOLVED_B_FIRING = [alert("a1", starts=0, ends=5), alert("b2", starts=1)]
BOTH_RESOLVED = [alert("a1", starts=0, ends=5), alert("b2", starts=1, ends=6)]
A_RESOLVED = [alert("a1", starts=0, ends=5)]
A_AGAIN = [alert("a1", starts=30)]


@pytest.mark.parametrize(
    ("posts", "outcomes", "incidents", "last"),
    [
        ([FIRE_A], ["Opened"], 1, {"a1": True}),
        ([FIRE_A, FIRE_A], ["Opened", "Unchanged"], 1, {"a1": True}),
        ([FIRE_AB, A_RESOLVED_B_FIRING], ["Opened", "Updated"], 1, {"a1": False, "b2": True}),
        ([FIRE_AB, A_RESOLVED_B_FIRING, A_RESOLVED_B_FIRING], ["Opened", "Updated", "Unchanged"], 1, {"a1": False, "b2": True}),
        ([FIRE_AB, A_RESOLVED_B_FIRING, BOTH_RESOLVED], ["Opened", "Updated", "AutoResolved"], 1, {"a1": False, "b2": False}),
        ([FIRE_A, A_RESOLVED, A_AGAIN], ["Opened", "AutoResolved", "Opened"], 2, {"a1": True}),
        # A late duplicate of the firing post after the resolution: the alert's times say it is old.
        ([FIRE_A, A_RESOLVED, FIRE_A], ["Opened", "AutoResolved", "Unchanged"], 1, {"a1": False}),
        # Resolution overtakes the firing post: resolved by the times, not the arrival order.
        ([FIRE_AB, BOTH_RESOLVED, A_RESOLVED_B_FIRING], ["Opened", "AutoResolved", "Unchanged"], 1, {"a1": False, "b2": False}),
        ([A_RESOLVED], ["Unchanged"], 0, None),
        # A replay from the first episode while the second is open changes nothing.
        ([FIRE_AB, BOTH_RESOLVED, A_AGAIN, [alert("b2", starts=1)]], ["Opened", "AutoResolved", "Opened", "Unchanged"], 2, {"a1": True}),
        # The same alert firing again within an open episode is a new instance of it.
        ([FIRE_AB, A_RESOLVED_B_FIRING, [alert("a1", starts=10), alert("b2", starts=1)]], ["Opened", "Updated", "Updated"], 1, {"a1": True, "b2": True}),
    ],
    ids=[
        "first-fires", "duplicate", "one-resolves", "duplicate-resolution", "all-resolve",
        "fires-again", "late-duplicate", "out-of-order", "resolved-without-incident",
        "replay-of-old-episode", "refires-while-open",
    ],
)  # fmt: skip
def test_merge_rules(
    posts: list[list[dict[str, object]]],
    outcomes: list[str],
    incidents: int,
    last: dict[str, bool] | None,
) -> None:
    episodes, merges = apply(*posts)
    assert [m.outcome.value for m in merges] == outcomes
    assert len(episodes) == incidents
    assert (states(episodes[-1]) if episodes else None) == last


def test_one_alert_resolving_changes_only_that_alert() -> None:
    (episode,), merges = apply(FIRE_AB, A_RESOLVED_B_FIRING)
    before, after = merges[0].episode.by_fingerprint(), episode.by_fingerprint()  # type: ignore[union-attr]
    assert after["b2"] == before["b2"]
    assert (after["a1"].firing, after["a1"].end) == (False, at(5))
    assert [e.action for e in merges[1].timeline] == ["AlertsResolved", "AlertsRouted"]


def test_opening_says_what_fired_and_why_it_came_here() -> None:
    _, (opened,) = apply(
        [alert("a1", labels={"severity": "warning"}), alert("b2", labels={"severity": "critical"})]
    )
    assert [e.action for e in opened.timeline] == ["Opened", "AlertsFiring", "AlertsRouted"]
    assert "label service=payments names the service" in opened.timeline[2].message
    assert opened.severity is Severity.CRITICAL
    assert all(e.actor == "changegate" for e in opened.timeline)


def test_a_new_episode_remembers_when_the_previous_one_ended() -> None:
    episodes, merges = apply(FIRE_AB, BOTH_RESOLVED, A_AGAIN)
    assert merges[1].timeline[-1].action == "AutoResolved"
    assert episodes[1].previous_end == at(6)


def test_a_persons_resolution_holds_until_a_new_instance_fires() -> None:
    (episode,), _ = apply(FIRE_A)
    by_hand = replace(episode, resolved=True)
    assert merge(by_hand, delivery(*FIRE_A), NOW).outcome is Outcome.UNCHANGED
    assert merge(by_hand, delivery(*A_RESOLVED), NOW).outcome is Outcome.UNCHANGED
    assert merge(by_hand, delivery(*A_AGAIN), NOW).outcome is Outcome.OPENED


def test_truncated_posts_are_noted() -> None:
    opened = merge(None, delivery(*FIRE_A, truncatedAlerts=7), NOW)
    assert opened.timeline[-1].message == "Alertmanager left out 7 alerts (its max_alerts)"


def test_an_incident_tracks_a_bounded_number_of_alerts_firing_first_and_stays_idempotent() -> None:
    many = [alert(f"{i:x}", starts=i / 100) for i in range(MAX_TRACKED_ALERTS + 5)]
    opened = merge(None, delivery(alert("ffff", starts=-1, ends=0), *many), NOW)
    assert opened.episode is not None
    assert len(opened.episode.alerts) == MAX_TRACKED_ALERTS
    assert all(a.firing for a in opened.episode.alerts)
    assert "6 alerts not tracked" in opened.timeline[-1].message
    again = merge(opened.episode, delivery(*many), NOW)
    assert again.outcome is Outcome.UNCHANGED


def test_an_episode_survives_the_round_trip_through_an_incident() -> None:
    (episode,), _ = apply(FIRE_AB, A_RESOLVED_B_FIRING)
    incident = Incident(
        spec=IncidentSpec(
            service="payments", summary="s", severity=Severity.HIGH, origin=IncidentOrigin.ALERT,
            alert=SourceAlert(fingerprint="a1", name="HighErrorRate"),
        ),
        status=IncidentStatus(alerts=status_alerts(episode), previous_episode_end_time=at(-10)),
    )  # fmt: skip
    assert episode_of(incident) == replace(episode, previous_end=at(-10))
    resolved = incident.model_copy(
        update={
            "spec": incident.spec.model_copy(
                update={"resolution": Resolution(code=ResolutionCode.FIXED, note="n")}
            )
        }
    )
    assert episode_of(resolved).resolved
