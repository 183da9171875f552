"""Policy is governance's: the rules that keep a team from widening its own powers.

Tables for the ServiceOnCall rules (the whole change policy and environments,
freezes only tightened, names and namespaces claimed once and only with rights
there), the ChangeTemplate rules (a non-manager's spec edit deactivates; a
selector's scope is fixed at activation) and the review state of changes.
"""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from changegate.api.v1alpha1.changerequest import ChangeRequest
from changegate.api.v1alpha1.changetemplate import ChangeTemplate
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.governance import (
    Claims,
    claimed_namespaces,
    review_change_request,
    review_change_template,
    review_service_on_call,
)
from changegate.core.change.templates import template_fit, template_status
from changegate.core.common import User
from tests.unit.builders import (
    AUTHORITIES,
    CHANGE_MANAGER,
    EMERGENCY_MEMBER,
    NOW,
    PLATFORM_ADMIN,
    REQUESTER,
    TEAMMATE,
    at,
    change_request,
    freeze,
    iso,
    policy,
    service_on_call,
    standard_template,
    target,
)

# -- ServiceOnCall: what a team may change ------------------------------------------

BASE = service_on_call(freezes=[freeze("peak", start=10, end=20, change_types=["Normal"])])


def edited(soc: ServiceOnCall = BASE, **changes: Any) -> ServiceOnCall:
    """The ServiceOnCall with changePolicy fields replaced (camelCase) or environments given."""
    body = soc.to_json()
    environments = changes.pop("environments", None)
    if environments is not None:
        body["spec"]["environments"] = environments
    body["spec"]["changePolicy"].update(changes)
    return ServiceOnCall.model_validate(body)


ENVIRONMENTS = BASE.to_json()["spec"]["environments"]
PEAK = BASE.to_json()["spec"]["changePolicy"]["freezes"][0]

