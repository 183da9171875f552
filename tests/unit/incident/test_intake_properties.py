"""Invariants of the merge under Alertmanager's at-least-once delivery.

Hypothesis draws a group's true history: over a few cycles, each of three
alerts may fire once and resolve; overlapping firings form one episode.
Alertmanager posts the group's snapshot after every change, in order, and
any post may be delivered again at any later moment. Whatever the
interleaving of duplicates and resolutions:

- there is one Incident per episode, listing exactly that episode's alerts,
  and every Incident ends resolved (AutoResolved);
- applying any post twice in a row equals applying it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from changegate.core.incident.intake import Episode, Outcome, merge
from tests.unit.incident.builders import alert, at, delivery

FINGERPRINTS = ("a1", "b2", "c3")
CYCLE = 100  # minutes between cycles; every firing lies within the first half of its cycle


@dataclass(frozen=True)
class Firing:
    """One alert instance: when it fired and when it resolved, in minutes."""

    fingerprint: str
    start: int
    end: int


def episodes_of(firings: list[Firing]) -> list[list[Firing]]:
    """Firings grouped into episodes: runs of overlapping intervals."""
    episodes: list[list[Firing]] = []
    latest_end = -1
    for firing in sorted(firings, key=lambda f: f.start):
        if not episodes or firing.start >= latest_end:
            episodes.append([])
        episodes[-1].append(firing)
        latest_end = max(latest_end, firing.end)
    return episodes


def posts_of(episode: list[Firing]) -> list[list[dict[str, Any]]]:
    """Alertmanager's snapshots of the group after each change within one episode."""
    moments = sorted({f.start for f in episode} | {f.end for f in episode})
    posts = []
    for moment in moments:
        started = [f for f in episode if f.start <= moment]
        posts.append(
            [
                alert(f.fingerprint, starts=f.start, ends=f.end if f.end <= moment else None)
                for f in started
            ]
        )
    return posts


@st.composite
def histories(draw: st.DrawFn) -> list[Firing]:
    firings = []
    for cycle in range(draw(st.integers(1, 3))):
        for fingerprint in draw(st.sets(st.sampled_from(FINGERPRINTS), min_size=1)):
            start = draw(st.integers(0, 40))
            length = draw(st.integers(1, 10))
            firings.append(
                Firing(fingerprint, cycle * CYCLE + start, cycle * CYCLE + start + length)
            )
    return firings


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[list[Firing]], list[list[dict[str, Any]]]]:
    """The true episodes, and the posts as delivered: in order, with late duplicates."""
    episodes = episodes_of(draw(histories()))
    posts = [post for episode in episodes for post in posts_of(episode)]
    replays = draw(
        st.lists(st.tuples(st.integers(0, len(posts) - 1), st.integers(0, 20)), max_size=12)
    )
    delivered = []
    for index, post in enumerate(posts):
        delivered.append(post)
        delivered.extend(posts[source] for source, delay in replays if source + delay == index)
    delivered.extend(posts[source] for source, delay in replays if source + delay >= len(posts))
    return episodes, delivered


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_one_incident_per_episode_and_twice_equals_once(
    scenario: tuple[list[list[Firing]], list[list[dict[str, Any]]]],
) -> None:
    truth, delivered = scenario
    incidents: list[Episode] = []
    for index, post in enumerate(delivered):
        latest = incidents[-1] if incidents else None
        result = merge(latest, delivery(*post), at(index))
        if result.outcome is Outcome.OPENED:
            incidents.append(result.episode)  # type: ignore[arg-type]
        elif result.outcome is not Outcome.UNCHANGED:
            incidents[-1] = result.episode  # type: ignore[assignment]
        again = merge(incidents[-1] if incidents else None, delivery(*post), at(index))
        assert again.outcome is Outcome.UNCHANGED
    assert [{a.fingerprint for a in i.alerts} for i in incidents] == [
        {f.fingerprint for f in episode} for episode in truth
    ]
    assert all(i.resolved and not i.firing for i in incidents)
