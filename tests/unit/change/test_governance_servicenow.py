"""Approvals in ServiceNow: who sets the policy, who records them, and segregation of duties."""

from __future__ import annotations

from typing import Any

from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.governance import review_change_request, review_service_on_call
from tests.unit.builders import (
    AUTHORITIES,
    CHANGE_MANAGER,
    NOW,
    OPERATOR,
    PLATFORM_ADMIN,
    REQUESTER,
    TEAMMATE,
    change_request,
    service_on_call,
    with_spec,
)


def in_servicenow(soc: ServiceOnCall | None = None) -> ServiceOnCall:
    soc = soc or service_on_call()
    body = soc.to_json()
    body["spec"]["changePolicy"]["approvalsIn"] = "ServiceNow"
    body["spec"]["team"]["members"] = [
        {"user": REQUESTER.username, "contacts": [{"type": "Email", "value": "dev1@example.com"}]}
    ]
    return ServiceOnCall.model_validate(body)


SN_POLICY = ServicePolicy.from_model(in_servicenow())


def via(external: str, decision: str = "Approved") -> dict[str, Any]:
    return {"decision": decision, "via": "ServiceNow", "externalUser": external, "comment": "ok"}


def review(approval: dict[str, Any], user: Any = OPERATOR, policy: Any = SN_POLICY) -> Any:
    old = change_request()
    new = with_spec(old, approvals=[approval])
    operator = user is OPERATOR
    return review_change_request("UPDATE", old, new, user, policy, NOW, operator=operator)


def test_only_change_managers_set_where_approvals_happen() -> None:
    old, new = service_on_call(), in_servicenow()

    team = review_service_on_call(old, new, TEAMMATE, AUTHORITIES)
    admin = review_service_on_call(old, new, PLATFORM_ADMIN, AUTHORITIES)
    manager = review_service_on_call(old, new, CHANGE_MANAGER, AUTHORITIES)

    assert (team.allowed, team.reason) == (False, "NotAChangeManager")
    assert (admin.allowed, admin.reason) == (False, "NotAChangeManager")
    assert manager.allowed


def test_the_controller_records_an_approval_made_in_servicenow() -> None:
    verdict = review(via("bob"))

    assert verdict.allowed
    assert verdict.reason == "ApprovalStamped"


def test_the_requesters_own_approval_in_servicenow_is_refused() -> None:
    by_name = review(via(REQUESTER.username))
    by_email = review(via("DEV1@example.com"))

    assert (by_name.allowed, by_name.reason) == (False, "SegregationOfDuties")
    assert (by_email.allowed, by_email.reason) == (False, "SegregationOfDuties")


def test_nobody_but_the_controller_claims_an_approval_via_servicenow() -> None:
    verdict = review(via("bob"), user=CHANGE_MANAGER)

    assert (verdict.allowed, verdict.reason) == (False, "ViaServiceNowByController")


def test_kubernetes_approvals_are_refused_when_approvals_happen_in_servicenow() -> None:
    verdict = review({"decision": "Approved"}, user=CHANGE_MANAGER)

    assert (verdict.allowed, verdict.reason) == (False, "ApprovalsInServiceNow")


def test_a_servicenow_approval_counts_once_as_the_servicenow_user() -> None:
    change = with_spec(change_request(), approvals=[via("bob"), via(REQUESTER.username)])
    facts = ChangeFacts.from_model(change)

    assert facts.approvers == ("bob via ServiceNow",)
    assert SN_POLICY.required_approvals == 1
    assert facts.effective_phase(SN_POLICY).value == "Approved"
