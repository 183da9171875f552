"""The circuit per endpoint: consecutive failures open it, a cool-down lets one trial through."""

from __future__ import annotations

import datetime as dt

from changegate.adapters.notify.circuit import CircuitPolicy, Circuits

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def seconds(n: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def test_failures_below_the_threshold_keep_it_closed_and_a_success_resets() -> None:
    circuits = Circuits(CircuitPolicy(threshold=3, cool_down=30))
    circuits.failed("pd", T0)
    circuits.failed("pd", T0)
    circuits.succeeded("pd")
    circuits.failed("pd", T0)
    circuits.failed("pd", T0)
    assert circuits.closed_in("pd", T0) == 0


def test_the_threshold_opens_it_for_that_endpoint_only() -> None:
    circuits = Circuits(CircuitPolicy(threshold=3, cool_down=30))
    for _ in range(3):
        circuits.failed("dead.example.com", T0)
    assert circuits.closed_in("dead.example.com", seconds(10)) == 20
    assert circuits.closed_in("alive.example.com", seconds(10)) == 0


def test_after_the_cool_down_one_trial_goes_through_and_its_failure_reopens() -> None:
    circuits = Circuits(CircuitPolicy(threshold=2, cool_down=30))
    circuits.failed("pd", T0)
    circuits.failed("pd", T0)
    assert circuits.closed_in("pd", seconds(30)) == 0  # the trial
    assert circuits.closed_in("pd", seconds(31)) == 29  # no second trial meanwhile
    circuits.failed("pd", seconds(32))
    assert circuits.is_open("pd", seconds(40))
    circuits.succeeded("pd")
    assert not circuits.is_open("pd", seconds(40))
