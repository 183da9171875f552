"""core/sync.py: due steps, backoff with full jitter and Retry-After, what each outcome records."""

from __future__ import annotations

import datetime as dt

import pytest

from changegate.api.v1alpha1.common import SyncState, TicketSystem
from changegate.core.sync import (
    Backoff,
    Outcome,
    Result,
    due_steps,
    due_time,
    fresh_state,
    ready,
    record,
    state_of,
    summary,
    with_state,
)

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
PD = TicketSystem.PAGER_DUTY
SN = TicketSystem.SERVICE_NOW


def state(**fields: object) -> SyncState:
    return SyncState.model_validate({"system": PD, "key": "uid-1", **fields})


@pytest.mark.parametrize(
    ("planned", "delivered", "failed", "due"),
    [
        (["trigger"], [], [], ["trigger"]),
        (["trigger", "acknowledge", "resolve"], ["trigger"], [], ["acknowledge", "resolve"]),
        (["trigger", "resolve"], ["trigger", "acknowledge"], [], ["resolve"]),
        (["trigger", "acknowledge"], [], ["trigger"], ["acknowledge"]),
        (["trigger", "trigger"], [], [], ["trigger"]),
        ([], ["trigger"], [], []),
    ],
)
def test_due_is_planned_minus_delivered_and_refused_in_order(
    planned: list[str], delivered: list[str], failed: list[str], due: list[str]
) -> None:
    assert due_steps(planned, state(delivered=delivered, failed=failed)) == due


def test_with_no_outbox_yet_every_planned_step_is_due_now() -> None:
    assert due_steps(["trigger"], None) == ["trigger"]
    assert due_time(["trigger"], None, NOW) == NOW
    assert due_time([], None, NOW) is None


def test_a_backoff_in_the_future_defers_the_due_time() -> None:
    later = NOW + dt.timedelta(seconds=30)
    waiting = state(next_attempt_time=later)
    assert not ready(waiting, NOW)
    assert ready(waiting, later)
    assert due_time(["trigger"], waiting, NOW) == later
    assert due_time(["trigger"], state(delivered=["trigger"], next_attempt_time=later), NOW) is None


@pytest.mark.parametrize(
    ("attempts", "retry_after", "draw", "wait"),
    [
        (1, None, 0.0, 0.0),  # full jitter may retry at once
        (1, None, 0.5, 0.5),  # base 1 s
        (3, None, 0.5, 2.0),  # ceiling 4 s
        (20, None, 0.999, 299.7),  # capped at 300 s
        (1, 7.0, 0.1, 7.0),  # Retry-After is a floor
        (10, 7.0, 0.5, 150.0),  # ... never a ceiling
        (1, 7200.0, 0.5, 600.0),  # an hour-long Retry-After is capped
    ],
)
def test_backoff_is_full_jitter_with_retry_after_as_a_floor(
    attempts: int, retry_after: float | None, draw: float, wait: float
) -> None:
    assert Backoff().delay(attempts, retry_after, draw) == pytest.approx(wait)


def test_delivery_appends_the_step_and_clears_the_failures() -> None:
    before = state(delivered=["trigger"], attempts=3, last_error="trigger: HTTP 500")
    after = record(
        before,
        "acknowledge",
        Outcome(Result.DELIVERED, ticket_id="Q1"),
        NOW,
        backoff=Backoff(),
        draw=0.5,
    )
    assert after.delivered == ["trigger", "acknowledge"]
    assert (after.attempts, after.next_attempt_time, after.last_error) == (0, None, None)
    assert after.synced_time == NOW
    assert after.ticket_id == "Q1"


def test_a_retryable_failure_counts_and_backs_off() -> None:
    after = record(
        state(attempts=1),
        "trigger",
        Outcome(Result.RETRY, "HTTP 429", 5.0),
        NOW,
        backoff=Backoff(),
        draw=0.0,
    )
    assert after.attempts == 2
    assert after.next_attempt_time == NOW + dt.timedelta(seconds=5)
    assert after.last_error == "trigger: HTTP 429"
    assert after.delivered == []
    assert after.failed == []


def test_a_refusal_gives_the_step_up_and_moves_on() -> None:
    after = record(
        state(attempts=2),
        "trigger",
        Outcome(Result.REFUSED, "HTTP 400: invalid event"),
        NOW,
        backoff=Backoff(),
        draw=0.5,
    )
    assert after.failed == ["trigger"]
    assert after.attempts == 0
    assert after.next_attempt_time is None
    assert after.last_error == "trigger: HTTP 400: invalid event"
    assert due_steps(["trigger", "resolve"], after) == ["resolve"]


def test_errors_are_bounded_to_the_api_field() -> None:
    after = record(
        state(), "trigger", Outcome(Result.RETRY, "x" * 1000), NOW, backoff=Backoff(), draw=0
    )
    assert after.last_error is not None
    assert len(after.last_error) == 256
    SyncState.model_validate(after.to_json())


def test_with_state_replaces_its_system_and_keeps_the_others() -> None:
    pd, sn = fresh_state(PD, "u"), fresh_state(SN, "u")
    assert with_state([], pd) == [pd]
    updated = pd.model_copy(update={"delivered": ["trigger"]})
    assert with_state([sn, pd], updated) == [sn, updated]
    assert state_of([sn, updated], PD) == updated
    assert state_of([sn], PD) is None


def test_the_summary_names_refusals_and_the_last_error() -> None:
    assert summary(state(delivered=["trigger"])) == "1 delivered"
    text = summary(state(delivered=["trigger"], failed=["resolve"], last_error="resolve: HTTP 400"))
    assert text == "1 delivered; refused: resolve; last error: resolve: HTTP 400"
