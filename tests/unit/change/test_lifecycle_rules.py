"""Each rule of the change reconcile on its own, as a table: when it speaks, what it says.

`reconcile` composes these (tests/unit/change/test_lifecycle.py pins the whole);
here every rule of PHASE_RULES, the fallback, the expiry rule and `expiry_due`
are pinned alone, so a rule that drifts is named by its own failing row.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from changegate.api.v1alpha1 import ChangePhase, ChangeRequest
from changegate.core.change.lifecycle import (
    PHASE_RULES,
    Observed,
    Rule,
    Verdict,
    admit_emergency,
    await_approvals,
    count_approvals,
    decide_phase,
    expire_unused,
    expiry_due,
    follow_rollouts,
    follow_template,
    honour_cancel,
    honour_rejection,
    keep_approval,
    keep_terminal,
    need_service,
    reconcile,
)
from changegate.core.change.templates import Fit
from tests.unit.builders import (
    NOW,
    approval,
    approved_change,
    at,
    change_request,
    policy,
    rollout,
    with_status,
)

APPROVED, PENDING = ChangePhase.APPROVED, ChangePhase.PENDING
FITS = Fit(True, "fits template t: roll out a new build")
MISFITS = Fit(False, "outside the windows of template t")


def seen(change: ChangeRequest, fit: Fit | None = None, service: bool = True) -> Observed:
    return Observed.of(change, policy() if service else None, fit)


def closed(phase: str) -> ChangeRequest:
    """A change reconciled into `phase` earlier, as the controller would have written it."""
    change = change_request(cancel=phase == "Cancelled")
    return with_status(change, reconcile(change, policy(), None, 3600, at(-0.5)))


RULE_ROWS: list[tuple[str, Rule, Observed, Verdict | None]] = [
    (
        "terminal phase is kept with its closing message",
        keep_terminal,
        seen(closed("Cancelled")),
        Verdict(ChangePhase.CANCELLED, "cancelled before its rollout started"),
    ),
    ("an open change is not terminal", keep_terminal, seen(change_request()), None),
    (
        "a recorded rollout in progress",
        follow_rollouts,
        seen(change_request(rollouts=[rollout(result="InProgress")])),
        Verdict(ChangePhase.IN_PROGRESS, "rollout in progress"),
    ),
    (
        "every target rolled out",
        follow_rollouts,
        seen(change_request(rollouts=[rollout(finish=-1)])),
        Verdict(ChangePhase.COMPLETED, "every target rolled out"),
    ),
    (
        "a failed rollout fails the change",
        follow_rollouts,
        seen(change_request(rollouts=[rollout(result="Failed", finish=-1)])),
        Verdict(ChangePhase.FAILED, "a rollout failed"),
    ),
    ("no rollout, nothing to follow", follow_rollouts, seen(change_request()), None),
    (
        "cancel",
        honour_cancel,
        seen(change_request(cancel=True)),
        Verdict(ChangePhase.CANCELLED, "cancelled before its rollout started"),
    ),
    ("not cancelled", honour_cancel, seen(change_request()), None),
    (
        "an Approved change stays approved, without a message",
        keep_approval,
        seen(change_request(phase="Approved")),
        Verdict(APPROVED, "approved"),
    ),
    ("a Pending change has no approval to keep", keep_approval, seen(change_request()), None),
    (
        "an emergency is admitted at once",
        admit_emergency,
        seen(change_request(type="Emergency")),
        Verdict(APPROVED, "emergency change: admitted at once, to be reviewed afterwards"),
    ),
    ("a Normal change is no emergency", admit_emergency, seen(change_request()), None),
    (
        "a Standard change that fits",
        follow_template,
        seen(change_request(type="Standard"), FITS),
        Verdict(APPROVED, FITS.why),
    ),
    (
        "a Standard change that does not fit",
        follow_template,
        seen(change_request(type="Standard"), MISFITS),
        Verdict(PENDING, MISFITS.why),
    ),
    (
        "a Standard change without a fit yet",
        follow_template,
        seen(change_request(type="Standard")),
        Verdict(PENDING, "waiting for its template"),
    ),
    ("a Normal change has no template", follow_template, seen(change_request()), None),
    (
        "a rejection",
        honour_rejection,
        seen(change_request(approvals=[approval(decision="Rejected", comment="no")])),
        Verdict(ChangePhase.REJECTED, "rejected by change-manager-1"),
    ),
    ("no rejection", honour_rejection, seen(approved_change()), None),
    (
        "enough approvals",
        count_approvals,
        seen(approved_change()),
        Verdict(APPROVED, "1 of 1 approvals: change-manager-1"),
    ),
    ("too few approvals", count_approvals, seen(change_request()), None),
    (
        "no policy, nothing to count against",
        count_approvals,
        seen(approved_change(), service=False),
        None,
    ),
    (
        "no ServiceOnCall for the service",
        need_service,
        seen(change_request(), service=False),
        Verdict(PENDING, "no ServiceOnCall declares service payments-api"),
    ),
    ("a declared service", need_service, seen(change_request()), None),
]


@pytest.mark.parametrize(
    ("rule", "observed", "expected"),
    [row[1:] for row in RULE_ROWS],
    ids=[row[0] for row in RULE_ROWS],
)
def test_each_rule_speaks_only_for_its_case(
    rule: Rule, observed: Observed, expected: Verdict | None
) -> None:
    assert rule(observed) == expected


def test_the_fallback_waits_for_approvals_and_counts_them() -> None:
    assert await_approvals(seen(change_request())) == Verdict(PENDING, "pending approval 0 of 1")


def test_the_first_rule_that_speaks_decides() -> None:
    # Cancelled and enough approvals: cancel comes first in the chain.
    observed = seen(approved_change(cancel=True))
    assert PHASE_RULES.index(honour_cancel) < PHASE_RULES.index(count_approvals)
    assert decide_phase(observed).phase is ChangePhase.CANCELLED


EXPIRY_ROWS = [
    # (phase decided, window end in hours or None, approved hours ago, validity s, expired?)
    ("inside its window", APPROVED, 2, -0.5, 3600, False),
    ("past its window", APPROVED, -0.1, -0.5, 3600, True),
    ("no window, validity not yet over", APPROVED, None, -0.5, 3600, False),
    ("no window, validity over", APPROVED, None, -2, 3600, True),
    ("not approved: never expires", PENDING, -0.1, -2, 0, False),
]


@pytest.mark.parametrize(
    ("phase", "window_end", "approved", "validity", "expired"),
    [row[1:] for row in EXPIRY_ROWS],
    ids=[row[0] for row in EXPIRY_ROWS],
)
def test_expire_unused(
    phase: ChangePhase, window_end: float | None, approved: float, validity: int, expired: bool
) -> None:
    change = change_request(window=None if window_end is None else (-1, window_end))
    verdict, expiration = expire_unused(
        seen(change), Verdict(phase, "why"), at(approved), validity, NOW
    )
    assert (verdict.phase is ChangePhase.EXPIRED) is expired
    if expired:
        assert verdict.why == f"not used before {expiration.isoformat() if expiration else ''}"
    if phase is APPROVED and window_end is None:
        assert expiration == at(approved) + timedelta(seconds=validity)


@pytest.mark.parametrize(
    ("phase", "due"),
    [("Approved", True), ("Pending", False), ("InProgress", False), ("Expired", False)],
)
def test_only_an_approved_change_is_due_for_expiry(phase: str, due: bool) -> None:
    change = change_request(phase=phase, expiration=1)
    assert expiry_due(change) == (at(1) if due else None)
