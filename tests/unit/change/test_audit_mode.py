"""Audit-only mode: what enforcement would refuse is admitted, with the same words, and recorded.

Tables for the decision (each refusal becomes an admission with a warning that
repeats it line by line; an allowed rollout is decided as under Enforce), the
stamps the workload carries to the controller, the namespace's annotation (only
platform admins), the ServiceOnCall's changePolicy.enforcement (only governance),
the DeploymentRecord of an audit-only rollout, and the webhook's answer.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from changegate.api.v1alpha1.deploymentrecord import AdmissionBasis, DeploymentRecord
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.admission import (
    ADMISSION_ANNOTATION,
    AUDIT_ANNOTATION,
    AUDIT_PREFIX,
    BREAK_GLASS,
    CHANGE_ANNOTATION,
    DEPLOYER_ANNOTATION,
    Decision,
    Reason,
    WorkloadRequest,
    decide_rollout,
)
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.governance import review_service_on_call
from changegate.core.change.namespaces import (
    ENFORCEMENT_ANNOTATION,
    LabelChange,
    audit_only,
    decide_namespace_update,
)
from changegate.core.change.rollouts import evidence, observe
from changegate.core.common import User
from changegate.metrics import AUDIT_ONLY_ADMISSIONS
from tests.unit.builders import (
    AUTHORITIES,
    CHANGE_MANAGER,
    EMERGENCY_MEMBER,
    NEW_IMAGE,
    NOW,
    OLD_IMAGE,
    PLATFORM_ADMIN,
    REGISTRY,
    REQUESTER,
    admitted,
    approved_change,
    at,
    facts,
    freeze,
    policy,
    progressing,
    request,
    restarted,
    rollout,
    service_on_call,
    target,
    update,
    with_workload_status,
    workload_body,
)
from tests.unit.test_webhook_server import Call, as_body, patch_of, review_body, served, state_with

NEWER_IMAGE = f"{REGISTRY}/payments-api:1.43.0"
IMAGE_UPDATE = update(images={"api": NEW_IMAGE})
FROZEN = (("payments-api", "payments-prod/payments-api-high-error-rate-3f9a"),)
EARLIER = facts(
    name="payments-api-1-41-0",
    phase="Completed",
    targets=[target(images={"api": OLD_IMAGE})],
    window=(-48, -46),
    rollouts=[rollout(images={"api": OLD_IMAGE})],
)


def audit(service: ServicePolicy) -> ServicePolicy:
    return dataclasses.replace(service, audit_only=True)


def in_audited_namespace(req: WorkloadRequest) -> WorkloadRequest:
    return dataclasses.replace(req, namespace_audit=True)


# (id, request, policy under Enforce (None: no ServiceOnCall), changes, incident freezes, reason)
REFUSED = [
    ("no-change", IMAGE_UPDATE, policy(), (), (), Reason.NO_CHANGE),
    ("pending-approval", IMAGE_UPDATE, policy(), (facts(),), (), Reason.NO_CHANGE),
    ("image-mismatch", update(images={"api": NEWER_IMAGE}), policy(), (facts(approved_change()),), (), Reason.NO_CHANGE),
    ("window-closed", IMAGE_UPDATE, policy(), (facts(approved_change(window=(-3, -2))),), (), Reason.NO_CHANGE),
    ("freeze", IMAGE_UPDATE, policy(freezes=[freeze()]), (facts(approved_change()),), (), Reason.FREEZE),
    ("incident-freeze", IMAGE_UPDATE, policy(), (facts(approved_change()),), FROZEN, Reason.INCIDENT_FREEZE),
    ("break-glass-by-a-non-member", update(images={"api": NEWER_IMAGE}, annotations={BREAK_GLASS: "hotfix"}), policy(), (), (), Reason.BREAK_GLASS_REFUSED),
    ("restart-needing-a-change", request(workload_body(), restarted(workload_body())), policy(restart="RequireChange"), (), (), Reason.NO_CHANGE),
    ("new-workload", request(None, workload_body(images={"api": NEWER_IMAGE})), policy(), (), (), Reason.NO_CHANGE),
]  # fmt: skip

ALLOWED = [
    ("approved-change", IMAGE_UPDATE, policy(), (facts(approved_change()),), (), Reason.APPROVED_CHANGE),
    ("restart", request(workload_body(), restarted(workload_body())), policy(), (), (), Reason.RESTART),
    ("rollback", update(workload_body(images={"api": NEW_IMAGE}), images={"api": OLD_IMAGE}), policy(), (EARLIER,), (), Reason.ROLLBACK),
    ("break-glass-by-a-member", update(user=EMERGENCY_MEMBER, images={"api": NEWER_IMAGE}, annotations={BREAK_GLASS: "x"}), policy(), (), (), Reason.BREAK_GLASS),
    ("scale", update(replicas=7), policy(), (), (), Reason.NOT_A_ROLLOUT),
    ("unlabelled-namespace-without-service", update(images={"api": NEWER_IMAGE}, labelled=False), None, (), (), Reason.UNGOVERNED),
]  # fmt: skip


def ids(rows: list[tuple[Any, ...]]) -> list[str]:
    return [r[0] for r in rows]


def decide(
    req: WorkloadRequest,
    service: ServicePolicy | None,
    changes: tuple[ChangeFacts, ...],
    freezes: tuple[tuple[str, str], ...],
) -> Decision:
    return decide_rollout(req, service, changes, NOW, freezes)


def audited_ways(
    req: WorkloadRequest, service: ServicePolicy | None
) -> list[tuple[WorkloadRequest, ServicePolicy | None]]:
    """Audit by the ServiceOnCall's changePolicy.enforcement, and by the namespace's annotation."""
    ways = [(in_audited_namespace(req), service)]
    return ways + ([(req, audit(service))] if service is not None else [])


@pytest.mark.parametrize(("id", "req", "service", "changes", "freezes", "reason"), REFUSED, ids=ids(REFUSED))  # fmt: skip
def test_each_refusal_becomes_an_admission_warning_with_the_same_words(
    id: str,
    req: WorkloadRequest,
    service: ServicePolicy,
    changes: tuple[ChangeFacts, ...],
    freezes: tuple[tuple[str, str], ...],
    reason: Reason,
) -> None:
    refusal = decide(req, service, changes, freezes)
    assert (refusal.allowed, refusal.reason) == (False, reason)
    for audited_req, audited_service in audited_ways(req, service):
        decision = decide(audited_req, audited_service, changes, freezes)
        assert (decision.allowed, decision.reason) == (True, Reason.AUDIT_ONLY)
        assert decision.refusal is not None
        assert decision.refusal.explain() == refusal.explain()
        assert "\n".join(decision.warnings) == AUDIT_PREFIX + refusal.explain()
        assert decision.warnings[0].startswith(
            "changegate (audit mode): this rollout would be refused: "
        )
        assert any(w.strip().startswith("To proceed:") for w in decision.warnings) == bool(
            refusal.fix
        )
        # The API server drops a warning with a control character (a newline too).
        assert all(ch.isprintable() for w in decision.warnings for ch in w)
        assert decision.recorded


def test_a_labelled_namespace_without_a_service_in_audit_mode_admits_with_the_refusal() -> None:
    req = update(images={"api": NEW_IMAGE}, labelled=True)
    refusal = decide(req, None, (), ())
    assert refusal.reason is Reason.NO_SERVICE
    decision = decide(in_audited_namespace(req), None, (), ())
    assert (decision.allowed, decision.reason) == (True, Reason.AUDIT_ONLY)
    assert decision.warnings[0] == AUDIT_PREFIX + refusal.message
    assert decision.annotations[ADMISSION_ANNOTATION] == "AuditOnly"


@pytest.mark.parametrize(("id", "req", "service", "changes", "freezes", "reason"), ALLOWED, ids=ids(ALLOWED))  # fmt: skip
def test_an_allowed_rollout_is_decided_as_under_enforce_and_carries_no_warning(
    id: str,
    req: WorkloadRequest,
    service: ServicePolicy | None,
    changes: tuple[ChangeFacts, ...],
    freezes: tuple[tuple[str, str], ...],
    reason: Reason,
) -> None:
    enforced = decide(req, service, changes, freezes)
    assert (enforced.allowed, enforced.reason) == (True, reason)
    for audited_req, audited_service in audited_ways(req, service):
        decision = decide(audited_req, audited_service, changes, freezes)
        assert (decision.allowed, decision.reason) == (True, reason)
        assert (decision.warnings, decision.refusal) == ((), None)
        assert decision.annotations == enforced.annotations
        assert AUDIT_ANNOTATION not in decision.annotations


def test_an_audit_only_rollout_is_stamped_with_who_how_when_and_why() -> None:
    # The workload ran a change's images before: that change did not admit this rollout.
    old = workload_body(annotations={CHANGE_ANNOTATION: "payments-api-1-41-0"})
    req = update(old, images={"api": NEWER_IMAGE}, annotations={CHANGE_ANNOTATION: "payments-api-1-41-0"})  # fmt: skip
    decision = decide(req, audit(policy()), (facts(),), ())
    stamps = decision.annotations
    assert stamps[ADMISSION_ANNOTATION] == "AuditOnly"
    assert stamps[DEPLOYER_ANNOTATION] == REQUESTER.username
    assert stamps[CHANGE_ANNOTATION] == ""  # removed
    assert stamps[AUDIT_ANNOTATION] == (
        "NoApprovedChange: changegate: rollout of Deployment/payments-api in payments-prod"
        " refused: no approved ChangeRequest of service payments-api covers it;"
        " ChangeRequest payments-api-1-42-0: pending approval 0 of 1"
    )
    assert decision.message == (
        "Deployment/payments-api in payments-prod admitted in audit-only mode; enforcement"
        " would refuse it (NoApprovedChange)"
    )


def test_the_audit_reason_is_cut_to_what_a_record_holds() -> None:
    many = tuple(facts(name=f"payments-api-{i:03d}") for i in range(60))
    decision = decide(IMAGE_UPDATE, audit(policy()), many, ())
    assert len(decision.annotations[AUDIT_ANNOTATION]) == 1024


def test_a_later_approved_rollout_takes_the_audit_reason_off() -> None:
    stamped = {ADMISSION_ANNOTATION: "AuditOnly", AUDIT_ANNOTATION: "NoApprovedChange: ..."}
    old = workload_body(annotations=stamped)
    req = update(old, images={"api": NEW_IMAGE}, annotations=stamped)
    decision = decide(req, audit(policy()), (facts(approved_change()),), ())
    assert decision.reason is Reason.APPROVED_CHANGE
    assert decision.annotations[AUDIT_ANNOTATION] == ""
    assert decision.annotations[ADMISSION_ANNOTATION] == "ApprovedChange"


@pytest.mark.parametrize(
    ("old", "new", "kept"),
    [
        pytest.param({}, {AUDIT_ANNOTATION: "forged"}, "", id="added-by-hand-is-removed"),
        pytest.param(
            {AUDIT_ANNOTATION: "real"},
            {AUDIT_ANNOTATION: "edited"},
            "real",
            id="edited-is-put-back",
        ),
        pytest.param({AUDIT_ANNOTATION: "real"}, {}, "real", id="removed-is-put-back"),
    ],
)
def test_nobody_but_the_webhook_writes_the_audit_reason(
    old: dict[str, str], new: dict[str, str], kept: str
) -> None:
    req = update(workload_body(annotations=old), annotations=new, replicas=5)
    decision = decide(req, audit(policy()), (), ())
    assert decision.reason is Reason.NOT_A_ROLLOUT
    assert decision.annotations == {AUDIT_ANNOTATION: kept}


# -- the namespace's annotation: platform admins only ----------------------------------

LABEL = "changegate.io/governed"
GOVERNED = {LABEL: "true"}
AUDIT = {ENFORCEMENT_ANNOTATION: "Audit"}


def namespace_edit(
    user: User,
    old_ann: dict[str, str],
    new_ann: dict[str, str],
    old_labels: dict[str, str] = GOVERNED,
    new_labels: dict[str, str] = GOVERNED,
) -> Decision:
    change = LabelChange("payments-prod", LABEL, old_labels, new_labels, user, old_ann, new_ann)
    return decide_namespace_update(change, policy(), AUTHORITIES.platform_admin_groups)


NAMESPACE_ROWS = [
    ("admin-sets-audit", PLATFORM_ADMIN, {}, AUDIT, GOVERNED, GOVERNED, True, "set to changegate.io/enforcement=Audit by platform admin"),
    ("admin-sets-enforce-back", PLATFORM_ADMIN, AUDIT, {}, GOVERNED, GOVERNED, True, "=Enforce"),
    ("team-sets-audit", REQUESTER, {}, AUDIT, GOVERNED, GOVERNED, False, "product-dev-1 may not set changegate.io/enforcement=Audit on governed namespace payments-prod: only platform admins (platform-admins, system:masters)"),
    ("change-manager-sets-audit", CHANGE_MANAGER, {}, AUDIT, GOVERNED, GOVERNED, False, "only platform admins"),
    ("team-takes-audit-off", REQUESTER, AUDIT, {}, GOVERNED, GOVERNED, False, "=Enforce"),
    ("team-governs-an-annotated-namespace", REQUESTER, AUDIT, AUDIT, {}, GOVERNED, False, "only platform admins"),
    ("team-governs-a-plain-namespace", REQUESTER, {}, {}, {}, GOVERNED, True, "stays as it was"),
    ("team-edits-another-label", REQUESTER, AUDIT, AUDIT, GOVERNED, GOVERNED | {"tier": "gold"}, True, "stays as it was"),
    ("admin-misspells-the-mode", PLATFORM_ADMIN, {}, {ENFORCEMENT_ANNOTATION: "audit"}, GOVERNED, GOVERNED, False, "must be Enforce or Audit, not 'audit'"),
]  # fmt: skip


@pytest.mark.parametrize(("id", "user", "old_ann", "new_ann", "old_labels", "new_labels", "allowed", "words"), NAMESPACE_ROWS, ids=ids(NAMESPACE_ROWS))  # fmt: skip
def test_only_platform_admins_put_a_governed_namespace_in_audit_mode(
    id: str,
    user: User,
    old_ann: dict[str, str],
    new_ann: dict[str, str],
    old_labels: dict[str, str],
    new_labels: dict[str, str],
    allowed: bool,
    words: str,
) -> None:
    decision = namespace_edit(user, old_ann, new_ann, old_labels, new_labels)
    assert decision.allowed is allowed
    assert words in decision.message


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        (GOVERNED, AUDIT, True),
        (GOVERNED, {ENFORCEMENT_ANNOTATION: "Enforce"}, False),
        (GOVERNED, {}, False),
        ({}, AUDIT, False),  # not governed at all: nothing to audit
        ({LABEL: "false"}, AUDIT, False),
    ],
)
def test_a_namespace_is_in_audit_mode_when_governed_and_annotated(
    labels: dict[str, str], annotations: dict[str, str], expected: bool
) -> None:
    assert audit_only(labels, annotations, LABEL) is expected


# -- the ServiceOnCall's changePolicy.enforcement: governance only -----------------------


def enforcing(mode: str, soc: ServiceOnCall | None = None) -> ServiceOnCall:
    body = (soc or service_on_call(approver_users=[], approver_groups=[], emergency_groups=[])).to_json()  # fmt: skip
    body["spec"]["changePolicy"]["enforcement"] = mode
    return ServiceOnCall.model_validate(body)


def with_freeze(soc: ServiceOnCall) -> ServiceOnCall:
    body = soc.to_json()
    body["spec"]["changePolicy"]["freezes"] = [freeze("audit-week", 10, 20)]
    return ServiceOnCall.model_validate(body)


SERVICE_ROWS = [
    ("team-creates-in-audit", None, enforcing("Audit"), REQUESTER, False),
    ("team-creates-in-enforce", None, enforcing("Enforce"), REQUESTER, True),
    ("team-switches-to-audit", enforcing("Enforce"), enforcing("Audit"), REQUESTER, False),
    ("team-switches-to-enforce", enforcing("Audit"), enforcing("Enforce"), REQUESTER, False),
    ("team-adds-a-freeze-in-audit", enforcing("Audit"), with_freeze(enforcing("Audit")), REQUESTER, True),
    ("change-manager-switches-to-audit", enforcing("Enforce"), enforcing("Audit"), CHANGE_MANAGER, True),
    ("change-manager-switches-back", enforcing("Audit"), enforcing("Enforce"), CHANGE_MANAGER, True),
    ("platform-admin-creates-in-audit", None, enforcing("Audit"), PLATFORM_ADMIN, True),
]  # fmt: skip


@pytest.mark.parametrize(("id", "old", "new", "user", "allowed"), SERVICE_ROWS, ids=ids(SERVICE_ROWS))  # fmt: skip
def test_only_governance_sets_the_enforcement_of_a_service(
    id: str, old: ServiceOnCall | None, new: ServiceOnCall, user: User, allowed: bool
) -> None:
    verdict = review_service_on_call(old, new, user, AUTHORITIES)
    assert verdict.allowed is allowed, verdict.message
    if not allowed:
        assert verdict.reason == "EnforcementByGovernance"
        assert "may set spec.changePolicy.enforcement" in verdict.message
        assert "product-dev-1 may not" in verdict.message


def test_enforce_is_the_default_and_audit_reaches_the_policy() -> None:
    assert service_on_call().spec.change_policy.enforcement.value == "Enforce"
    assert not policy().audit_only
    assert ServicePolicy.from_model(enforcing("Audit")).audit_only


# -- the evidence -----------------------------------------------------------------


def audit_only_body(**annotations: str) -> dict[str, Any]:
    """A Deployment the webhook admitted in audit-only mode, rolled out in full."""
    body = admitted(workload_body(images={"api": NEWER_IMAGE}, replicas=1), basis="AuditOnly", change=None)  # fmt: skip
    body["metadata"]["annotations"] |= annotations
    status = {
        "replicas": 1,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
        "conditions": [progressing("NewReplicaSetAvailable", at(-0.1))],
    }
    return with_workload_status(body, **status)


def test_an_audit_only_rollout_is_recorded_with_its_basis_and_why() -> None:
    why = "NoApprovedChange: changegate: rollout of Deployment/payments-api refused"
    seen = observe(audit_only_body(**{AUDIT_ANNOTATION: why}), NOW)
    assert seen is not None
    assert (seen.basis, seen.audit_reason, seen.change) == (AdmissionBasis.AUDIT_ONLY, why, None)
    record = evidence(seen, None, "payments-api", "production", True, {})
    spec = record.spec
    assert (spec.admission, spec.audit_reason, spec.change_request) == ("AuditOnly", why, None)
    body = record.to_json()
    assert body["spec"]["admission"] == "AuditOnly"
    assert body["spec"]["auditReason"] == why
    assert DeploymentRecord.model_validate(body).spec.audit_reason == why


def test_an_audit_only_rollout_without_its_reason_still_says_audit_only() -> None:
    seen = observe(audit_only_body(), NOW)
    assert seen is not None
    assert seen.audit_reason == "not stamped"


def test_another_basis_carries_no_audit_reason() -> None:
    body = audit_only_body(**{AUDIT_ANNOTATION: "stale"})
    body["metadata"]["annotations"][ADMISSION_ANNOTATION] = "ApprovedChange"
    seen = observe(body, NOW)
    assert seen is not None
    assert seen.audit_reason is None


# -- the webhook's answer -------------------------------------------------------------


def audit_state() -> Any:
    return state_with(as_body(enforcing("Audit", service_on_call())))


def counted(kind: str = "Deployment", reason: str = "NoApprovedChange") -> float:
    sample = AUDIT_ONLY_ADMISSIONS.labels("payments-prod", kind, reason)
    return float(sample._value.get())


def test_the_webhook_admits_with_warnings_an_event_and_a_count() -> None:
    state = audit_state()
    new = workload_body(images={"api": NEWER_IMAGE})
    before = counted()

    async def test(call: Call) -> None:
        _, mutated = await call("/mutate-deployments", review_body(new, workload_body()))
        stamps = patch_of(mutated)[0]["value"]
        assert stamps[ADMISSION_ANNOTATION] == "AuditOnly"
        assert stamps[AUDIT_ANNOTATION].startswith("NoApprovedChange: ")
        stamped = copy.deepcopy(new)
        stamped["metadata"]["annotations"] = stamps
        _, validated = await call("/validate-deployments", review_body(stamped, workload_body()))
        assert validated["allowed"] is True
        warnings = validated["warnings"]
        assert warnings[0] == (
            "changegate (audit mode): this rollout would be refused: changegate: rollout of"
            " Deployment/payments-api in payments-prod refused: no approved ChangeRequest of"
            " service payments-api covers it"
        )
        assert warnings[-1].startswith("  To proceed: raise a ChangeRequest")

    served(state, test)
    assert counted() == before + 1
    events = state.kube.events
    assert [(e["reason"], e["type_"]) for e in events] == [("RolloutAuditOnly", "Warning")]
    assert events[0]["message"].startswith(AUDIT_PREFIX)


def test_a_dry_run_in_audit_mode_is_warned_but_not_counted() -> None:
    state = audit_state()
    before = counted()

    async def test(call: Call) -> None:
        body = review_body(workload_body(images={"api": NEWER_IMAGE}), workload_body(), dry_run=True)  # fmt: skip
        _, validated = await call("/validate-deployments", body)
        assert validated["allowed"] is True
        assert validated["warnings"][0].startswith(AUDIT_PREFIX)

    served(state, test)
    assert counted() == before
    assert state.kube.events == []
