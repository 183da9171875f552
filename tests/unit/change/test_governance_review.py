"""The review of an emergency change after the fact: change managers only, stamped, append-only.

A table of writes to `spec.reviews` by each persona, on emergency and normal changes,
completed or not, and the predicate the compliance report lists as exceptions.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from changegate.api.v1alpha1.changerequest import ChangeRequest
from changegate.core.change.governance import needs_review, review_change_request
from changegate.core.common import User
from tests.unit.builders import (
    CHANGE_MANAGER,
    EMERGENCY_MEMBER,
    NOW,
    OPERATOR,
    REQUESTER,
    approval,
    change_request,
    iso,
    policy,
    with_spec,
)

NOTE = {"note": "justified: card payments were failing; fix merged as PR 812"}
STAMPED = {**NOTE, "reviewer": CHANGE_MANAGER.username, "time": iso(NOW)}


def emergency(phase: str = "Completed", **labels: str) -> ChangeRequest:
    change = change_request(type="Emergency", requester=EMERGENCY_MEMBER.username, phase=phase)
    body = change.to_json()
    body["metadata"]["labels"] = {"changegate.io/review": "required", **labels}
    return ChangeRequest.model_validate(body)


PENDING_REVIEW = emergency()
REVIEWED_ONCE = with_spec(PENDING_REVIEW, reviews=[STAMPED])


def write(
    old: ChangeRequest, reviews: list[dict[str, Any]], user: User, **spec: Any
) -> tuple[bool, str, dict[str, Any]]:
    """The verdict of `user` writing these reviews (and spec fields) onto `old`."""
    new = with_spec(old, reviews=reviews, **spec)
    managers = user.in_any(frozenset({"change-managers"}))
    operator = user == OPERATOR
    verdict = review_change_request(
        "UPDATE", old, new, user, policy(), NOW, operator=operator,
        may_review=managers or operator,
    )  # fmt: skip
    after = jsonpatch.apply_patch(new.to_json(), verdict.patch) if verdict.allowed else {}
    return verdict.allowed, verdict.reason, after


@pytest.mark.parametrize(
    ("old", "reviews", "user", "reason"),
    [
        (PENDING_REVIEW, [NOTE], REQUESTER, "NotAChangeManager"),
        (PENDING_REVIEW, [NOTE], EMERGENCY_MEMBER, "NotAChangeManager"),
        (PENDING_REVIEW, [NOTE], OPERATOR, "NotAChangeManager"),
        (PENDING_REVIEW, [NOTE, NOTE], CHANGE_MANAGER, "OneReviewAtATime"),
        (REVIEWED_ONCE, [], CHANGE_MANAGER, "ReviewsAppendOnly"),
        (REVIEWED_ONCE, [{**STAMPED, "note": "edited"}], CHANGE_MANAGER, "ReviewsAppendOnly"),
        (REVIEWED_ONCE, [NOTE, STAMPED], CHANGE_MANAGER, "ReviewsAppendOnly"),
        (change_request(phase="Completed"), [NOTE], CHANGE_MANAGER, "NotAnEmergency"),
    ],
    ids=[
        "product-team", "emergency-member", "operator", "two-at-once", "remove",
        "edit", "insert-before", "normal-change",
    ],
)  # fmt: skip
def test_a_review_is_refused(
    old: ChangeRequest, reviews: list[dict[str, Any]], user: User, reason: str
) -> None:
    allowed, why, _ = write(old, reviews, user)

    assert (allowed, why) == (False, reason)


def test_a_review_cannot_carry_another_edit_past_the_frozen_spec() -> None:
    allowed, why, _ = write(PENDING_REVIEW, [NOTE], CHANGE_MANAGER, summary="something else")

    assert (allowed, why) == (False, "ReviewAlone")


@pytest.mark.parametrize(
    "typed", [{}, {"reviewer": "someone-else", "time": "2020-01-01T00:00:00Z"}]
)
def test_a_change_managers_review_is_stamped_and_marks_the_change_reviewed(
    typed: dict[str, Any],
) -> None:
    allowed, why, after = write(PENDING_REVIEW, [{**NOTE, **typed}], CHANGE_MANAGER)

    assert (allowed, why) == (True, "ReviewStamped")
    assert after["spec"]["reviews"] == [STAMPED]
    assert after["metadata"]["labels"]["changegate.io/review"] == "done"


def test_a_second_review_is_appended_after_the_first() -> None:
    allowed, _, after = write(REVIEWED_ONCE, [STAMPED, NOTE], CHANGE_MANAGER)

    assert allowed
    assert after["spec"]["reviews"] == [STAMPED, STAMPED]


def test_a_new_change_carries_no_review_even_from_the_operator() -> None:
    new = with_spec(emergency(), reviews=[STAMPED], approvals=[])
    for user in (OPERATOR, CHANGE_MANAGER, EMERGENCY_MEMBER):
        verdict = review_change_request(
            "CREATE", None, new, user, policy(), NOW, operator=user == OPERATOR, may_review=True
        )
        assert (verdict.allowed, verdict.reason) == (False, "ReviewsOnCreate")


@pytest.mark.parametrize(
    ("change", "needed"),
    [
        (PENDING_REVIEW, True),
        (REVIEWED_ONCE, False),
        (change_request(approvals=[approval()]), False),
        (change_request(type="Standard"), False),
    ],
    ids=["emergency-unreviewed", "emergency-reviewed", "normal", "standard"],
)
def test_needs_review(change: ChangeRequest, needed: bool) -> None:
    assert needs_review(change) is needed
