"""Deleting a ChangeRequest that awaits review: only governance, the operator, or the
namespace's own deletion (core/change/governance.py `review_change_request_deletion`)."""

from __future__ import annotations

import pytest

from changegate.api.v1alpha1.changerequest import ChangeRequest
from changegate.core.change.governance import REVIEW, review_change_request_deletion
from changegate.core.common import User
from tests.unit.builders import (
    AUTHORITIES,
    CHANGE_MANAGER,
    EMERGENCY_MEMBER,
    OPERATOR,
    PLATFORM_ADMIN,
    REQUESTER,
    change_request,
)


def labelled(review: str | None) -> ChangeRequest:
    change = change_request(type="Emergency")
    labels = {REVIEW: review} if review else {}
    return change.model_copy(
        update={"metadata": change.metadata.model_copy(update={"labels": labels})}
    )


@pytest.mark.parametrize(
    ("review", "user", "terminating", "allowed"),
    [
        pytest.param("required", REQUESTER, False, False, id="team-deletes-pending-review"),
        pytest.param("required", EMERGENCY_MEMBER, False, False, id="raiser-deletes-pending"),
        pytest.param("required", CHANGE_MANAGER, False, True, id="change-manager"),
        pytest.param("required", PLATFORM_ADMIN, False, True, id="platform-admin"),
        pytest.param("required", OPERATOR, False, True, id="operator"),
        pytest.param("required", REQUESTER, True, True, id="namespace-terminating"),
        pytest.param("done", REQUESTER, False, True, id="reviewed-already"),
        pytest.param(None, REQUESTER, False, True, id="never-flagged"),
    ],
)
def test_a_change_awaiting_review_is_deleted_only_by_governance(
    review: str | None, user: User, terminating: bool, allowed: bool
) -> None:
    verdict = review_change_request_deletion(
        labelled(review), user, AUTHORITIES, namespace_terminating=terminating
    )
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.reason == "ReviewPending"
        assert "only change managers or platform admins may delete it" in verdict.message
