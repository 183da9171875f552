"""wait_for returns the first truthy value or fails with what it last saw."""

from __future__ import annotations

import itertools

import pytest

from tests.support.polling import wait_for


def test_returns_the_first_truthy_value() -> None:
    values = iter([None, 0, "", "ready", "later"])
    assert wait_for(lambda: next(values), timeout=5, interval=0) == "ready"


def test_errors_count_as_not_yet() -> None:
    calls = itertools.count()

    def flaky() -> int:
        n = next(calls)
        if n < 3:
            raise LookupError("not there yet")
        return n

    assert wait_for(flaky, timeout=5, interval=0) == 3


def test_fails_after_the_deadline_with_the_last_error() -> None:
    def never() -> None:
        raise LookupError("still missing")

    with pytest.raises(AssertionError, match="still missing"):
        wait_for(never, timeout=0.05, interval=0.01, message="the thing")
