"""The admission rules one at a time: what each decides alone, and when it stays silent.

test_admission.py pins the whole chain (`decide_rollout`); here each rule of
`RULES` gets its own table, so a rule that drifts fails by name. A row's
expectation is None when the rule must leave the request to the next one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from changegate.core.change import admission
from changegate.core.change.admission import (
    BREAK_GLASS,
    RULES,
    Decision,
    Reason,
    Rollout,
    Rule,
    WorkloadRequest,
    break_glass,
    decide_rollout,
    exempt_namespace,
    near_miss,
    not_a_rollout,
    refuse,
    restart,
    rollback,
    ungoverned,
)
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from tests.unit.builders import (
    EMERGENCY_MEMBER,
    NEW_IMAGE,
    NOW,
    OLD_IMAGE,
    REGISTRY,
    REQUESTER,
    approval,
    approved_change,
    facts,
    freeze,
    policy,
    request,
    restarted,
    rollout,
    target,
    update,
    workload_body,
)

OPERATOR_NAMESPACE = "changegate-system"
NEWER_IMAGE = f"{REGISTRY}/payments-api:1.43.0"
EARLIER = "payments-api-1-41-0"
IMAGE_UPDATE = update(images={"api": NEW_IMAGE})
ROLLBACK = update(workload_body(images={"api": NEW_IMAGE}), images={"api": OLD_IMAGE})
GLASS = update(user=EMERGENCY_MEMBER, images={"api": NEWER_IMAGE}, annotations={BREAK_GLASS: "x"})


def approved(**kw: Any) -> ChangeFacts:
    return facts(approved_change(**kw))


def earlier(result: str = "Succeeded") -> ChangeFacts:
    """A completed change that rolled OLD_IMAGE out on the workload."""
    return facts(
        name=EARLIER,
        phase="Completed",
        targets=[target(images={"api": OLD_IMAGE})],
        window=(-48, -46),
        rollouts=[rollout(images={"api": OLD_IMAGE}, result=result)],
    )


def in_namespace(namespace: str, **kw: Any) -> WorkloadRequest:
    """An image update in `namespace`, with the operator running in OPERATOR_NAMESPACE."""
    req = update(workload_body(namespace=namespace), images={"api": NEWER_IMAGE}, **kw)
    return dataclasses.replace(req, operator_namespace=OPERATOR_NAMESPACE)


def decide(
    rule: Rule,
    req: WorkloadRequest,
    service: ServicePolicy | None = None,
    changes: tuple[ChangeFacts, ...] = (),
) -> Decision | None:
    return rule(Rollout(req, service, changes, NOW))


def outcome(decision: Decision | None) -> tuple[bool, Reason] | None:
    return None if decision is None else (decision.allowed, decision.reason)


ALLOW_UNGOVERNED = (True, Reason.UNGOVERNED)


def test_the_chain_runs_in_this_order() -> None:
    names = [rule.__name__ for rule in RULES]

    assert names == [
        "controller_write",
        "exempt_namespace",
        "ungoverned",
        "not_a_rollout",
        "break_glass",
        "restart",
        "incident_freeze",
        "approved_change",
        "rollback",
        "refuse",
    ]


@pytest.mark.parametrize(
    ("req", "expect"),
    [
        pytest.param(in_namespace("kube-system"), ALLOW_UNGOVERNED, id="kube-system"),
        pytest.param(
            in_namespace("kube-system", labelled=True), ALLOW_UNGOVERNED, id="kube-system-labelled"
        ),
        pytest.param(in_namespace(OPERATOR_NAMESPACE), ALLOW_UNGOVERNED, id="operator-namespace"),
        pytest.param(in_namespace("payments-prod"), None, id="a-product-namespace"),
        pytest.param(
            update(workload_body(namespace=""), images={"api": NEWER_IMAGE}),
            None,
            id="unset-operator-namespace-exempts-no-namespace-less-body",
        ),
    ],
)
def test_exempt_namespace(req: WorkloadRequest, expect: tuple[bool, Reason] | None) -> None:
    decision = decide(exempt_namespace, req, policy())

    assert outcome(decision) == expect
    if decision is not None:
        assert f"namespace {req.new.namespace} is not governed" == decision.message


def test_operator_namespace_is_exempt_even_when_a_serviceoncall_declares_it() -> None:
    service = policy(production=(OPERATOR_NAMESPACE,))

    decision = decide_rollout(in_namespace(OPERATOR_NAMESPACE), service, (), NOW)

    assert outcome(decision) == ALLOW_UNGOVERNED


@pytest.mark.parametrize(
    ("req", "service", "expect"),
    [
        pytest.param(IMAGE_UPDATE, policy(), None, id="a-serviceoncall-governs"),
        pytest.param(
            update(images={"api": NEW_IMAGE}, labelled=False), None, ALLOW_UNGOVERNED,
            id="unlabelled-rollout",
        ),
        pytest.param(
            update(images={"api": NEW_IMAGE}, labelled=True), None, (False, Reason.NO_SERVICE),
            id="labelled-rollout",
        ),
        pytest.param(
            request(None, workload_body(), labelled=True), None, (False, Reason.NO_SERVICE),
            id="labelled-create",
        ),
        pytest.param(
            update(replicas=4, labelled=True), None, ALLOW_UNGOVERNED, id="labelled-scale"
        ),
    ],
)  # fmt: skip
def test_ungoverned(
    req: WorkloadRequest, service: ServicePolicy | None, expect: tuple[bool, Reason] | None
) -> None:
    assert outcome(decide(ungoverned, req, service)) == expect


@pytest.mark.parametrize(
    ("req", "expect"),
    [
        pytest.param(update(replicas=10), (True, Reason.NOT_A_ROLLOUT), id="scale"),
        pytest.param(
            update(labels={"tier": "gold"}), (True, Reason.NOT_A_ROLLOUT), id="metadata-edit"
        ),
        pytest.param(IMAGE_UPDATE, None, id="new-image"),
        pytest.param(update(env={"DEBUG": "1"}), None, id="template-edit"),
        pytest.param(request(None, workload_body()), None, id="create"),
    ],
)
def test_not_a_rollout(req: WorkloadRequest, expect: tuple[bool, Reason] | None) -> None:
    assert outcome(decide(not_a_rollout, req, policy())) == expect


@pytest.mark.parametrize(
    ("req", "service", "expect"),
    [
        pytest.param(GLASS, policy(), (True, Reason.BREAK_GLASS), id="emergency-member"),
        pytest.param(
            dataclasses.replace(GLASS, user=REQUESTER), policy(),
            (False, Reason.BREAK_GLASS_REFUSED), id="anyone-else",
        ),
        pytest.param(
            GLASS, policy(emergency_groups=[]), (False, Reason.BREAK_GLASS_REFUSED),
            id="service-without-emergency-groups",
        ),
        pytest.param(IMAGE_UPDATE, policy(), None, id="no-annotation"),
        pytest.param(
            update(user=EMERGENCY_MEMBER, annotations={BREAK_GLASS: " "}), policy(), None,
            id="blank-annotation",
        ),
        pytest.param(
            update(
                workload_body(annotations={BREAK_GLASS: "x"}),
                user=EMERGENCY_MEMBER,
                images={"api": NEWER_IMAGE},
                annotations={BREAK_GLASS: "x"},
            ),
            policy(), None, id="annotation-left-from-before",
        ),
        pytest.param(GLASS, None, None, id="ungoverned-namespace"),
    ],
)  # fmt: skip
def test_break_glass(
    req: WorkloadRequest, service: ServicePolicy | None, expect: tuple[bool, Reason] | None
) -> None:
    assert outcome(decide(break_glass, req, service)) == expect


@pytest.mark.parametrize(
    ("req", "service", "expect"),
    [
        pytest.param(
            request(workload_body(), restarted(workload_body())), policy(), (True, Reason.RESTART),
            id="restart",
        ),
        pytest.param(
            request(workload_body(), restarted(workload_body())), policy(restart="RequireChange"),
            None, id="policy-requires-a-change",
        ),
        pytest.param(
            request(workload_body(), restarted(workload_body(images={"api": NEWER_IMAGE}))),
            policy(), None, id="restart-stamp-with-a-new-image",
        ),
        pytest.param(IMAGE_UPDATE, policy(), None, id="image-update"),
    ],
)  # fmt: skip
def test_restart(
    req: WorkloadRequest, service: ServicePolicy, expect: tuple[bool, Reason] | None
) -> None:
    assert outcome(decide(restart, req, service)) == expect


@pytest.mark.parametrize(
    ("changes", "admitted_by"),
    [
        pytest.param((approved(),), "payments-api-1-42-0", id="approved"),
        pytest.param((facts(phase="InProgress"),), "payments-api-1-42-0", id="in-progress"),
        pytest.param(
            (approved(name="b"), approved(name="a")), "a", id="first-by-name-of-two-that-admit"
        ),
        pytest.param((facts(name="a"), approved(name="b")), "b", id="pending-one-is-skipped"),
        pytest.param((facts(),), None, id="pending"),
        pytest.param((approved(window=(-3, -1)),), None, id="window-closed"),
        pytest.param((approved(targets=[target("payments-worker")]),), None, id="other-target"),
        pytest.param((approved(namespace="payments-qa"),), None, id="other-namespace"),
        pytest.param((approved(service="orders-api"),), None, id="other-service"),
        pytest.param((), None, id="no-change"),
    ],
)
def test_approved_change(changes: tuple[ChangeFacts, ...], admitted_by: str | None) -> None:
    decision = decide(admission.approved_change, IMAGE_UPDATE, policy(), changes)

    if admitted_by is None:
        assert decision is None
    else:
        assert decision is not None
        assert outcome(decision) == (True, Reason.APPROVED_CHANGE)
        assert decision.change is not None
        assert decision.change.name == admitted_by


@pytest.mark.parametrize(
    ("req", "service", "changes", "expect"),
    [
        pytest.param(ROLLBACK, policy(), (earlier(),), (True, Reason.ROLLBACK), id="rollback"),
        pytest.param(
            ROLLBACK, policy(rollback="RequireChange"), (earlier(),), None,
            id="policy-requires-a-change",
        ),
        pytest.param(ROLLBACK, policy(), (earlier("Failed"),), None, id="rollout-had-failed"),
        pytest.param(
            ROLLBACK, policy(freezes=[freeze()]), (earlier(),), None, id="in-a-freeze"
        ),
        pytest.param(
            request(None, workload_body(images={"api": OLD_IMAGE})), policy(), (earlier(),), None,
            id="create-is-no-rollback",
        ),
        pytest.param(
            update(workload_body(images={"api": NEW_IMAGE}), images={"api": OLD_IMAGE},
                   env={"DEBUG": "1"}),
            policy(), (earlier(),), None, id="another-template-edit-too",
        ),
        pytest.param(IMAGE_UPDATE, policy(), (earlier(),), None, id="images-never-deployed"),
    ],
)  # fmt: skip
def test_rollback(
    req: WorkloadRequest,
    service: ServicePolicy,
    changes: tuple[ChangeFacts, ...],
    expect: tuple[bool, Reason] | None,
) -> None:
    assert outcome(decide(rollback, req, service, changes)) == expect


@pytest.mark.parametrize(
    ("service", "changes", "reason", "misses", "fix"),
    [
        pytest.param(
            policy(), (), Reason.NO_CHANGE,
            ("no ChangeRequest of service payments-api targets Deployment/payments-api in"
             " payments-prod",),
            "raise a ChangeRequest", id="nothing-targets-it",
        ),
        pytest.param(
            policy(), (facts(),), Reason.NO_CHANGE,
            ("ChangeRequest payments-api-1-42-0: pending approval 0 of 1",),
            "kubectl changegate approve -n payments-prod payments-api-1-42-0",
            id="pending-change-names-its-approvers",
        ),
        pytest.param(
            policy(freezes=[freeze()]), (), Reason.FREEZE,
            ("freeze black-friday until 2026-11-18T10:00:00+00:00: Black Friday trading peak",),
            "raise a ChangeRequest", id="only-a-freeze",
        ),
        pytest.param(
            policy(freezes=[freeze()]), (approved(),), Reason.FREEZE,
            ("ChangeRequest payments-api-1-42-0: freeze black-friday",),
            "raise a ChangeRequest", id="approved-change-in-a-freeze",
        ),
        pytest.param(
            policy(freezes=[freeze()]), (facts(name="a"), approved(name="b")), Reason.NO_CHANGE,
            ("a: pending approval 0 of 1", "b: freeze black-friday"),
            "changerequest a", id="freeze-and-more",
        ),
    ],
)  # fmt: skip
def test_refuse(
    service: ServicePolicy,
    changes: tuple[ChangeFacts, ...],
    reason: Reason,
    misses: tuple[str, ...],
    fix: str,
) -> None:
    decision = decide(refuse, IMAGE_UPDATE, service, changes)

    assert outcome(decision) == (False, reason)
    assert decision is not None
    assert len(decision.near_misses) == len(misses)
    for miss, words in zip(decision.near_misses, misses, strict=True):
        assert words in miss
    assert fix in (decision.fix or "")


@pytest.mark.parametrize(
    ("change", "service", "text", "frozen"),
    [
        pytest.param(approved(), policy(), None, False, id="admits"),
        pytest.param(facts(), policy(), "pending approval 0 of 1", False, id="pending"),
        pytest.param(
            facts(approvals=[approval(decision="Rejected")]), policy(), ": Rejected", False,
            id="rejected",
        ),
        pytest.param(approved(window=(2, 4)), policy(), "window opens at", False, id="early"),
        pytest.param(
            approved(window=None, expiration=-1), policy(), "approval expired at", False,
            id="expired-approval",
        ),
        pytest.param(
            approved(targets=[target(images={"api": NEWER_IMAGE})]), policy(),
            f"image mismatch: container api: expected {NEWER_IMAGE}, actual {NEW_IMAGE}", False,
            id="other-image",
        ),
        pytest.param(
            approved(), policy(freezes=[freeze()]), "freeze black-friday until", True,
            id="freeze",
        ),
        pytest.param(
            approved(), policy(freezes=[freeze(change_types=["Standard"])]), None, False,
            id="freeze-of-other-change-types",
        ),
    ],
)  # fmt: skip
def test_near_miss(
    change: ChangeFacts, service: ServicePolicy, text: str | None, frozen: bool
) -> None:
    miss = near_miss(Rollout(IMAGE_UPDATE, service, (change,), NOW), service, change)

    if text is None:
        assert miss is None
    else:
        assert miss is not None
        assert miss.text.startswith(f"ChangeRequest {change.name}: ")
        assert text in miss.text
        assert miss.frozen is frozen


@pytest.mark.parametrize("rule", RULES[3:], ids=lambda rule: rule.__name__)
def test_rules_after_ungoverned_say_nothing_without_a_service(rule: Rule) -> None:
    assert decide(rule, IMAGE_UPDATE, None, (approved(),)) is None
