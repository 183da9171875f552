"""What the webhook's change cache keeps: live changes whole, finished ones only for rollbacks.

Compaction must never change a decision: for each change below, a rollout and a
rollback are decided the same with the compacted facts as with the full ones.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from changegate.core.change.admission import decide_rollout
from changegate.core.change.compaction import compact, finished
from changegate.core.change.facts import ChangeFacts
from tests.unit.builders import (
    NEW_IMAGE,
    NOW,
    OLD_IMAGE,
    approval,
    facts,
    policy,
    rollout,
    update,
    workload_body,
)

DONE = [rollout(finish=-1)]
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("pending", {}, "whole"),
    ("approved", {"approvals": [approval()]}, "whole"),
    ("in progress and cancelled", {"phase": "InProgress", "cancel": True}, "whole"),
    (
        "emergency with a rejection",
        {"type": "Emergency", "approvals": [approval(decision="Rejected")]},
        "whole",
    ),
    (
        "approved, then rejected",
        {"phase": "Approved", "approvals": [approval(decision="Rejected")]},
        "whole",
    ),
    ("rejected by approvals", {"approvals": [approval(decision="Rejected")]}, "dropped"),
    ("rejected", {"phase": "Rejected"}, "dropped"),
    ("cancelled in spec", {"cancel": True}, "dropped"),
    ("cancelled", {"phase": "Cancelled"}, "dropped"),
    ("expired", {"phase": "Expired"}, "dropped"),
    (
        "failed, nothing deployed",
        {"phase": "Failed", "rollouts": [rollout(result="Failed")]},
        "dropped",
    ),
    ("failed after one target deployed", {"phase": "Failed", "rollouts": DONE}, "rollback only"),
    ("completed", {"phase": "Completed", "rollouts": DONE}, "rollback only"),
    (
        "completed beyond any horizon",
        {"phase": "Completed", "rollouts": [rollout(start=-11 * 365 * 24, finish=-11 * 365 * 24)]},
        "dropped",
    ),
]


def kept_as(change: ChangeFacts) -> str:
    kept = compact(change, NOW)
    if kept is None:
        return "dropped"
    if kept == change:
        return "whole"
    assert finished(change)
    assert all(not t.images for t in kept.targets)
    assert kept.deployed_refs == change.deployed_refs
    return "rollback only"


@pytest.mark.parametrize(("case", "fields", "expected"), CASES, ids=[c[0] for c in CASES])
def test_what_the_cache_keeps_of_a_change(case: str, fields: dict[str, Any], expected: str) -> None:
    assert kept_as(facts(**fields)) == expected


REQUESTS = {
    "rollout": update(images={"api": NEW_IMAGE}),
    "rollback": update(workload_body(images={"api": OLD_IMAGE}), images={"api": NEW_IMAGE}),
    "scale": update(replicas=5),
}


@pytest.mark.parametrize(("case", "fields", "expected"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("what", sorted(REQUESTS))
def test_compaction_never_changes_a_decision(
    case: str, fields: dict[str, Any], expected: str, what: str
) -> None:
    change = facts(**fields)
    kept = compact(change, NOW)
    service = policy()
    full = decide_rollout(REQUESTS[what], service, [change], NOW)
    compacted = decide_rollout(REQUESTS[what], service, [kept] if kept else [], NOW)
    assert (compacted.allowed, compacted.reason, compacted.change and compacted.change.name) == (
        full.allowed,
        full.reason,
        full.change and full.change.name,
    )


def test_repeated_strings_are_shared_between_changes() -> None:
    one, two = (compact(facts(name=n, approvals=[approval()]), NOW) for n in ("a-1", "a-2"))
    assert one is not None
    assert two is not None
    assert one.namespace is two.namespace
    assert one.targets[0].images[0][1] is two.targets[0].images[0][1]
    assert one.targets[0].images[0][1] is sys.intern(NEW_IMAGE)
