"""Rules for changegate's own kinds: who may write what, and what the webhook stamps.

ChangeRequests (requester, approvals, segregation of duties, the frozen spec,
cancelling), ChangeTemplates (activation), ServiceOnCalls (governance fields)
and DeploymentRecords (the operator only), each as a table of both sides.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from changegate.api.v1alpha1.changerequest import ChangeRequest
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.facts import ServicePolicy
from changegate.core.change.governance import (
    Verdict,
    review_change_request,
    review_change_template,
    review_deployment_record,
    review_service_on_call,
)
from changegate.core.common import User
from tests.unit.builders import (
    AUTHORITIES,
    CHANGE_MANAGER,
    EMERGENCY_MEMBER,
    NAMED_APPROVER,
    NOW,
    OPERATOR,
    OUTSIDER,
    PLATFORM_ADMIN,
    REQUESTER,
    SECOND_MANAGER,
    TEAMMATE,
    approval,
    approved_change,
    change_request,
    change_template,
    iso,
    policy,
    service_on_call,
    target,
    with_spec,
)

PENDING = change_request()
APPROVED = approved_change()
TWO_NEEDED = policy(required_approvals=2)


def appended(change: ChangeRequest, *approvals: dict[str, Any]) -> ChangeRequest:
    """`change` with approvals appended, as `kubectl patch --type=json` would send it."""
    spec = change.to_json()["spec"]
    return with_spec(change, approvals=spec.get("approvals", []) + list(approvals))


def check(verdict: Verdict, allowed: bool, reason: str, words: tuple[str, ...]) -> None:
    assert (verdict.allowed, verdict.reason) == (allowed, reason), verdict.message
    for word in words:
        assert word in verdict.message


# -- ChangeRequest: create ----------------------------------------------------


@pytest.mark.parametrize(
    ("new", "user", "service", "allowed", "reason", "words"),
    [
        pytest.param(
            change_request(requester=None), REQUESTER, policy(), True, "RequesterStamped", (),
            id="requester-left-empty-is-stamped",
        ),
        pytest.param(
            change_request(), REQUESTER, policy(), True, "RequesterStamped", (),
            id="requester-naming-oneself-is-accepted",
        ),
        pytest.param(
            change_request(requester=TEAMMATE.username), REQUESTER, policy(), False,
            "RequesterMismatch", ("you are product-dev-1, the body names product-dev-2",),
            id="requester-naming-someone-else-is-refused",
        ),
        pytest.param(
            approved_change(requester=None), REQUESTER, policy(), False, "ApprovalsOnCreate",
            ("carries no approvals",),
            id="approvals-at-creation-are-refused",
        ),
        pytest.param(
            approved_change(requester=None), CHANGE_MANAGER, policy(), False,
            "ApprovalsOnCreate", (),
            id="approvals-at-creation-are-refused-even-from-an-approver",
        ),
        pytest.param(
            change_request(type="Emergency", requester=None), EMERGENCY_MEMBER, policy(), True,
            "RequesterStamped", (),
            id="emergency-by-a-member-of-the-emergency-group",
        ),
        pytest.param(
            change_request(type="Emergency", requester=None), REQUESTER, policy(), False,
            "NotInEmergencyGroup", ("payments-emergency",),
            id="emergency-by-anyone-else-is-refused",
        ),
        pytest.param(
            change_request(type="Emergency", requester=None), CHANGE_MANAGER, policy(), False,
            "NotInEmergencyGroup", (),
            id="emergency-by-a-change-manager-outside-the-group-is-refused",
        ),
        pytest.param(
            change_request(type="Emergency", requester=None), EMERGENCY_MEMBER, None, False,
            "NotInEmergencyGroup", ("(none)",),
            id="emergency-for-an-unknown-service-is-refused",
        ),
        pytest.param(
            change_request(type="Standard", requester=None), REQUESTER, policy(), True,
            "RequesterStamped", (),
            id="standard-change-by-anyone",
        ),
    ],
)  # fmt: skip
def test_create_change_request(
    new: ChangeRequest,
    user: User,
    service: ServicePolicy | None,
    allowed: bool,
    reason: str,
    words: tuple[str, ...],
) -> None:
    verdict = review_change_request("CREATE", None, new, user, service, NOW)

    check(verdict, allowed, reason, words)


@pytest.mark.parametrize(
    ("new", "allowed", "reason"),
    [
        pytest.param(
            change_request(type="Emergency"), True, "RaisedByOperator",
            id="emergency-change-after-break-glass-names-the-deployer",
        ),
        pytest.param(
            approved_change(requester=None), False, "ApprovalsOnCreate",
            id="operator-cannot-create-an-approved-change",
        ),
    ],
)  # fmt: skip
def test_operator_raises_changes_on_behalf_of_the_deployer(
    new: ChangeRequest, allowed: bool, reason: str
) -> None:
    verdict = review_change_request("CREATE", None, new, OPERATOR, policy(), NOW, operator=True)

    assert (verdict.allowed, verdict.reason) == (allowed, reason), verdict.message


def test_only_the_operator_may_name_another_requester() -> None:
    new = change_request(requester=REQUESTER.username)

    verdict = review_change_request("CREATE", None, new, OUTSIDER, policy(), NOW, operator=False)

    assert verdict.reason == "RequesterMismatch"


def test_create_stamps_the_requester_from_the_authenticated_user() -> None:
    new = change_request(requester=None)

    verdict = review_change_request("CREATE", None, new, REQUESTER, policy(), NOW)
    stamped = ChangeRequest.model_validate(jsonpatch.apply_patch(new.to_json(), verdict.patch))

    assert stamped.spec.requester == "product-dev-1"
    assert stamped.spec.approvals == []


# -- ChangeRequest: approvals -------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "user", "service", "allowed", "reason", "words"),
    [
        pytest.param(
            PENDING, appended(PENDING, approval(None)), CHANGE_MANAGER, policy(), True,
            "ApprovalStamped", (),
            id="approver-in-group-approves",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval(None)), NAMED_APPROVER, policy(), True,
            "ApprovalStamped", (),
            id="approver-by-name-approves",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval("change-manager-1")), CHANGE_MANAGER, policy(),
            True, "ApprovalStamped", (),
            id="approval-naming-oneself",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval(None, "Rejected", "no backout plan")),
            CHANGE_MANAGER, policy(), True, "ApprovalStamped", (),
            id="rejection-with-a-comment",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval(None)), SECOND_MANAGER,
            policy(approver_users=[], approver_groups=[]), True, "ApprovalStamped", (),
            id="default-approver-group-when-none-is-named",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval("change-manager-2")), CHANGE_MANAGER, policy(),
            False, "ApproverMismatch",
            ("you are change-manager-1, the approval names change-manager-2",),
            id="approval-naming-someone-else-is-refused",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval("change-manager-1")), REQUESTER, policy(),
            False, "ApproverMismatch", ("the approval names change-manager-1",),
            id="requester-forging-a-managers-approval-is-refused",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval(None)), REQUESTER, policy(), False,
            "SegregationOfDuties", ("product-dev-1 requested", "segregation of duties"),
            id="requester-approving-own-change-is-refused",
        ),
        pytest.param(
            change_request(requester=CHANGE_MANAGER.username),
            appended(change_request(requester=CHANGE_MANAGER.username), approval(None)),
            CHANGE_MANAGER, policy(), False, "SegregationOfDuties", (),
            id="change-manager-approving-own-change-is-refused",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval(None, "Rejected", "no")), REQUESTER, policy(),
            False, "SegregationOfDuties", (),
            id="requester-rejecting-own-change-is-refused",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval(None)), TEAMMATE, policy(), False,
            "NotAnApprover",
            (
                "product-dev-2 is not an approver of service payments-api",
                "approvers: approver-by-name, change-manager-1, group change-managers",
            ),
            id="teammate-is-not-an-approver",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval(None)), OUTSIDER,
            policy(approver_users=[], approver_groups=[]), False, "NotAnApprover", (),
            id="no-approvers-named-is-not-everyone",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval(None)), EMERGENCY_MEMBER, policy(), False,
            "NotAnApprover", (),
            id="emergency-member-is-not-an-approver",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval(None)), CHANGE_MANAGER, None, False,
            "NoServiceOnCall", ("no ServiceOnCall declares service payments-api",),
            id="no-serviceoncall-no-approvals",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval(None), approval(None)), CHANGE_MANAGER,
            TWO_NEEDED, False, "OneApprovalAtATime", (),
            id="two-approvals-at-once-are-refused",
        ),
        pytest.param(
            APPROVED, appended(APPROVED, approval(None)), CHANGE_MANAGER, TWO_NEEDED, False,
            "AlreadyDecided", ("change-manager-1 has already decided",),
            id="approving-twice-is-refused",
        ),
        pytest.param(
            APPROVED, appended(APPROVED, approval(None)), SECOND_MANAGER, TWO_NEEDED, True,
            "ApprovalStamped", (),
            id="second-approver-approves",
        ),
        pytest.param(
            PENDING, appended(PENDING, approval(None, "Rejected", None)), CHANGE_MANAGER,
            policy(), False, "RejectionNeedsComment", (),
            id="rejection-without-a-comment-is-refused",
        ),
        pytest.param(
            APPROVED, appended(APPROVED, approval(None)), SECOND_MANAGER, policy(), False,
            "SpecFrozen", ("is Approved: its spec is frozen",),
            id="approval-after-approval-is-refused",
        ),
        pytest.param(
            change_request(type="Emergency"),
            appended(change_request(type="Emergency"), approval(None)), CHANGE_MANAGER,
            policy(), False, "SpecFrozen", (),
            id="emergency-change-is-approved-from-the-start",
        ),
    ],
)  # fmt: skip
def test_approve_change_request(
    old: ChangeRequest,
    new: ChangeRequest,
    user: User,
    service: ServicePolicy | None,
    allowed: bool,
    reason: str,
    words: tuple[str, ...],
) -> None:
    verdict = review_change_request("UPDATE", old, new, user, service, NOW)

    check(verdict, allowed, reason, words)


def test_approval_is_stamped_with_the_approver_and_the_time() -> None:
    new = appended(APPROVED, approval(None, time=NOW.replace(year=2020)))

    verdict = review_change_request("UPDATE", APPROVED, new, SECOND_MANAGER, TWO_NEEDED, NOW)
    stamped = ChangeRequest.model_validate(jsonpatch.apply_patch(new.to_json(), verdict.patch))

    assert verdict.patch == [
        {"op": "add", "path": "/spec/approvals/1/approver", "value": "change-manager-2"},
        {"op": "add", "path": "/spec/approvals/1/time", "value": iso(NOW)},
    ]
    assert stamped.spec.approvals[0] == APPROVED.spec.approvals[0]
    assert stamped.spec.approvals[1].approver == "change-manager-2"
    assert stamped.spec.approvals[1].time == NOW


# -- ChangeRequest: edits, freezing and cancelling ----------------------------

CANCELLED = change_request(cancel=True)
IN_PROGRESS = approved_change(phase="InProgress")


@pytest.mark.parametrize(
    ("old", "new", "user", "allowed", "reason", "words"),
    [
        pytest.param(
            PENDING, with_spec(PENDING, summary="Payments API 1.42.1"), REQUESTER, True,
            "Accepted", (),
            id="pending-change-can-be-edited",
        ),
        pytest.param(
            APPROVED, with_spec(APPROVED, summary="Something else"), REQUESTER, False,
            "SpecFrozen", ("its spec is frozen, only spec.cancel may be set",),
            id="approved-change-is-frozen",
        ),
        pytest.param(
            approved_change(phase="Approved"),
            with_spec(approved_change(phase="Approved"), description="more"), CHANGE_MANAGER,
            False, "SpecFrozen", (),
            id="approved-in-status-is-frozen-for-everyone",
        ),
        pytest.param(
            APPROVED, with_spec(APPROVED, cancel=True), REQUESTER, True, "Accepted", (),
            id="approved-change-can-be-cancelled",
        ),
        pytest.param(
            PENDING, with_spec(PENDING, cancel=True), REQUESTER, True, "Accepted", (),
            id="pending-change-can-be-cancelled",
        ),
        pytest.param(
            IN_PROGRESS, with_spec(IN_PROGRESS, cancel=True), REQUESTER, False,
            "TooLateToCancel", ("is InProgress", "before its rollout starts"),
            id="in-progress-change-cannot-be-cancelled",
        ),
        pytest.param(
            approved_change(phase="Completed"),
            with_spec(approved_change(phase="Completed"), cancel=True), REQUESTER, False,
            "TooLateToCancel", ("is Completed",),
            id="completed-change-cannot-be-cancelled",
        ),
        pytest.param(
            PENDING, with_spec(PENDING, requester=TEAMMATE.username), REQUESTER, False,
            "RequesterImmutable", (),
            id="requester-cannot-be-changed",
        ),
        pytest.param(
            PENDING, with_spec(PENDING, requester=None), REQUESTER, False,
            "RequesterImmutable", (),
            id="requester-cannot-be-removed",
        ),
        pytest.param(
            PENDING, with_spec(PENDING, type="Emergency", emergencyReason="now"),
            REQUESTER, False, "Immutable", ("spec.type cannot be changed",),
            id="pending-normal-change-cannot-become-an-emergency",
        ),
        pytest.param(
            PENDING, with_spec(PENDING, targets=[target("payments-worker")]), REQUESTER, False,
            "Immutable", ("spec.targets",),
            id="targets-cannot-be-changed",
        ),
        pytest.param(
            PENDING, with_spec(PENDING, service="orders-api"), REQUESTER, False, "Immutable",
            ("spec.service",),
            id="service-cannot-be-changed",
        ),
        pytest.param(
            PENDING, with_spec(PENDING, window={
                "startTime": "2026-11-18T09:00:00Z", "endTime": "2026-11-18T10:00:00Z"
            }), REQUESTER, False, "Immutable", ("spec.window",),
            id="window-cannot-be-changed",
        ),
        pytest.param(
            APPROVED, with_spec(APPROVED, approvals=[approval("change-manager-2")]),
            REQUESTER, False, "ApprovalsAppendOnly", (),
            id="existing-approval-cannot-be-rewritten",
        ),
        pytest.param(
            APPROVED, with_spec(APPROVED, approvals=[]), REQUESTER, False,
            "ApprovalsAppendOnly", (),
            id="approvals-cannot-be-removed",
        ),
        pytest.param(
            CANCELLED, with_spec(CANCELLED, cancel=False), REQUESTER, False, "CancelIsFinal",
            (),
            id="cancel-cannot-be-undone",
        ),
    ],
)  # fmt: skip
def test_edit_change_request(
    old: ChangeRequest,
    new: ChangeRequest,
    user: User,
    allowed: bool,
    reason: str,
    words: tuple[str, ...],
) -> None:
    verdict = review_change_request("UPDATE", old, new, user, policy(), NOW)

    check(verdict, allowed, reason, words)


# -- ChangeTemplate -----------------------------------------------------------

INACTIVE = change_template(active=False)
ACTIVE = change_template(active=True)


@pytest.mark.parametrize(
    ("old", "new", "user", "allowed", "reason", "deactivated"),
    [
        pytest.param(None, INACTIVE, REQUESTER, True, "Accepted", False, id="draft-by-anyone"),
        pytest.param(
            None, ACTIVE, REQUESTER, False, "NotAChangeManager", False,
            id="created-active-by-a-product-manager-is-refused",
        ),
        pytest.param(
            None, ACTIVE, CHANGE_MANAGER, True, "Activated", False,
            id="created-active-by-a-change-manager",
        ),
        pytest.param(
            INACTIVE, ACTIVE, REQUESTER, False, "NotAChangeManager", False,
            id="activation-by-a-product-manager-is-refused",
        ),
        pytest.param(
            INACTIVE, ACTIVE, PLATFORM_ADMIN, False, "NotAChangeManager", False,
            id="activation-by-a-platform-admin-is-refused",
        ),
        pytest.param(
            INACTIVE, ACTIVE, CHANGE_MANAGER, True, "Activated", False,
            id="activation-by-a-change-manager",
        ),
        pytest.param(
            INACTIVE, change_template(active=True, summary="wider"), CHANGE_MANAGER, True,
            "Activated", False,
            id="edit-and-activation-by-a-change-manager",
        ),
        pytest.param(
            ACTIVE, change_template(active=True, summary="wider"), REQUESTER, True,
            "Deactivated", True,
            id="edit-of-an-active-template-deactivates-it",
        ),
        pytest.param(
            ACTIVE, change_template(active=True, summary="wider"), CHANGE_MANAGER, True,
            "Reactivated", False,
            id="edit-by-a-change-manager-activates-it-anew",
        ),
        pytest.param(
            ACTIVE, ACTIVE, REQUESTER, True, "Accepted", False,
            id="no-spec-change-keeps-it-active",
        ),
        pytest.param(
            ACTIVE, INACTIVE, REQUESTER, True, "Accepted", False,
            id="anyone-may-deactivate",
        ),
        pytest.param(
            INACTIVE, change_template(summary="better"), REQUESTER, True, "Accepted", False,
            id="edit-of-a-draft",
        ),
    ],
)  # fmt: skip
def test_review_change_template(
    old: Any, new: Any, user: User, allowed: bool, reason: str, deactivated: bool
) -> None:
    verdict = review_change_template(
        "UPDATE" if old else "CREATE", old, new, user, AUTHORITIES, NOW
    )

    assert (verdict.allowed, verdict.reason) == (allowed, reason), verdict.message
    if deactivated:
        assert verdict.patch == [{"op": "replace", "path": "/spec/active", "value": False}]
        assert "no longer active" in verdict.warnings[0]
    elif reason in ("Activated", "Reactivated"):
        # Who activated it, and when, is stamped from the authenticated user.
        stamped = jsonpatch.apply_patch(new.to_json() | {"metadata": {"name": "t"}}, verdict.patch)
        assert stamped["metadata"]["annotations"]["changegate.io/activated-by"] == user.username
        assert stamped["metadata"]["annotations"]["changegate.io/activated-at"].endswith("Z")
    else:
        assert verdict.patch == []
    if not allowed:
        assert "only change managers (change-managers) may activate" in verdict.message


def test_metadata_edit_of_an_active_template_keeps_it_active() -> None:
    new = ACTIVE.model_copy(deep=True)
    new.metadata.labels["team"] = "payments"

    verdict = review_change_template("UPDATE", ACTIVE, new, REQUESTER, AUTHORITIES, NOW)

    assert verdict.patch == []


# -- ServiceOnCall ------------------------------------------------------------

SOC = service_on_call()


def edited(**spec: Any) -> ServiceOnCall:
    """The default ServiceOnCall with parts of its spec replaced (camelCase, by dotted path)."""
    body = SOC.to_json()
    for path, value in spec.items():
        *parents, leaf = path.split("__")
        node = body["spec"]
        for key in parents:
            node = node[key]
        node[leaf] = value
    return ServiceOnCall.model_validate(body)


GOVERNANCE_EDITS = {
    "approvers": edited(changePolicy__approvers={"users": ["product-dev-2"]}),
    "required-approvals": edited(changePolicy__requiredApprovals=2),
    "emergency-groups": edited(changePolicy__emergencyGroups=["team-payments"]),
    "production-dropped": edited(
        environments=[{"name": "production", "namespace": "payments-prod", "production": False}]
    ),
    "production-moved": edited(
        environments=[{"name": "production", "namespace": "payments-prod-2", "production": True}]
    ),
    "staging-environment": edited(
        environments=[
            *SOC.to_json()["spec"]["environments"],
            {"name": "qa", "namespace": "payments-qa"},
        ]
    ),
}
TEAM_EDITS = {
    "team-members": edited(team__members=[{"user": "product-dev-3"}]),
    "on-call": edited(onCall__timeZone="UTC"),
}
UNGOVERNED_SOC = ServiceOnCall.model_validate(
    SOC.to_json()
    | {
        "spec": SOC.to_json()["spec"]
        | {"changePolicy": {"approvers": {}, "emergencyGroups": [], "requiredApprovals": 1}}
    }
)


@pytest.mark.parametrize(
    ("old", "new", "user", "allowed", "words"),
    [
        *(
            pytest.param(SOC, new, TEAMMATE, False, ("may change spec.",), id=f"team-{what}")
            for what, new in GOVERNANCE_EDITS.items()
        ),
        *(
            pytest.param(SOC, new, CHANGE_MANAGER, True, (), id=f"change-manager-{what}")
            for what, new in GOVERNANCE_EDITS.items()
        ),
        *(
            pytest.param(SOC, new, PLATFORM_ADMIN, True, (), id=f"platform-admin-{what}")
            for what, new in GOVERNANCE_EDITS.items()
        ),
        *(
            pytest.param(SOC, new, TEAMMATE, True, (), id=f"team-{what}")
            for what, new in TEAM_EDITS.items()
        ),
        pytest.param(
            SOC, None, TEAMMATE, False, ("may delete a ServiceOnCall",), id="team-delete"
        ),
        pytest.param(SOC, None, CHANGE_MANAGER, True, (), id="change-manager-delete"),
        pytest.param(
            None, SOC, TEAMMATE, False,
            ("may create a ServiceOnCall that declares spec.changePolicy.approvers",),
            id="team-create-naming-approvers",
        ),
        pytest.param(
            None, UNGOVERNED_SOC, TEAMMATE, True, (),
            id="team-create-falling-to-default-approvers",
        ),
        pytest.param(None, SOC, PLATFORM_ADMIN, True, (), id="platform-admin-create"),
        pytest.param(
            UNGOVERNED_SOC, None, TEAMMATE, False, (), id="team-delete-of-a-default-policy"
        ),
    ],
)  # fmt: skip
def test_review_service_on_call(
    old: ServiceOnCall | None,
    new: ServiceOnCall | None,
    user: User,
    allowed: bool,
    words: tuple[str, ...],
) -> None:
    verdict = review_service_on_call(old, new, user, AUTHORITIES)

    assert verdict.allowed is allowed, verdict.message
    if not allowed:
        assert verdict.reason == "GovernanceChange"
        assert "change-managers, platform-admins, system:masters" in verdict.message
        assert f"{user.username} may not" in verdict.message
    for word in words:
        assert word in verdict.message


# -- DeploymentRecord ---------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "allowed"),
    [
        pytest.param(OPERATOR, True, id="operator"),
        pytest.param(REQUESTER, False, id="developer"),
        pytest.param(CHANGE_MANAGER, False, id="change-manager"),
        pytest.param(PLATFORM_ADMIN, False, id="platform-admin"),
        pytest.param(
            User("system:serviceaccount:payments-prod:changegate-controller"),
            False,
            id="look-alike-service-account",
        ),
    ],
)
def test_review_deployment_record(user: User, allowed: bool) -> None:
    verdict = review_deployment_record(user, AUTHORITIES)

    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.reason == "EvidenceIsReadOnly"
        assert f"{user.username} may not write or delete them" in verdict.message