TEAM_ROWS = [
    # A team may add a freeze or lengthen one.
    ("add-a-freeze", edited(freezes=[PEAK, freeze("audit", 30, 40)]), True, ""),
    ("start-earlier", edited(freezes=[PEAK | {"startTime": iso(at(5))}]), True, ""),
    ("end-later", edited(freezes=[PEAK | {"endTime": iso(at(50))}]), True, ""),
    ("more-change-types", edited(freezes=[PEAK | {"changeTypes": ["Normal", "Standard"]}]), True, ""),
    ("reason-reworded", edited(freezes=[PEAK | {"reason": "peak trading"}]), True, ""),
    # Anything else of the policy is governance's.
    ("remove-a-freeze", edited(freezes=[]), False, "spec.changePolicy.freezes (peak: removed or shortened"),
    ("start-later", edited(freezes=[PEAK | {"startTime": iso(at(11))}]), False, "freezes (peak"),
    ("end-earlier", edited(freezes=[PEAK | {"endTime": iso(at(19))}]), False, "freezes (peak"),
    ("fewer-change-types", edited(freezes=[PEAK | {"changeTypes": ["Emergency"]}]), False, "freezes (peak"),
    ("rename-a-freeze", edited(freezes=[PEAK | {"name": "peak-2"}]), False, "freezes (peak"),
    ("validity-ten-years", edited(approvalValiditySeconds=315360000), False, "spec.changePolicy.approvalValiditySeconds"),
    ("rollback-policy", edited(rollback="RequireChange"), False, "spec.changePolicy.rollback"),
    ("restart-policy", edited(restart="RequireChange"), False, "spec.changePolicy.restart"),
    ("an-environment-added", edited(environments=[*ENVIRONMENTS, {"name": "qa", "namespace": "payments-qa"}]), False, "spec.environments"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("new", "allowed", "words"), [r[1:] for r in TEAM_ROWS], ids=[r[0] for r in TEAM_ROWS]
)
def test_a_team_only_adds_or_lengthens_freezes(new: ServiceOnCall, allowed: bool, words: str) -> None:  # fmt: skip
    verdict = review_service_on_call(BASE, new, TEAMMATE, AUTHORITIES)

    assert verdict.allowed is allowed, verdict.message
    assert words in verdict.message
    if not allowed:
        assert "only change managers or platform administrators" in verdict.message
        assert "product-dev-2 may not" in verdict.message


@pytest.mark.parametrize("user", [CHANGE_MANAGER, PLATFORM_ADMIN], ids=["manager", "admin"])
@pytest.mark.parametrize("row", [r for r in TEAM_ROWS if not r[2]], ids=lambda r: r[0])
def test_governance_may_change_any_of_it(user: User, row: tuple[Any, ...]) -> None:
    assert review_service_on_call(BASE, row[1], user, AUTHORITIES).allowed


SECOND_ENTRY = edited(
    environments=[*ENVIRONMENTS, {"name": "shadow", "namespace": "payments-prod"}]
)


@pytest.mark.parametrize("user", [TEAMMATE, CHANGE_MANAGER, PLATFORM_ADMIN])
def test_a_namespace_is_one_environment_of_a_service(user: User) -> None:
    verdict = review_service_on_call(BASE, SECOND_ENTRY, user, AUTHORITIES)

    assert (verdict.allowed, verdict.reason) == (False, "NamespaceListedTwice")
    assert "payments-prod" in verdict.message


# -- ServiceOnCall: creating one -------------------------------------------------------

DEFAULTS = service_on_call(approver_users=[], approver_groups=[], emergency_groups=[])

CREATE_ROWS = [
    ("defaults", DEFAULTS, True, ""),
    ("stricter-than-defaults", edited(DEFAULTS, requiredApprovals=2, rollback="RequireChange", approvalValiditySeconds=3600), True, ""),
    ("own-approvers", edited(DEFAULTS, approvers={"users": ["product-dev-2"]}), False, "declares spec.changePolicy.approvers"),
    ("own-emergency-group", edited(DEFAULTS, emergencyGroups=["team-payments"]), False, "spec.changePolicy.emergencyGroups"),
    ("long-validity", edited(DEFAULTS, approvalValiditySeconds=86401), False, "approvalValiditySeconds (above 86400)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("new", "allowed", "words"), [r[1:] for r in CREATE_ROWS], ids=[r[0] for r in CREATE_ROWS]
)
def test_a_team_creates_a_service_no_weaker_than_the_defaults(new: ServiceOnCall, allowed: bool, words: str) -> None:  # fmt: skip
    verdict = review_service_on_call(None, new, REQUESTER, AUTHORITIES)

    assert verdict.allowed is allowed, verdict.message
    assert words in verdict.message


# -- ServiceOnCall: claims ----------------------------------------------------------------

CLAIM_ROWS = [
    ("nothing-taken", Claims(), TEAMMATE, True, "Accepted"),
    ("same-service-name", Claims(same_service=("other/payments-api",)), PLATFORM_ADMIN, False, "ServiceNameTaken"),
    ("production-of-another", Claims(taken={"payments-prod": "orders/orders-api"}), PLATFORM_ADMIN, False, "NamespaceTaken"),
    ("no-rights-team", Claims(without_rights=frozenset({"payments-prod"})), TEAMMATE, False, "NoRightsInNamespace"),
    ("no-rights-manager", Claims(without_rights=frozenset({"payments-prod"})), CHANGE_MANAGER, False, "NoRightsInNamespace"),
    ("no-rights-platform-admin", Claims(without_rights=frozenset({"payments-prod"})), PLATFORM_ADMIN, True, "Accepted"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("claims", "user", "allowed", "reason"),
    [r[1:] for r in CLAIM_ROWS],
    ids=[r[0] for r in CLAIM_ROWS],
)
def test_names_and_namespaces_are_claimed_once_and_with_rights(claims: Claims, user: User, allowed: bool, reason: str) -> None:  # fmt: skip
    verdict = review_service_on_call(None, DEFAULTS, user, AUTHORITIES, claims=claims)

    assert (verdict.allowed, verdict.reason) == (allowed, reason), verdict.message


def test_claimed_namespaces_are_the_new_ones_and_the_promoted_ones() -> None:
    old = service_on_call(production=("prod-a",))
    new = service_on_call(production=("prod-a", "prod-b"))
    staging_promoted = edited(
        old,
        environments=[
            {"name": "staging", "namespace": "payments-api-staging", "production": True},
            {"name": "production", "namespace": "prod-a", "production": True},
        ],
    )

    assert claimed_namespaces(None, old) == {"payments-api-staging": False, "prod-a": True}
    assert claimed_namespaces(old, new) == {"prod-b": True}
    assert claimed_namespaces(old, staging_promoted) == {"payments-api-staging": True}
    assert claimed_namespaces(new, old) == {}
    assert claimed_namespaces(old, None) == {}


# -- ChangeTemplate: a spec edit by anyone else deactivates -------------------------------

ACTIVATED = "2026-11-16T09:00:00Z"


def template(*, summary: str | None = None, by: str = "change-manager-1") -> ChangeTemplate:
    body = standard_template().to_json()
    if summary:
        body["spec"]["summary"] = summary
    body["metadata"]["annotations"] = {
        "changegate.io/activated-by": by,
        "changegate.io/activated-at": ACTIVATED,
    }
    return ChangeTemplate.model_validate(body)


def applied(new: ChangeTemplate, patch: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(new.to_json(), patch)
    return result


@pytest.mark.parametrize(
    "new",
    [
        template(summary="covers everything"),
        template(summary="covers everything", by="product-dev-1"),  # and forges the stamp
    ],
    ids=["spec-only", "spec-and-stamp"],
)
def test_a_non_manager_spec_edit_deactivates_whatever_else_it_does(new: ChangeTemplate) -> None:
    verdict = review_change_template("UPDATE", template(), new, REQUESTER, AUTHORITIES, NOW)

    assert (verdict.allowed, verdict.reason) == (True, "Deactivated")
    after = applied(new, verdict.patch)
    assert after["spec"]["active"] is False
    assert after["metadata"]["annotations"]["changegate.io/activated-by"] == "change-manager-1"


def test_a_change_manager_edit_activates_it_anew_as_them() -> None:
    new = template(summary="covers the worker too")
    verdict = review_change_template("UPDATE", template(), new, CHANGE_MANAGER, AUTHORITIES, NOW)

    assert (verdict.allowed, verdict.reason) == (True, "Reactivated")
    after = applied(new, verdict.patch)
    assert after["spec"]["active"] is True
    assert after["metadata"]["annotations"]["changegate.io/activated-at"] == iso(NOW)


# -- ChangeTemplate: the selector's scope is fixed at activation ------------------------------

PART_OF = {"app.kubernetes.io/part-of": "payments-api"}
WORKER = ("Deployment", "payments-worker")
INTRUDER = ("Deployment", "ledger")


def recorded(labels: dict[tuple[str, str], dict[str, str]]) -> ChangeTemplate:
    """The template as the controller leaves it after recording its scope from `labels`."""
    tpl = template()
    return tpl.model_copy(update={"status": template_status(tpl, NOW, None, labels)})


def test_the_scope_is_recorded_once_per_activation() -> None:
    first = recorded({WORKER: PART_OF, INTRUDER: {}})
    later = template_status(first, NOW, None, {WORKER: PART_OF, INTRUDER: PART_OF})

    assert [(w.kind.value, w.name) for w in first.status.scope] == [WORKER]
    assert later.scope == first.status.scope  # the label added later is not recorded
    assert template_status(first, NOW).scope == first.status.scope


def test_the_scope_is_cleared_when_the_template_is_deactivated() -> None:
    first = recorded({WORKER: PART_OF})
    inactive = first.model_copy(update={"spec": first.spec.model_copy(update={"active": False})})

    status = template_status(inactive, NOW, None, {WORKER: PART_OF})

    assert (status.scope, status.scope_activated_time) == ([], None)


RUNNING = {WORKER: {"api": "registry.example.com/payments/payments-api:1.41.0"},
           INTRUDER: {"api": "registry.example.com/payments/payments-api:1.41.0"}}  # fmt: skip
LABELS_LATER = {WORKER: PART_OF, INTRUDER: PART_OF}

FIT_ROWS = [
    ("recorded-worker", WORKER, recorded({WORKER: PART_OF}), LABELS_LATER, True),
    ("label-added-later", INTRUDER, recorded({WORKER: PART_OF}), LABELS_LATER, False),
    ("label-removed-since", WORKER, recorded({WORKER: PART_OF}), {WORKER: {}}, False),
    ("scope-not-recorded-yet", WORKER, template(), LABELS_LATER, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("workload", "tpl", "labels", "ok"), [r[1:] for r in FIT_ROWS], ids=[r[0] for r in FIT_ROWS]
)
def test_a_selector_covers_only_its_recorded_scope(workload: tuple[str, str], tpl: ChangeTemplate, labels: Any, ok: bool) -> None:  # fmt: skip
    change = change_request(
        type="Standard",
        targets=[
            target(workload[1], images={"api": "registry.example.com/payments/payments-api:1.42.0"})
        ],
    )
    fit = template_fit(change, tpl, RUNNING, labels, NOW)

    assert fit.ok is ok, fit.why
    if not ok:
        assert "outside the scope" in fit.why


# -- Review state of changes ---------------------------------------------------------------


def labelled(change: ChangeRequest, **labels: str) -> ChangeRequest:
    body = change.to_json()
    body["metadata"]["labels"] = {k.replace("_", "/"): v for k, v in labels.items()}
    return ChangeRequest.model_validate(body)


EMERGENCY = labelled(
    change_request(type="Emergency", requester=EMERGENCY_MEMBER.username),
    **{"changegate.io_review": "required"},
)
REVIEWED = labelled(EMERGENCY, **{"changegate.io_review": "done"})
UNLABELLED = labelled(EMERGENCY)


@pytest.mark.parametrize(
    ("new", "may_review", "allowed"),
    [
        (REVIEWED, False, False),
        (UNLABELLED, False, False),
        (REVIEWED, True, True),
        (UNLABELLED, True, True),
        (EMERGENCY, False, True),
    ],
    ids=["team-marks-reviewed", "team-removes", "manager-marks", "manager-removes", "untouched"],
)
def test_review_state_is_changed_only_by_change_managers(
    new: ChangeRequest, may_review: bool, allowed: bool
) -> None:
    verdict = review_change_request(
        "UPDATE", EMERGENCY, new, EMERGENCY_MEMBER, policy(), NOW, may_review=may_review
    )

    assert verdict.allowed is allowed, verdict.message
    if not allowed:
        assert verdict.reason == "ReviewStateByChangeManagers"
        assert "changegate.io/review" in verdict.message


def test_a_change_raised_by_hand_cannot_come_reviewed() -> None:
    body = change_request(type="Emergency", requester=None)
    verdict = review_change_request(
        "CREATE", None, labelled(body, **{"changegate.io_review": "done"}),
        EMERGENCY_MEMBER, policy(), NOW,
    )  # fmt: skip

    assert (verdict.allowed, verdict.reason) == (False, "ReviewStateByChangeManagers")


def test_an_emergency_change_raised_by_hand_is_flagged_for_review() -> None:
    body = change_request(type="Emergency", requester=None)
    verdict = review_change_request("CREATE", None, body, EMERGENCY_MEMBER, policy(), NOW)

    assert verdict.allowed, verdict.message
    after = jsonpatch.apply_patch(body.to_json(), verdict.patch)
    assert after["metadata"]["labels"]["changegate.io/review"] == "required"
