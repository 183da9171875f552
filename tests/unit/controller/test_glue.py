"""The controller's glue where it has logic: status patches, index questions, the scheduler.

No API server: the indexes are plain dicts shaped like Kopf's (key -> values),
the adapter a small fake that records what would be written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

import pytest

from changegate.adapters.kube import Conflict
from changegate.core.schedule import Due
from changegate.handlers.controller.indexes import DEFAULT_VALIDITY_SECONDS, Indexes, snapshot
from changegate.handlers.controller.schedule import TICK, Job, run_due
from changegate.handlers.controller.state import ControllerState
from changegate.handlers.controller.status import status_patch
from changegate.settings import Role, Settings
from tests.unit.builders import NOW, at

CONDITION = {"type": "Approved", "status": "True", "reason": "Approved", "message": "ok"}


@pytest.mark.parametrize(
    ("current", "wanted", "patch"),
    [
        ({"phase": "Pending"}, {"phase": "Pending"}, None),
        (
            {"conditions": [CONDITION | {"lastTransitionTime": "2026-01-01T00:00:00Z"}]},
            {"conditions": [CONDITION | {"lastTransitionTime": "2026-02-02T00:00:00Z"}]},
            None,  # only a transition time moved: nothing to write
        ),
        ({"phase": "Pending"}, {"phase": "Approved"}, {"phase": "Approved"}),
        ({"phase": "Pending", "usedCount": 1}, {"phase": "Pending"}, {"usedCount": None}),
    ],
)
def test_status_patch(
    current: dict[str, Any], wanted: dict[str, Any], patch: dict[str, Any] | None
) -> None:
    assert status_patch(current, wanted) == patch


def indexes(**stores: Any) -> Indexes:
    """Kopf's indexes as a handler gets them: `stores` by name, every other required one empty."""
    empty: dict[str, Any] = {}
    names = [
        "environments_by_namespace",
        "service_on_calls",
        "policies_by_service",
        "validity_by_service",
        "changes_by_name",
        "standard_changes_by_template",
        "expiry_by_change",
        "templates_by_name",
        "records_by_name",
        "running_deployments",
        "running_statefulsets",
        "running_daemonsets",
    ]
    return Indexes.of({name: empty for name in names} | stores)


def test_index_questions() -> None:
    running = {("ns", "Deployment", "api"): [({"api": "img:1"}, {"app": "api"})]}
    found = indexes(
        running_deployments=running,
        validity_by_service={"pay": [600]},
        records_by_name={"ns.api.2": [at(-1)]},
    )
    assert found.running_workloads("ns", [("Deployment", "api"), ("StatefulSet", "db")]) == (
        {("Deployment", "api"): {"api": "img:1"}},
        {("Deployment", "api"): {"app": "api"}},
    )
    assert found.validity_seconds("pay") == 600
    assert found.validity_seconds("other") == DEFAULT_VALIDITY_SECONDS
    assert found.record_exists("ns.api.2")
    assert not found.record_exists("ns.api.3")
    assert list(found.record_finishes()) == [("ns.api.2", at(-1))]


def scheduler_state() -> ControllerState:
    return ControllerState(Settings(Role.CONTROLLER), kube=None, clock=lambda: NOW)  # type: ignore[arg-type]


def test_the_scheduler_runs_what_is_due_keeps_failures_due_and_sleeps_until_the_next() -> None:
    ran: list[Hashable] = []

    def run(_: ControllerState, __: Indexes, key: Hashable, now: dt.datetime) -> None:
        if key == "refused":
            raise Conflict(409, "Conflict", "changed meanwhile")
        ran.append(key)

    def dues(_: ControllerState, __: Indexes) -> list[Due]:
        return [Due("refused", at(-1)), Due("due", NOW), Due("next", NOW + dt.timedelta(seconds=2))]

    sleep = asyncio.run(run_due(scheduler_state(), indexes(), [Job("test", dues, run)]))
    assert ran == ["due"]  # the refused one did not stop the pass
    assert sleep == pytest.approx(2.0)
    assert sleep < TICK


class ChangingIndex(Mapping[str, list[int]]):
    """A Mapping like Kopf's indexes, which Kopf changes while a thread reads it: each
    lookup drops another key (as an object deleted meanwhile would)."""

    def __init__(self, **items: list[int]) -> None:
        self.items_ = dict(items)

    def __getitem__(self, key: str) -> list[int]:
        found = self.items_[key]
        for other in [k for k in self.items_ if k != key][:1]:
            del self.items_[other]
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self.items_)

    def __len__(self) -> int:
        return len(self.items_)


def test_a_snapshot_of_an_index_changed_meanwhile_skips_what_went_and_never_fails() -> None:
    index = ChangingIndex(a=[1], b=[2], c=[3], d=[4])
    with pytest.raises(RuntimeError, match="changed size during iteration"):
        [v for store in index.values() for v in store]  # what the handlers did before
    taken = snapshot(ChangingIndex(a=[1], b=[2], c=[3], d=[4]))
    assert taken[0] == ("a", [1])
    assert len(taken) < 4  # the keys dropped meanwhile are skipped
    assert all(values == [ord(key) - ord("a") + 1] for key, values in taken)
