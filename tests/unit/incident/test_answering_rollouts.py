"""A change's rollout on the Incident it answers: the entry's words, and that it is owed once.

Reconciling twice adds what reconciling once added; another rollout gets its own
entry; an entry that aged off a full timeline is not added again.
"""

from __future__ import annotations

import datetime as dt

import pytest

from changegate.api.v1alpha1.common import AuditEntry
from changegate.core.incident.lifecycle import TIMELINE_LIMIT, with_timeline
from changegate.core.incident.rollouts import (
    ROLLED_OUT,
    AnsweringRollout,
    owes_entry,
    rollout_entry,
)

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
ROLLOUT = AnsweringRollout(
    "api-fix-1", "Deployment", "payments-api", 3, "Succeeded", "payments-api-ab12cd-3", T0
)


def note(minutes: float, action: str = "Noted", message: str = "") -> AuditEntry:
    return AuditEntry(
        time=T0 + dt.timedelta(minutes=minutes), actor="oncall-1", action=action, message=message
    )


def test_the_entry_says_which_change_rolled_out_what_and_with_which_record() -> None:
    entry = rollout_entry(ROLLOUT, T0 + dt.timedelta(seconds=5))
    assert entry.action == ROLLED_OUT
    assert entry.actor == "changegate"
    assert entry.message == (
        "change api-fix-1 rolled out revision 3 of Deployment/payments-api: Succeeded,"
        " record payments-api-ab12cd-3"
    )


OTHER = AnsweringRollout(
    "api-fix-1", "Deployment", "payments-api", 2, "Failed", "payments-api-ab12cd-2", T0
)
FULL_AFTER = [note(1 + i) for i in range(TIMELINE_LIMIT)]  # every entry newer than the rollout
FULL_SPANNING = [note(-1), *FULL_AFTER[1:]]  # the oldest is older: ours would still be there


@pytest.mark.parametrize(
    ("timeline", "owed"),
    [
        ([], True),
        ([note(-5), note(-1)], True),
        ([note(-5), rollout_entry(ROLLOUT, T0)], False),
        ([rollout_entry(OTHER, T0)], True),  # another revision's entry is not this one's
        ([note(0, ROLLED_OUT, "change x ... record other")], True),
        (FULL_AFTER, False),  # dropped off the bounded end: never added twice
        (FULL_SPANNING, True),
    ],
    ids=["empty", "others", "noted", "other-record", "other-tail", "aged-off", "full-but-older"],
)
def test_owed_until_noted(timeline: list[AuditEntry], owed: bool) -> None:
    assert owes_entry(timeline, ROLLOUT) is owed


def test_reconciling_twice_adds_one_entry() -> None:
    timeline = [note(-5)]
    for _ in range(2):
        if owes_entry(timeline, ROLLOUT):
            timeline = with_timeline(timeline, [rollout_entry(ROLLOUT, T0)])
    if owes_entry(timeline, OTHER):
        timeline = with_timeline(timeline, [rollout_entry(OTHER, T0)])
    assert [e.action for e in timeline] == ["Noted", ROLLED_OUT, ROLLED_OUT]
    assert not owes_entry(timeline, ROLLOUT)
    assert not owes_entry(timeline, OTHER)
