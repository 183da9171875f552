"""The outbox to external systems (pure): which steps are due, when to try again, what to record.

Each system's plan lists the step ids an object's current state calls for
(PagerDuty for an Incident: trigger, acknowledge, resolve); its `SyncState` in
`status.sync` lists those delivered and those refused for good. Due = planned
minus both, in order. The runner (handlers/controller/sync.py) makes one call,
then records it here: success appends the step; a retryable failure backs off
with full jitter (Retry-After honoured); a permanent refusal gives the step up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from changegate.api.v1alpha1.common import SecretKeyRef, SyncState, TicketSystem

# status.sync's bounds (the CRD's maxItems and maxLength): what a system may plan.
MAX_STEPS = 160
MAX_ERROR = 256


class Result(StrEnum):
    """How one call to an external system ended."""

    DELIVERED = "Delivered"
    RETRY = "Retry"  # timeouts, connection errors, 408, 429, 5xx, an open circuit
    REFUSED = "Refused"  # any other 4xx: the same call will never succeed


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a system's calls for one object go: the host (its circuit's key) and the Secret."""

    host: str
    namespace: str  # the ServiceOnCall's, where the Secret lives
    secret_refs: Mapping[str, SecretKeyRef] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one step's call came to; `error` never carries a credential."""

    result: Result
    error: str | None = None
    retry_after: float | None = None  # seconds the far side (or our own limit) asked for
    ticket_id: str | None = None
    ticket_url: str | None = None


def delivered_outcome(ticket_id: str | None = None, ticket_url: str | None = None) -> Outcome:
    return Outcome(Result.DELIVERED, ticket_id=ticket_id, ticket_url=ticket_url)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full jitter: a uniform wait in [0, min(cap, base * 2^(attempts-1))], Retry-After a floor."""

    base: float = 1.0
    cap: float = 300.0
    # A Retry-After beyond this is capped: a far side asking for an hour is tried sooner.
    max_retry_after: float = 600.0

    def delay(self, attempts: int, retry_after: float | None, draw: float) -> float:
        """Seconds to wait after the `attempts`-th failure in a row; `draw` is uniform in [0, 1)."""
        ceiling = min(self.cap, self.base * 2.0 ** max(0, attempts - 1))
        wait = draw * ceiling
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def state_of(states: Iterable[SyncState], system: TicketSystem) -> SyncState | None:
    """The outbox of `system`, if it has one."""
    return next((s for s in states if s.system is system), None)


def fresh_state(system: TicketSystem, key: str) -> SyncState:
    return SyncState(system=system, key=key)


def due_steps(planned: Sequence[str], state: SyncState | None) -> list[str]:
    """The planned steps not yet delivered nor given up, in the plan's order."""
    if state is None:
        return list(dict.fromkeys(planned))
    done = {*state.delivered, *state.failed}
    return [step for step in dict.fromkeys(planned) if step not in done]


def ready(state: SyncState | None, now: dt.datetime) -> bool:
    """Whether the next step may be tried at `now` (its backoff has passed)."""
    return state is None or state.next_attempt_time is None or state.next_attempt_time <= now


def due_time(
    planned: Sequence[str], state: SyncState | None, now: dt.datetime
) -> dt.datetime | None:
    """When the outbox next needs a call: None when nothing is due, else now or its backoff end."""
    if not due_steps(planned, state):
        return None
    if state is None or state.next_attempt_time is None:
        return now
    return max(now, state.next_attempt_time)


def _bounded(steps: Sequence[str], step: str) -> list[str]:
    return [*steps, step][-MAX_STEPS:]


def _error(text: str | None) -> str | None:
    return text[:MAX_ERROR] if text else None


def record(
    state: SyncState,
    step: str,
    outcome: Outcome,
    now: dt.datetime,
    *,
    backoff: Backoff,
    draw: float,
) -> SyncState:
    """The outbox after one call for `step`: delivered, given up, or due again after a backoff."""
    if outcome.result is Result.DELIVERED:
        return state.model_copy(
            update={
                "delivered": _bounded(state.delivered, step),
                "attempts": 0,
                "next_attempt_time": None,
                "last_attempt_time": now,
                "synced_time": now,
                "last_error": None,
                "ticket_id": outcome.ticket_id or state.ticket_id,
                "ticket_url": outcome.ticket_url or state.ticket_url,
            }
        )
    if outcome.result is Result.REFUSED:
        return state.model_copy(
            update={
                "failed": _bounded(state.failed, step),
                "attempts": 0,
                "next_attempt_time": None,
                "last_attempt_time": now,
                "last_error": _error(f"{step}: {outcome.error or 'refused'}"),
            }
        )
    attempts = state.attempts + 1
    wait = backoff.delay(attempts, outcome.retry_after, draw)
    return state.model_copy(
        update={
            "attempts": attempts,
            "next_attempt_time": now + dt.timedelta(seconds=wait),
            "last_attempt_time": now,
            "last_error": _error(f"{step}: {outcome.error or 'failed, will retry'}"),
        }
    )


def with_state(states: Iterable[SyncState], state: SyncState) -> list[SyncState]:
    """status.sync with `state` in place of its system's entry (appended when new)."""
    others = [s for s in states if s.system is not state.system]
    kept = [state if s.system is state.system else s for s in states]
    return kept if len(others) < len(kept) else [*others, state]


def summary(state: SyncState) -> str:
    """One line for people: how far the outbox got and its last error, if any."""
    parts = [f"{len(state.delivered)} delivered"]
    if state.failed:
        parts.append(f"refused: {', '.join(state.failed)}")
    if state.attempts:
        parts.append(f"{state.attempts} failed attempts")
    if state.last_error and (state.attempts or state.failed):
        parts.append(f"last error: {state.last_error}")
    return "; ".join(parts)
