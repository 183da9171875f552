"""A circuit per endpoint (host): after consecutive failures, calls there fail fast for a while.

The outbox runner (handlers/controller/sync.py) asks before each call and
reports each outcome. A dead vendor thus costs a few timeouts, then one fast
refusal per due step until the cool-down passes and one trial call is let
through (half-open): its success closes the circuit, its failure opens it again.
Held in memory: a restarted controller starts closed, which costs at most the
few failures that open it again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass
class _Endpoint:
    failures: int = 0
    open_until: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    """How many failures in a row open a circuit, and for how long."""

    threshold: int = 3
    cool_down: float = 30.0


class Circuits:
    """The circuits of every endpoint the controller calls, by host."""

    def __init__(self, policy: CircuitPolicy | None = None) -> None:
        self.policy = policy or CircuitPolicy()
        self._endpoints: dict[str, _Endpoint] = {}

    def closed_in(self, endpoint: str, now: dt.datetime) -> float:
        """Seconds until a call to `endpoint` may be made: 0 when it may be made now.

        At the end of the cool-down one call goes through (half-open) and the
        circuit stays open for another cool-down unless that call succeeds.
        """
        state = self._endpoints.get(endpoint)
        if state is None or state.open_until is None:
            return 0.0
        if now >= state.open_until:
            state.open_until = now + dt.timedelta(seconds=self.policy.cool_down)
            return 0.0
        return (state.open_until - now).total_seconds()

    def succeeded(self, endpoint: str) -> None:
        self._endpoints.pop(endpoint, None)

    def failed(self, endpoint: str, now: dt.datetime) -> None:
        """One more failure in a row; the threshold reached opens (or reopens) the circuit."""
        state = self._endpoints.setdefault(endpoint, _Endpoint())
        state.failures += 1
        if state.failures >= self.policy.threshold:
            state.open_until = now + dt.timedelta(seconds=self.policy.cool_down)

    def is_open(self, endpoint: str, now: dt.datetime) -> bool:
        state = self._endpoints.get(endpoint)
        return state is not None and state.open_until is not None and now < state.open_until
