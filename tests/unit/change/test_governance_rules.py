"""The governance rules one at a time: what each decides alone, and when it stays silent.

test_governance.py pins the reviews whole; here each rule of the chains in
governance.py gets its own table, so a rule that drifts fails by name. A row
expects None when the rule must leave the write to the next rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from changegate.api.v1alpha1.changerequest import ChangeRequest
from changegate.api.v1alpha1.changetemplate import ChangeTemplate
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.facts import ServicePolicy
from changegate.core.change.governance import (
    CREATE_RULES,
    SERVICE_RULES,
    TEMPLATE_RULES,
    UPDATE_RULES,
    ChangeEdit,
    NewChange,
    ServiceEdit,
    TemplateEdit,
    Verdict,
    activation_stamp_kept,
    adds_governance_only,
    approvals_append_only,
    approvals_need_a_service,
    approver_is_the_writer,
    approver_of_the_service,
    by_governance,
    cancel_is_final,
    decides_once,
    edit_deactivates,
    emergency_by_its_group,
    first_verdict,
    frozen_once_decided,
    governance_untouched,
    immutable_fields,
    namespace_going_away,
    no_approvals_on_create,
    nothing_to_stamp,
    one_approval_at_a_time,
    only_change_managers_activate,
    raised_by_operator,
    refuse_governance_change,
    rejection_says_why,
    requester_immutable,
    requester_is_the_writer,
    review_service_on_call,
    segregation_of_duties,
    stamp_activation,
    stamp_approval,
    stamp_requester,
    too_late_to_cancel,
)
from changegate.core.common import User
from tests.unit.builders import (
    AUTHORITIES,
    CHANGE_MANAGER,
    EMERGENCY_MEMBER,
    NOW,
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
IN_PROGRESS = approved_change(phase="InProgress")
Outcome = tuple[bool, str] | None


def outcome(verdict: Verdict | None) -> Outcome:
    return None if verdict is None else (verdict.allowed, verdict.reason)


def appended(change: ChangeRequest, *approvals: dict[str, Any]) -> ChangeRequest:
    spec = change.to_json()["spec"]
    return with_spec(change, approvals=spec.get("approvals", []) + list(approvals))


def test_the_chains_run_in_this_order() -> None:
    def names(rules: tuple[Callable[..., Any], ...]) -> list[str]:
        return [rule.__name__ for rule in rules]

    assert names(CREATE_RULES) == [
        "no_reviews_on_create",
        "raised_by_operator",
        "review_state_on_create",
        "operator_marks_on_create",
        "requester_is_the_writer",
        "no_approvals_on_create",
        "emergency_by_its_group",
        "stamp_requester",
    ]
    assert names(UPDATE_RULES) == [
        "review_state_by_change_managers",
        "operator_marks_by_operator",
        "requester_immutable",
        "immutable_fields",
        "approvals_append_only",
        "reviews_append_only",
        "reviews_by_change_managers",
        "one_review_at_a_time",
        "reviews_of_emergencies",
        "review_alone",
        "stamp_review",
        "cancel_is_final",
        "too_late_to_cancel",
        "frozen_once_decided",
        "nothing_to_stamp",
        "one_approval_at_a_time",
        "approver_is_the_writer",
        "approvals_where_the_policy_says",
        "approvals_need_a_service",
        "servicenow_approval",
        "segregation_of_duties",
        "approver_of_the_service",
        "decides_once",
        "rejection_says_why",
        "stamp_approval",
    ]
    assert names(TEMPLATE_RULES) == [
        "only_change_managers_activate",
        "stamp_activation",
        "edit_deactivates",
        "change_manager_edit_reactivates",
        "activation_stamp_kept",
        "accept",
    ]
    assert names(SERVICE_RULES) == [
        "namespace_going_away",
        "service_name_unique",
        "namespace_listed_once",
        "production_of_one_service",
        "claims_need_rights",
        "enforcement_by_governance",
        "approvals_place_by_change_managers",
        "governance_untouched",
        "by_governance",
        "adds_governance_only",
        "refuse_governance_change",
    ]


def test_first_verdict_is_the_first_rule_that_decides() -> None:
    rules = (lambda _: None, lambda _: Verdict(False, reason="First"), lambda _: Verdict(True))

    assert first_verdict(rules, object()).reason == "First"


# -- ChangeRequest: create ----------------------------------------------------


def new(
    change: ChangeRequest,
    user: User = REQUESTER,
    service: ServicePolicy | None = None,
    *,
    operator: bool = False,
) -> NewChange:
    return NewChange(change, user, service if service is not None else policy(), operator)


EMERGENCY = change_request(type="Emergency", requester=None)


@pytest.mark.parametrize(
    ("rule", "subject", "expect"),
    [
        pytest.param(
            raised_by_operator, new(change_request(type="Emergency"), operator=True),
            (True, "RaisedByOperator"), id="operator-raises-an-emergency-change",
        ),
        pytest.param(
            raised_by_operator, new(approved_change(), operator=True), None,
            id="operator-with-approvals-goes-on",
        ),
        pytest.param(raised_by_operator, new(PENDING), None, id="not-the-operator"),
        pytest.param(
            requester_is_the_writer, new(change_request(requester=TEAMMATE.username)),
            (False, "RequesterMismatch"), id="names-someone-else",
        ),
        pytest.param(requester_is_the_writer, new(PENDING), None, id="names-oneself"),
        pytest.param(
            requester_is_the_writer, new(change_request(requester=None)), None, id="names-nobody"
        ),
        pytest.param(
            no_approvals_on_create, new(approved_change()), (False, "ApprovalsOnCreate"),
            id="with-approvals",
        ),
        pytest.param(no_approvals_on_create, new(PENDING), None, id="without-approvals"),
        pytest.param(
            emergency_by_its_group, new(EMERGENCY), (False, "NotInEmergencyGroup"),
            id="emergency-by-a-developer",
        ),
        pytest.param(
            emergency_by_its_group, new(EMERGENCY, EMERGENCY_MEMBER), None,
            id="emergency-by-a-member",
        ),
        pytest.param(
            emergency_by_its_group, NewChange(EMERGENCY, EMERGENCY_MEMBER, None, False),
            (False, "NotInEmergencyGroup"), id="emergency-without-a-service",
        ),
        pytest.param(emergency_by_its_group, new(PENDING), None, id="normal-change"),
        pytest.param(stamp_requester, new(PENDING), (True, "RequesterStamped"), id="stamp"),
    ],
)  # fmt: skip
def test_create_rules(
    rule: Callable[[NewChange], Verdict | None], subject: NewChange, expect: Outcome
) -> None:
    assert outcome(rule(subject)) == expect


def test_stamp_requester_writes_the_user_and_an_empty_approval_list() -> None:
    verdict = stamp_requester(new(change_request(requester=None), TEAMMATE))

    assert verdict.patch == [
        {"op": "add", "path": "/spec/requester", "value": "product-dev-2"},
        {"op": "add", "path": "/spec/approvals", "value": []},
    ]


# -- ChangeRequest: update ----------------------------------------------------


def edit(
    old: ChangeRequest,
    changed: ChangeRequest,
    user: User = CHANGE_MANAGER,
    service: ServicePolicy | None = None,
    *,
    no_service: bool = False,
) -> ChangeEdit:
    chosen = None if no_service else (service if service is not None else policy())
    return ChangeEdit.of(old, changed, user, chosen, NOW)


APPROVE = appended(PENDING, approval(None))
TWO_NEEDED = policy(required_approvals=2)


@pytest.mark.parametrize(
    ("rule", "subject", "expect"),
    [
        pytest.param(
            requester_immutable, edit(PENDING, with_spec(PENDING, requester="x")),
            (False, "RequesterImmutable"), id="requester-moved",
        ),
        pytest.param(requester_immutable, edit(PENDING, APPROVE), None, id="requester-kept"),
        pytest.param(
            immutable_fields, edit(PENDING, with_spec(PENDING, targets=[target("w")])),
            (False, "Immutable"), id="targets-moved",
        ),
        pytest.param(
            immutable_fields, edit(PENDING, with_spec(PENDING, summary="better")), None,
            id="summary-moved",
        ),
        pytest.param(
            approvals_append_only, edit(APPROVED, with_spec(APPROVED, approvals=[])),
            (False, "ApprovalsAppendOnly"), id="approval-removed",
        ),
        pytest.param(approvals_append_only, edit(PENDING, APPROVE), None, id="approval-added"),
        pytest.param(
            cancel_is_final,
            edit(change_request(cancel=True), with_spec(change_request(cancel=True), cancel=False)),
            (False, "CancelIsFinal"), id="un-cancel",
        ),
        pytest.param(
            cancel_is_final, edit(PENDING, with_spec(PENDING, cancel=True)), None, id="cancel"
        ),
        pytest.param(
            too_late_to_cancel, edit(IN_PROGRESS, with_spec(IN_PROGRESS, cancel=True)),
            (False, "TooLateToCancel"), id="cancel-in-progress",
        ),
        pytest.param(
            too_late_to_cancel, edit(APPROVED, with_spec(APPROVED, cancel=True)), None,
            id="cancel-before-the-rollout",
        ),
        pytest.param(
            frozen_once_decided, edit(APPROVED, with_spec(APPROVED, summary="x")),
            (False, "SpecFrozen"), id="edit-of-an-approved-change",
        ),
        pytest.param(
            frozen_once_decided, edit(APPROVED, with_spec(APPROVED, cancel=True)),
            (True, "Accepted"), id="cancel-of-an-approved-change",
        ),
        pytest.param(
            frozen_once_decided, edit(PENDING, with_spec(PENDING, summary="x")), None,
            id="edit-of-a-pending-change",
        ),
        pytest.param(
            nothing_to_stamp, edit(PENDING, with_spec(PENDING, summary="x")), (True, "Accepted"),
            id="no-approval-added",
        ),
        pytest.param(nothing_to_stamp, edit(PENDING, APPROVE), None, id="approval-added"),
        pytest.param(
            one_approval_at_a_time,
            edit(PENDING, appended(PENDING, approval(None), approval(None))),
            (False, "OneApprovalAtATime"), id="two-at-once",
        ),
        pytest.param(one_approval_at_a_time, edit(PENDING, APPROVE), None, id="one"),
        pytest.param(
            approver_is_the_writer, edit(PENDING, appended(PENDING, approval("someone"))),
            (False, "ApproverMismatch"), id="names-someone-else",
        ),
        pytest.param(
            approver_is_the_writer, edit(PENDING, appended(PENDING, approval("change-manager-1"))),
            None, id="names-oneself",
        ),
        pytest.param(approver_is_the_writer, edit(PENDING, APPROVE), None, id="names-nobody"),
        pytest.param(
            approvals_need_a_service, edit(PENDING, APPROVE, no_service=True),
            (False, "NoServiceOnCall"), id="no-serviceoncall",
        ),
        pytest.param(approvals_need_a_service, edit(PENDING, APPROVE), None, id="serviceoncall"),
        pytest.param(
            segregation_of_duties, edit(PENDING, APPROVE, REQUESTER),
            (False, "SegregationOfDuties"), id="requester",
        ),
        pytest.param(segregation_of_duties, edit(PENDING, APPROVE), None, id="someone-else"),
        pytest.param(
            approver_of_the_service, edit(PENDING, APPROVE, TEAMMATE), (False, "NotAnApprover"),
            id="teammate",
        ),
        pytest.param(approver_of_the_service, edit(PENDING, APPROVE), None, id="approver"),
        pytest.param(
            decides_once, edit(APPROVED, appended(APPROVED, approval(None)), service=TWO_NEEDED),
            (False, "AlreadyDecided"), id="second-decision",
        ),
        pytest.param(
            decides_once,
            edit(APPROVED, appended(APPROVED, approval(None)), SECOND_MANAGER, TWO_NEEDED),
            None, id="first-decision",
        ),
        pytest.param(
            rejection_says_why, edit(PENDING, appended(PENDING, approval(None, "Rejected", None))),
            (False, "RejectionNeedsComment"), id="rejection-without-comment",
        ),
        pytest.param(
            rejection_says_why, edit(PENDING, appended(PENDING, approval(None, "Rejected", "no"))),
            None, id="rejection-with-comment",
        ),
        pytest.param(
            rejection_says_why, edit(PENDING, appended(PENDING, approval(None, comment=None))),
            None, id="approval-without-comment",
        ),
        pytest.param(stamp_approval, edit(PENDING, APPROVE), (True, "ApprovalStamped"), id="stamp"),
    ],
)  # fmt: skip
def test_update_rules(
    rule: Callable[[ChangeEdit], Verdict | None], subject: ChangeEdit, expect: Outcome
) -> None:
    assert outcome(rule(subject)) == expect


def test_stamp_approval_writes_the_approver_and_the_time_at_the_new_index() -> None:
    verdict = stamp_approval(edit(APPROVED, appended(APPROVED, approval(None)), SECOND_MANAGER))

    assert verdict.patch == [
        {"op": "add", "path": "/spec/approvals/1/approver", "value": "change-manager-2"},
        {"op": "add", "path": "/spec/approvals/1/time", "value": iso(NOW)},
    ]


# -- ChangeTemplate -----------------------------------------------------------

INACTIVE = change_template(active=False)
ACTIVE = change_template(active=True)
WIDER = change_template(active=True, summary="wider")


def template(old: ChangeTemplate | None, changed: ChangeTemplate, user: User) -> TemplateEdit:
    return TemplateEdit(old, changed, user, AUTHORITIES, NOW)


def stamped(changed: ChangeTemplate, by: str) -> ChangeTemplate:
    copy = changed.model_copy(deep=True)
    copy.metadata.annotations["changegate.io/activated-by"] = by
    return copy


@pytest.mark.parametrize(
    ("rule", "subject", "expect"),
    [
        pytest.param(
            only_change_managers_activate, template(INACTIVE, ACTIVE, REQUESTER),
            (False, "NotAChangeManager"), id="activation-by-a-developer",
        ),
        pytest.param(
            only_change_managers_activate, template(INACTIVE, ACTIVE, PLATFORM_ADMIN),
            (False, "NotAChangeManager"), id="activation-by-a-platform-admin",
        ),
        pytest.param(
            only_change_managers_activate, template(INACTIVE, ACTIVE, CHANGE_MANAGER), None,
            id="activation-by-a-change-manager",
        ),
        pytest.param(
            only_change_managers_activate, template(ACTIVE, WIDER, REQUESTER), None,
            id="edit-of-an-active-template",
        ),
        pytest.param(
            stamp_activation, template(None, ACTIVE, CHANGE_MANAGER), (True, "Activated"),
            id="created-active",
        ),
        pytest.param(
            stamp_activation, template(ACTIVE, ACTIVE, CHANGE_MANAGER), None,
            id="already-active",
        ),
        pytest.param(
            activation_stamp_kept, template(ACTIVE, stamped(ACTIVE, "forged"), REQUESTER),
            (True, "StampRestored"), id="stamp-forged",
        ),
        pytest.param(
            activation_stamp_kept,
            template(stamped(ACTIVE, "cm"), stamped(WIDER, "cm"), REQUESTER), None,
            id="stamp-kept",
        ),
        pytest.param(
            edit_deactivates, template(ACTIVE, WIDER, REQUESTER), (True, "Deactivated"),
            id="spec-edit-of-an-active-template",
        ),
        pytest.param(
            edit_deactivates, template(ACTIVE, ACTIVE, REQUESTER), None, id="no-spec-edit"
        ),
        pytest.param(
            edit_deactivates, template(INACTIVE, change_template(summary="x"), REQUESTER), None,
            id="edit-of-a-draft",
        ),
        pytest.param(
            edit_deactivates, template(ACTIVE, INACTIVE, REQUESTER), None, id="deactivation"
        ),
    ],
)  # fmt: skip
def test_template_rules(
    rule: Callable[[TemplateEdit], Verdict | None], subject: TemplateEdit, expect: Outcome
) -> None:
    assert outcome(rule(subject)) == expect


def test_restored_stamp_puts_the_old_value_back() -> None:
    verdict = activation_stamp_kept(
        template(stamped(ACTIVE, "cm"), stamped(ACTIVE, "forged"), REQUESTER)
    )

    assert verdict is not None
    assert verdict.patch == [
        {"op": "add", "path": "/metadata/annotations/changegate.io~1activated-by", "value": "cm"}
    ]


# -- ServiceOnCall ------------------------------------------------------------

SOC = service_on_call()
MORE_APPROVALS = service_on_call(required_approvals=2)
DEFAULT_POLICY = service_on_call(approver_users=[], approver_groups=[], emergency_groups=[])


def service(
    old: ServiceOnCall | None,
    changed: ServiceOnCall | None,
    user: User = TEAMMATE,
    *,
    terminating: bool = False,
) -> ServiceEdit:
    return ServiceEdit(old, changed, user, AUTHORITIES, terminating)


@pytest.mark.parametrize(
    ("rule", "subject", "expect"),
    [
        pytest.param(
            namespace_going_away, service(SOC, None, terminating=True),
            (True, "NamespaceTerminating"), id="delete-while-namespace-terminates",
        ),
        pytest.param(namespace_going_away, service(SOC, None), None, id="plain-delete"),
        pytest.param(
            namespace_going_away, service(SOC, MORE_APPROVALS, terminating=True), None,
            id="update-while-namespace-terminates",
        ),
        pytest.param(
            governance_untouched, service(SOC, SOC), (True, "Accepted"), id="untouched"
        ),
        pytest.param(governance_untouched, service(SOC, MORE_APPROVALS), None, id="touched"),
        pytest.param(
            by_governance, service(SOC, MORE_APPROVALS, CHANGE_MANAGER), (True, "Accepted"),
            id="change-manager",
        ),
        pytest.param(
            by_governance, service(SOC, MORE_APPROVALS, PLATFORM_ADMIN), (True, "Accepted"),
            id="platform-admin",
        ),
        pytest.param(by_governance, service(SOC, MORE_APPROVALS), None, id="team-member"),
        pytest.param(
            adds_governance_only, service(None, DEFAULT_POLICY), (True, "Accepted"),
            id="create-with-default-approvers",
        ),
        pytest.param(
            adds_governance_only, service(None, SOC), None, id="create-naming-approvers"
        ),
        pytest.param(
            adds_governance_only, service(SOC, DEFAULT_POLICY), None, id="update-to-defaults"
        ),
        pytest.param(
            adds_governance_only, service(DEFAULT_POLICY, None), None, id="delete"
        ),
        pytest.param(
            refuse_governance_change, service(SOC, None), (False, "GovernanceChange"),
            id="refusal",
        ),
    ],
)  # fmt: skip
def test_service_rules(
    rule: Callable[[ServiceEdit], Verdict | None], subject: ServiceEdit, expect: Outcome
) -> None:
    assert outcome(rule(subject)) == expect


@pytest.mark.parametrize(
    ("old", "changed", "what"),
    [
        pytest.param(SOC, None, "may delete a ServiceOnCall", id="delete"),
        pytest.param(None, SOC, "may create a ServiceOnCall that declares", id="create"),
        pytest.param(SOC, MORE_APPROVALS, "may change spec.changePolicy", id="update"),
    ],
)
def test_refusal_says_what_was_attempted(
    old: ServiceOnCall | None, changed: ServiceOnCall | None, what: str
) -> None:
    verdict = refuse_governance_change(service(old, changed))

    assert what in verdict.message
    assert "product-dev-2 may not" in verdict.message


@pytest.mark.parametrize(
    ("terminating", "allowed"),
    [pytest.param(True, True, id="terminating"), pytest.param(False, False, id="live")],
)
def test_delete_while_the_namespace_terminates_is_always_allowed(
    terminating: bool, allowed: bool
) -> None:
    verdict = review_service_on_call(
        SOC, None, TEAMMATE, AUTHORITIES, namespace_terminating=terminating
    )

    assert verdict.allowed is allowed
