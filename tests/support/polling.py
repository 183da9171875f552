"""Waiting for the cluster to reach a state, with a deadline and without sleeping blind.

Tests call `wait_for` with a predicate; it returns the first truthy value the
predicate gives, or fails the test with a message once the deadline passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.1,
    message: str = "",
) -> T:
    """Poll `predicate` until it returns something truthy; return that value.

    Exceptions raised by the predicate count as "not yet" and the last one is
    reported if the deadline passes, so a predicate may simply read an object
    that does not exist yet.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    last_value: object = None
    while True:
        try:
            value = predicate()
        except Exception as error:
            last_error = error
        else:
            if value:
                return value
            last_value = value
        if time.monotonic() >= deadline:
            detail = f"last error: {last_error!r}" if last_error else f"last value: {last_value!r}"
            raise AssertionError(
                f"timed out after {timeout}s waiting for {message or predicate}; {detail}"
            )
        time.sleep(interval)
