"""decide_rollout: every admission rule for workloads, both sides, as a table.

Rows build a request, a service policy and the indexed changes with the
builders, then pin the decision: allowed, reason, and the words of the message,
near misses and fix that a person reads when a rollout is refused. The facts
the decision rests on (ServicePolicy, ChangeFacts.effective_phase) come last.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from changegate.api.v1alpha1.changerequest import ChangePhase
from changegate.api.v1alpha1.common import ChangeType
from changegate.core.change.admission import (
    ADMISSION_ANNOTATION,
    ADMITTED_AT_ANNOTATION,
    BREAK_GLASS,
    CHANGE_ANNOTATION,
    DEPLOYER_ANNOTATION,
    Decision,
    Reason,
    decide_rollout,
)
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.workloads import pod_template_hash
from changegate.core.common import User
from tests.unit.builders import (
    CHANGE_MANAGER,
    DIGEST,
    EMERGENCY_MEMBER,
    NAMESPACE,
    NEW_IMAGE,
    NOW,
    OLD_IMAGE,
    OTHER_DIGEST,
    REGISTRY,
    REQUESTER,
    SECOND_MANAGER,
    TEAMMATE,
    approval,
    approved_change,
    change_request,
    facts,
    freeze,
    policy,
    request,
    restarted,
    rollout,
    service_on_call,
    target,
    update,
    workload_body,
)

SIDECAR = "registry.example.com/platform/envoy:1.30.1"
NEWER_IMAGE = f"{REGISTRY}/payments-api:1.43.0"
BY_DIGEST = f"{REGISTRY}/payments-api@{DIGEST}"
NEW_TEMPLATE_HASH = pod_template_hash(workload_body(images={"api": NEW_IMAGE})["spec"]["template"])
CONFIG_HASH = pod_template_hash(workload_body(env={"FEATURE_3DS22": "on"})["spec"]["template"])


@dataclass(frozen=True)
class Expect:
    """What a row expects: the verdict, and words each part of the decision contains."""

    allowed: bool
    reason: Reason
    message: tuple[str, ...] = ()
    misses: tuple[str, ...] = ()
    fix: tuple[str, ...] = ()
    change: str | None = None


def row(
    id: str,
    expect: Expect,
    *changes: ChangeFacts,
    req: Any = None,
    service: ServicePolicy | str | None = "default",
) -> Any:
    """One table row: the request (an image update to NEW_IMAGE unless given)."""
    return pytest.param(
        req if req is not None else update(images={"api": NEW_IMAGE}),
        policy() if service == "default" else service,
        changes,
        expect,
        id=id,
    )


ALLOWED = Expect(True, Reason.APPROVED_CHANGE, change="payments-api-1-42-0")
NO_CHANGE = Expect(False, Reason.NO_CHANGE)


def approved(**kw: Any) -> ChangeFacts:
    return facts(approved_change(**kw))


def denied(*misses: str, reason: Reason = Reason.NO_CHANGE, **kw: Any) -> Expect:
    return Expect(False, reason, misses=misses, **kw)


# A workload that runs NEW_IMAGE, deployed under an earlier change, with a sidecar.
RUNNING_NEW = workload_body(images={"api": NEW_IMAGE})
WITH_SIDECAR = workload_body(images={"api": OLD_IMAGE, "proxy": SIDECAR})
STATEFUL = workload_body("payments-ledger", kind="StatefulSet")
DAEMON = workload_body("payments-agent", kind="DaemonSet")


GOVERNANCE_ROWS = [
    row(
        "ungoverned-namespace-passes-any-rollout",
        Expect(True, Reason.UNGOVERNED, message=("kube-system is not governed",)),
        req=update(
            workload_body("coredns", namespace="kube-system"),
            images={"api": NEWER_IMAGE},
            labelled=False,
        ),
        service=None,
    ),
    row(
        "ungoverned-namespace-passes-a-new-workload",
        Expect(True, Reason.UNGOVERNED),
        req=request(None, workload_body(namespace="sandbox"), labelled=False),
        service=None,
    ),
    row(
        "labelled-namespace-without-serviceoncall-refuses-rollout",
        Expect(
            False,
            Reason.NO_SERVICE,
            message=("namespace payments-prod is marked governed", "no ServiceOnCall declares it"),
            fix=("spec.environments", "production: true", "changegate.io/governed label"),
        ),
        req=update(images={"api": NEW_IMAGE}, labelled=True),
        service=None,
    ),
    row(
        "labelled-namespace-without-serviceoncall-refuses-create",
        Expect(False, Reason.NO_SERVICE),
        req=request(None, workload_body(), labelled=True),
        service=None,
    ),
    row(
        "labelled-namespace-without-serviceoncall-passes-scale",
        Expect(True, Reason.UNGOVERNED),
        req=update(replicas=5, labelled=True),
        service=None,
    ),
    row(
        "declared-namespace-is-governed-without-the-label",
        denied("no ChangeRequest of service payments-api targets Deployment/payments-api"),
        req=update(images={"api": NEW_IMAGE}, labelled=False),
    ),
]

NOT_A_ROLLOUT_ROWS = [
    row("scale-passes", Expect(True, Reason.NOT_A_ROLLOUT), req=update(replicas=10)),
    row(
        "workload-labels-and-annotations-pass",
        Expect(True, Reason.NOT_A_ROLLOUT, message=("pod template did not change",)),
        req=update(labels={"tier": "gold"}, annotations={"owner": "team-payments"}),
    ),
    row(
        "pod-template-hash-label-is-not-a-change",
        Expect(True, Reason.NOT_A_ROLLOUT),
        req=update(template_labels={"pod-template-hash": "5d8f7c9b4"}),
    ),
    row(
        "controller-revision-hash-label-is-not-a-change",
        Expect(True, Reason.NOT_A_ROLLOUT),
        req=update(STATEFUL, template_labels={"controller-revision-hash": "payments-ledger-6c8b9"}),
    ),
    row(
        "statefulset-scale-passes",
        Expect(True, Reason.NOT_A_ROLLOUT),
        req=update(STATEFUL, replicas=5),
    ),
]

APPROVED_ROWS = [
    row(
        "approved-change-matching-image-passes",
        Expect(
            True,
            Reason.APPROVED_CHANGE,
            message=(
                "Deployment/payments-api in payments-prod admitted under"
                " ChangeRequest payments-api-1-42-0 (Normal)",
            ),
            change="payments-api-1-42-0",
        ),
        approved(),
    ),
    row("approved-by-name-passes", ALLOWED, approved(approvals=[approval("approver-by-name")])),
    row("approved-in-status-passes", ALLOWED, facts(phase="Approved")),
    row("in-progress-passes", ALLOWED, facts(phase="InProgress")),
    row("emergency-change-passes-at-once", ALLOWED, facts(type="Emergency")),
    row(
        "two-of-two-approvals-pass",
        ALLOWED,
        approved(approvals=[approval(), approval(SECOND_MANAGER.username)]),
        service=policy(required_approvals=2),
    ),
    row(
        "create-of-a-workload-under-a-change-declaring-its-template-passes",
        ALLOWED,
        approved(targets=[target() | {"podTemplateHash": NEW_TEMPLATE_HASH}]),
        req=request(None, workload_body(images={"api": NEW_IMAGE})),
    ),
    row(
        "create-of-a-workload-under-an-images-only-change-is-refused",
        denied("payments-api-1-42-0: declares images only, but a new Deployment runs"),
        approved(),
        req=request(None, workload_body(images={"api": NEW_IMAGE})),
    ),
    row(
        "window-open-at-its-start-passes",
        ALLOWED,
        approved(window=(0, 1)),
    ),
    row("no-window-and-no-expiry-passes", ALLOWED, approved(window=None)),
    row("expiry-ahead-passes", ALLOWED, approved(window=None, expiration=1)),
    row(
        "pending-and-approved-changes-the-approved-one-wins",
        Expect(True, Reason.APPROVED_CHANGE, change="b-approved"),
        facts(name="a-pending"),
        approved(name="b-approved"),
    ),
    row(
        "statefulset-under-approved-change-passes",
        Expect(True, Reason.APPROVED_CHANGE, message=("StatefulSet/payments-ledger",)),
        approved(targets=[target("payments-ledger", "StatefulSet")]),
        req=update(STATEFUL, images={"api": NEW_IMAGE}),
    ),
    row(
        "daemonset-under-approved-change-passes",
        Expect(True, Reason.APPROVED_CHANGE, message=("DaemonSet/payments-agent",)),
        approved(targets=[target("payments-agent", "DaemonSet")]),
        req=update(DAEMON, images={"api": NEW_IMAGE}),
    ),
    row(
        "second-target-of-a-change-passes",
        ALLOWED,
        approved(targets=[target("payments-worker"), target()]),
    ),
    row(
        "undeclared-sidecar-that-keeps-its-image-passes",
        ALLOWED,
        approved(),
        req=update(WITH_SIDECAR, images={"api": NEW_IMAGE, "proxy": SIDECAR}),
    ),
    row(
        "configuration-only-change-passes-when-images-stay",
        ALLOWED,
        # Beyond images, a change covers the pod template it declares (its hash).
        approved(targets=[{**target(images={}), "podTemplateHash": CONFIG_HASH}]),
        req=update(env={"FEATURE_3DS22": "on"}),
    ),
    row(
        "init-container-image-declared-passes",
        ALLOWED,
        approved(targets=[target(images={"api": NEW_IMAGE, "migrate": NEW_IMAGE})]),
        req=update(
            workload_body(init_images={"migrate": OLD_IMAGE}),
            images={"api": NEW_IMAGE},
            init_images={"migrate": NEW_IMAGE},
        ),
    ),
]

IMAGE_ROWS = [
    row(
        "digest-declared-beside-image-matches-pinned-reference",
        ALLOWED,
        approved(targets=[target(digests={"api": DIGEST})]),
        req=update(images={"api": f"{NEW_IMAGE}@{DIGEST}"}),
    ),
    row(
        "digest-declared-matches-digest-only-reference",
        ALLOWED,
        approved(targets=[target(digests={"api": DIGEST})]),
        req=update(images={"api": BY_DIGEST}),
    ),
    row(
        "digest-in-declared-reference-matches",
        ALLOWED,
        approved(targets=[target(images={"api": BY_DIGEST})]),
        req=update(images={"api": BY_DIGEST}),
    ),
    row(
        "other-digest-is-refused",
        denied(
            "image mismatch",
            f"expected {NEW_IMAGE}, actual {NEW_IMAGE}@{OTHER_DIGEST}",
        ),
        approved(targets=[target(digests={"api": DIGEST})]),
        req=update(images={"api": f"{NEW_IMAGE}@{OTHER_DIGEST}"}),
    ),
    row(
        "declared-digest-is-not-met-by-the-tag-alone",
        denied(f"container api: expected {NEW_IMAGE}, actual {NEW_IMAGE}"),
        approved(targets=[target(digests={"api": DIGEST})]),
        req=update(images={"api": NEW_IMAGE}),
    ),
    row(
        "other-tag-is-refused",
        denied(
            "ChangeRequest payments-api-1-42-0: image mismatch: container api:"
            f" expected {NEW_IMAGE}, actual {NEWER_IMAGE}",
            fix=("payments-prod", "payments-api", "Deployment/payments-api", NEWER_IMAGE),
        ),
        approved(),
        req=update(images={"api": NEWER_IMAGE}),
    ),
    row(
        "same-tag-of-another-repository-is-refused",
        denied("image mismatch", "actual registry.example.com/attacker/payments-api:1.42.0"),
        approved(),
        req=update(images={"api": "registry.example.com/attacker/payments-api:1.42.0"}),
    ),
    row(
        "undeclared-container-that-changes-is-refused",
        denied(f"container proxy: not declared (actual {SIDECAR})"),
        approved(),
        req=update(images={"api": NEW_IMAGE, "proxy": SIDECAR}),
    ),
    row(
        "undeclared-container-on-a-new-workload-is-refused",
        denied("container proxy: not declared"),
        approved(),
        req=request(None, workload_body(images={"api": NEW_IMAGE, "proxy": SIDECAR})),
    ),
    row(
        "configuration-only-change-refuses-an-image",
        denied(f"container api: not declared (actual {NEW_IMAGE})"),
        approved(targets=[target(images={})]),
    ),
]

TARGET_ROWS = [
    row(
        "change-for-another-workload-does-not-authorise",
        denied("no ChangeRequest of service payments-api targets Deployment/payments-api"),
        approved(targets=[target("payments-worker")]),
    ),
    row(
        "change-for-a-deployment-does-not-authorise-a-statefulset-of-that-name",
        denied("targets StatefulSet/payments-api"),
        approved(),
        req=update(workload_body(kind="StatefulSet"), images={"api": NEW_IMAGE}),
    ),
    row(
        "change-of-another-service-does-not-authorise",
        NO_CHANGE,
        approved(service="orders-api"),
    ),
    row(
        "change-in-another-namespace-does-not-authorise",
        denied("no ChangeRequest of service payments-api targets"),
        approved(namespace="payments-prod-eu"),
        service=policy(production=(NAMESPACE, "payments-prod-eu")),
    ),
]

NEAR_MISS_ROWS = [
    row(
        "no-change-at-all-is-refused",
        denied(
            "no ChangeRequest of service payments-api targets Deployment/payments-api"
            " in payments-prod",
            message=(
                "changegate: rollout of Deployment/payments-api in payments-prod refused",
                "no approved ChangeRequest of service payments-api covers it",
            ),
            fix=("raise a ChangeRequest", f"api={NEW_IMAGE}"),
        ),
    ),
    row(
        "pending-approval-0-of-1",
        denied(
            "ChangeRequest payments-api-1-42-0: pending approval 0 of 1",
            fix=("change-manager-1", "change-managers", "changerequest payments-api-1-42-0"),
        ),
        facts(),
    ),
    row(
        "pending-approval-1-of-2",
        denied("pending approval 1 of 2"),
        approved(),
        service=policy(required_approvals=2),
    ),
    row(
        "requesters-own-approval-does-not-count",
        denied("pending approval 0 of 1"),
        approved(approvals=[approval(REQUESTER.username)]),
    ),
    row(
        "unstamped-approval-does-not-count",
        denied("pending approval 0 of 1"),
        approved(approvals=[approval(None)]),
    ),
    row(
        "rejected-change",
        denied("ChangeRequest payments-api-1-42-0: Rejected"),
        facts(approvals=[approval(decision="Rejected", comment="no rollback plan")]),
    ),
    row("cancelled-change", denied("Cancelled"), approved(cancel=True)),
    row("completed-change", denied("Completed"), facts(phase="Completed")),
    row("expired-change", denied("Expired"), facts(phase="Expired")),
    row(
        "window-not-yet-open",
        denied("ChangeRequest payments-api-1-42-0: window opens at 2026-11-17T12:00:00+00:00"),
        approved(window=(2, 4)),
    ),
    row(
        "window-closed",
        denied("window closed at 2026-11-17T09:00:00+00:00"),
        approved(window=(-3, -1)),
    ),
    row(
        "window-closed-at-its-end",
        denied("window closed at 2026-11-17T10:00:00+00:00"),
        approved(window=(-1, 0)),
    ),
    row(
        "approval-expired",
        denied("approval expired at 2026-11-17T09:00:00+00:00"),
        approved(window=None, expiration=-1),
    ),
    row(
        "every-near-miss-is-listed",
        denied("a-pending: pending approval 0 of 1", "b-closed: window closed at"),
        facts(name="a-pending"),
        approved(name="b-closed", window=(-3, -1)),
    ),
]

FREEZE = freeze()
FREEZE_ROWS = [
    row(
        "approved-change-in-a-freeze-is-refused",
        denied(
            "ChangeRequest payments-api-1-42-0: freeze black-friday until"
            " 2026-11-18T10:00:00+00:00: Black Friday trading peak",
            reason=Reason.FREEZE,
        ),
        approved(),
        service=policy(freezes=[FREEZE]),
    ),
    row(
        "freeze-without-any-change-is-the-reason",
        denied("freeze black-friday", reason=Reason.FREEZE),
        service=policy(freezes=[FREEZE]),
    ),
    row(
        "pending-change-in-a-freeze-is-missing-approval-first",
        denied("pending approval 0 of 1"),
        facts(),
        service=policy(freezes=[FREEZE]),
    ),
    row(
        "emergency-change-passes-a-standard-and-normal-freeze",
        Expect(True, Reason.APPROVED_CHANGE, message=("(Emergency)",)),
        facts(type="Emergency"),
        service=policy(freezes=[FREEZE]),
    ),
    row(
        "emergency-change-stops-at-a-freeze-that-lists-emergencies",
        denied("freeze lockdown", reason=Reason.FREEZE),
        facts(type="Emergency"),
        service=policy(freezes=[freeze("lockdown", change_types=["Emergency"])]),
    ),
    row(
        "freeze-of-standard-changes-only-lets-a-normal-change-pass",
        ALLOWED,
        approved(),
        service=policy(freezes=[freeze(change_types=["Standard"])]),
    ),
    row(
        "freeze-not-yet-begun-lets-the-change-pass",
        ALLOWED,
        approved(),
        service=policy(freezes=[freeze(start=1, end=5)]),
    ),
    row(
        "freeze-over-lets-the-change-pass",
        ALLOWED,
        approved(),
        service=policy(freezes=[freeze(start=-5, end=0)]),
    ),
    row(
        "change-named-like-a-freeze-is-not-a-freeze",
        denied("freeze-fix: pending approval 0 of 1", reason=Reason.NO_CHANGE),
        facts(name="freeze-fix"),
    ),
]

# A rollback: the workload runs NEW_IMAGE and goes back to OLD_IMAGE, which an
# earlier change rolled out successfully.
EARLIER = "payments-api-1-41-0"


def earlier(result: str = "Succeeded", **kw: Any) -> ChangeFacts:
    return facts(
        name=EARLIER,
        phase="Completed",
        targets=[target(images={"api": OLD_IMAGE})],
        window=(-48, -46),
        rollouts=[rollout(images={"api": OLD_IMAGE}, result=result)],
        **kw,
    )


ROLLBACK = update(RUNNING_NEW, images={"api": OLD_IMAGE})
RESTART = request(workload_body(), restarted(workload_body()))
RESTART_AGAIN = request(
    restarted(workload_body(), NOW.replace(hour=8)), restarted(workload_body(), NOW)
)

PASS_THROUGH_ROWS = [
    row(
        "rollout-restart-passes-by-policy",
        Expect(
            True,
            Reason.RESTART,
            message=("rollout restart of Deployment/payments-api", "policy of payments-api"),
        ),
        req=RESTART,
    ),
    row("second-rollout-restart-passes", Expect(True, Reason.RESTART), req=RESTART_AGAIN),
    row(
        "rollout-restart-of-a-statefulset-passes",
        Expect(True, Reason.RESTART),
        req=request(STATEFUL, restarted(STATEFUL)),
    ),
    row(
        "rollout-restart-needs-a-change-when-policy-says-so",
        NO_CHANGE,
        req=RESTART,
        service=policy(restart="RequireChange"),
    ),
    row(
        "restart-stamp-with-a-new-image-is-no-restart",
        denied("no ChangeRequest"),
        req=request(workload_body(), restarted(workload_body(images={"api": NEWER_IMAGE}))),
    ),
    row(
        "rollback-to-images-a-change-deployed-passes",
        Expect(
            True,
            Reason.ROLLBACK,
            message=("rollback of Deployment/payments-api", f"ChangeRequest {EARLIER}"),
            change=EARLIER,
        ),
        earlier(),
        req=ROLLBACK,
    ),
    row(
        "rollback-that-also-drops-a-restart-stamp-passes",
        Expect(True, Reason.ROLLBACK, change=EARLIER),
        earlier(),
        req=request(restarted(RUNNING_NEW), workload_body(images={"api": OLD_IMAGE})),
    ),
    row(
        "rollback-to-images-of-a-failed-rollout-is-refused",
        denied(f"ChangeRequest {EARLIER}: Completed"),
        earlier(result="Failed"),
        req=ROLLBACK,
    ),
    row(
        "rollback-needs-a-change-when-policy-says-so",
        NO_CHANGE,
        earlier(),
        req=ROLLBACK,
        service=policy(rollback="RequireChange"),
    ),
    row(
        "rollback-with-another-edit-of-the-template-is-refused",
        NO_CHANGE,
        earlier(),
        req=update(RUNNING_NEW, images={"api": OLD_IMAGE}, env={"DEBUG": "1"}),
    ),
    row(
        "template-edit-that-keeps-deployed-images-is-no-rollback",
        NO_CHANGE,
        facts(
            name=EARLIER,
            phase="Completed",
            rollouts=[rollout()],
        ),
        req=update(RUNNING_NEW, env={"DEBUG": "1"}, images={"api": NEW_IMAGE}),
    ),
    row(
        "rollback-on-another-workload-is-refused",
        NO_CHANGE,
        earlier(),
        req=update(
            workload_body("payments-worker", images={"api": NEW_IMAGE}),
            images={"api": OLD_IMAGE},
        ),
    ),
    row(
        "rollback-in-a-freeze-is-refused",
        denied(reason=Reason.NO_CHANGE),
        earlier(),
        req=ROLLBACK,
        service=policy(freezes=[FREEZE]),
    ),
]

BREAK_GLASS_ROWS = [
    row(
        "break-glass-by-an-emergency-member-passes",
        Expect(
            True,
            Reason.BREAK_GLASS,
            message=(
                "break-glass rollout of Deployment/payments-api in payments-prod",
                "by oncall-1: INC-4711",
            ),
        ),
        req=update(
            user=EMERGENCY_MEMBER,
            images={"api": NEWER_IMAGE},
            annotations={BREAK_GLASS: "INC-4711"},
        ),
    ),
    row(
        "break-glass-create-by-an-emergency-member-passes",
        Expect(True, Reason.BREAK_GLASS),
        req=request(
            None, workload_body(annotations={BREAK_GLASS: "INC-4711"}), user=EMERGENCY_MEMBER
        ),
    ),
    row(
        "break-glass-by-anyone-else-is-refused",
        Expect(
            False,
            Reason.BREAK_GLASS_REFUSED,
            message=(
                "break-glass refused: product-dev-1 is not in an emergency group of service"
                " payments-api (payments-emergency)",
            ),
            fix=("ask a member of the emergency group",),
        ),
        req=update(images={"api": NEWER_IMAGE}, annotations={BREAK_GLASS: "INC-4711"}),
    ),
    row(
        "break-glass-by-a-change-manager-outside-the-group-is-refused",
        Expect(False, Reason.BREAK_GLASS_REFUSED),
        req=update(
            user=CHANGE_MANAGER, images={"api": NEWER_IMAGE}, annotations={BREAK_GLASS: "x"}
        ),
    ),
    row(
        "break-glass-without-emergency-groups-is-refused",
        Expect(False, Reason.BREAK_GLASS_REFUSED, message=("(none)",)),
        req=update(
            user=EMERGENCY_MEMBER, images={"api": NEWER_IMAGE}, annotations={BREAK_GLASS: "x"}
        ),
        service=policy(emergency_groups=[]),
    ),
    row(
        "blank-break-glass-reason-is-no-break-glass",
        NO_CHANGE,
        req=update(
            user=EMERGENCY_MEMBER, images={"api": NEWER_IMAGE}, annotations={BREAK_GLASS: "  "}
        ),
    ),
    row(
        "break-glass-left-from-an-earlier-rollout-is-not-reused",
        NO_CHANGE,
        req=update(
            workload_body(annotations={BREAK_GLASS: "INC-1"}),
            user=EMERGENCY_MEMBER,
            images={"api": NEWER_IMAGE},
            annotations={BREAK_GLASS: "INC-1"},
        ),
    ),
]


@pytest.mark.parametrize(
    ("req", "service", "changes", "expect"),
    GOVERNANCE_ROWS
    + NOT_A_ROLLOUT_ROWS
    + APPROVED_ROWS
    + IMAGE_ROWS
    + TARGET_ROWS
    + NEAR_MISS_ROWS
    + FREEZE_ROWS
    + PASS_THROUGH_ROWS
    + BREAK_GLASS_ROWS,
)
def test_decide_rollout(
    req: Any, service: ServicePolicy | None, changes: tuple[ChangeFacts, ...], expect: Expect
) -> None:
    decision = decide_rollout(req, service, changes, NOW)

    assert (decision.allowed, decision.reason) == (expect.allowed, expect.reason), (
        decision.explain()
    )
    for words in expect.message:
        assert words in decision.message
    misses = "\n".join(decision.near_misses)
    for words in expect.misses:
        assert words in misses
    for words in expect.fix:
        assert words in (decision.fix or "")
    if expect.change is not None:
        assert decision.change is not None
        assert decision.change.name == expect.change
    if not decision.allowed:
        assert decision.near_misses or decision.fix, "a refusal says what would help"


# -- annotations the mutating webhook stamps ---------------------------------

STAMPS = {
    DEPLOYER_ANNOTATION: "someone",
    ADMISSION_ANNOTATION: "ApprovedChange",
    ADMITTED_AT_ANNOTATION: "2026-11-01T00:00:00Z",
    CHANGE_ANNOTATION: "payments-api-1-40-0",
}


def test_allowed_rollout_is_stamped_with_who_when_and_which_change() -> None:
    decision = decide_rollout(update(images={"api": NEW_IMAGE}), policy(), [approved()], NOW)

    assert decision.annotations == {
        DEPLOYER_ANNOTATION: "product-dev-1",
        ADMISSION_ANNOTATION: "ApprovedChange",
        ADMITTED_AT_ANNOTATION: "2026-11-17T10:00:00Z",
        CHANGE_ANNOTATION: "payments-api-1-42-0",
    }


@pytest.mark.parametrize(
    ("new_annotations", "restored"),
    [
        pytest.param(
            STAMPS | {CHANGE_ANNOTATION: "forged"},
            {CHANGE_ANNOTATION: "payments-api-1-40-0"},
            id="edited-stamp-is-restored",
        ),
        pytest.param(
            {k: v for k, v in STAMPS.items() if k != DEPLOYER_ANNOTATION},
            {DEPLOYER_ANNOTATION: "someone"},
            id="removed-stamp-is-restored",
        ),
        pytest.param(STAMPS | {"team": "payments"}, {}, id="other-annotations-are-left-alone"),
    ],
)
def test_edits_of_stamps_that_are_not_rollouts_are_undone(
    new_annotations: dict[str, str], restored: dict[str, str]
) -> None:
    req = update(workload_body(annotations=STAMPS), annotations=new_annotations)

    decision = decide_rollout(req, policy(), [], NOW)

    assert decision.reason is Reason.NOT_A_ROLLOUT
    assert decision.annotations == restored


def test_stamp_added_by_a_user_is_removed() -> None:
    req = update(annotations={CHANGE_ANNOTATION: "payments-api-1-42-0"})

    decision = decide_rollout(req, policy(), [], NOW)

    assert decision.annotations == {CHANGE_ANNOTATION: ""}  # "" deletes it


@pytest.mark.parametrize(
    ("req", "reason"),
    [
        pytest.param(
            request(
                workload_body(annotations=STAMPS),
                restarted(workload_body(annotations=STAMPS | {CHANGE_ANNOTATION: "forged"})),
            ),
            Reason.RESTART,
            id="restart",
        ),
        pytest.param(
            update(
                workload_body(annotations=STAMPS),
                user=EMERGENCY_MEMBER,
                images={"api": NEWER_IMAGE},
                annotations=STAMPS | {CHANGE_ANNOTATION: "forged", BREAK_GLASS: "INC-1"},
            ),
            Reason.BREAK_GLASS,
            id="break-glass",
        ),
    ],
)
def test_rollout_without_a_change_keeps_the_old_change_stamp(req: Any, reason: Reason) -> None:
    decision = decide_rollout(req, policy(), [], NOW)

    assert decision.reason is reason
    assert decision.annotations[CHANGE_ANNOTATION] == "payments-api-1-40-0"
    assert decision.annotations[ADMISSION_ANNOTATION] == reason.value
    assert decision.annotations[DEPLOYER_ANNOTATION] == req.user.username


def test_break_glass_create_drops_a_change_stamp_the_user_wrote() -> None:
    body = workload_body(annotations={BREAK_GLASS: "INC-1", CHANGE_ANNOTATION: "forged"})

    decision = decide_rollout(request(None, body, user=EMERGENCY_MEMBER), policy(), [], NOW)

    assert decision.reason is Reason.BREAK_GLASS
    assert decision.annotations[CHANGE_ANNOTATION] == ""


def test_refusal_explains_itself_in_one_block() -> None:
    decision = decide_rollout(update(images={"api": NEW_IMAGE}), policy(), [facts()], NOW)

    lines = decision.explain().splitlines()

    assert lines[0].startswith("changegate: rollout of Deployment/payments-api")
    assert lines[1] == "  - ChangeRequest payments-api-1-42-0: pending approval 0 of 1"
    assert lines[2].startswith("  To proceed: ")
    assert "payments-api-1-42-0" in lines[2]


@pytest.mark.parametrize(
    ("decision", "recorded"),
    [
        pytest.param(Decision(True, Reason.UNGOVERNED, ""), False, id="ungoverned"),
        pytest.param(Decision(True, Reason.NOT_A_ROLLOUT, ""), False, id="not-a-rollout"),
        pytest.param(Decision(True, Reason.APPROVED_CHANGE, ""), True, id="approved"),
        pytest.param(Decision(True, Reason.RESTART, ""), True, id="restart"),
        pytest.param(Decision(True, Reason.ROLLBACK, ""), True, id="rollback"),
        pytest.param(Decision(True, Reason.BREAK_GLASS, ""), True, id="break-glass"),
        pytest.param(Decision(False, Reason.NO_CHANGE, ""), True, id="refusal"),
    ],
)
def test_what_is_recorded(decision: Decision, recorded: bool) -> None:
    assert decision.recorded is recorded


def test_decision_does_not_depend_on_the_order_of_changes() -> None:
    changes = [facts(name="a-pending"), approved(name="b-approved"), facts(name="c-rejected")]
    req = update(images={"api": NEW_IMAGE})

    forward = decide_rollout(req, policy(), changes, NOW)
    backward = decide_rollout(req, policy(), list(reversed(changes)), NOW)

    assert forward == backward


# -- the facts the decision rests on -----------------------------------------


def test_service_policy_from_the_sample() -> None:
    service = policy()

    assert service.service == "payments-api"
    assert service.production_namespaces == {"payments-prod"}
    assert service.approver_users == {"change-manager-1", "approver-by-name"}
    assert service.approver_groups == {"change-managers"}
    assert service.emergency_groups == {"payments-emergency"}
    assert (service.allow_rollback, service.allow_restart) == (True, True)


@pytest.mark.parametrize(
    ("service", "user", "may"),
    [
        pytest.param(policy(), CHANGE_MANAGER, True, id="by-group"),
        pytest.param(policy(approver_groups=[]), User("approver-by-name"), True, id="by-name"),
        pytest.param(policy(), TEAMMATE, False, id="team-member-is-not"),
        pytest.param(
            policy(approver_users=[], approver_groups=[]),
            SECOND_MANAGER,
            True,
            id="no-approvers-named-falls-back-to-change-managers",
        ),
        pytest.param(
            policy(approver_users=[], approver_groups=[]),
            TEAMMATE,
            False,
            id="no-approvers-named-is-not-everyone",
        ),
        pytest.param(
            policy(approver_groups=["cab"]), SECOND_MANAGER, False, id="named-groups-replace"
        ),
    ],
)
def test_who_may_approve(service: ServicePolicy, user: User, may: bool) -> None:
    assert service.may_approve(user) is may


def test_default_approver_groups_come_from_the_chart() -> None:
    soc = service_on_call(approver_users=[], approver_groups=[])

    service = ServicePolicy.from_model(soc, ("cab",))

    assert service.approver_groups == {"cab"}


@pytest.mark.parametrize(
    ("change", "service", "phase"),
    [
        pytest.param(facts(), policy(), ChangePhase.PENDING, id="new-is-pending"),
        pytest.param(approved(), policy(), ChangePhase.APPROVED, id="approvals-counted"),
        pytest.param(approved(), None, ChangePhase.PENDING, id="no-policy-counts-nothing"),
        pytest.param(
            approved(), policy(required_approvals=2), ChangePhase.PENDING, id="one-of-two"
        ),
        pytest.param(
            approved(approvals=[approval(), approval()]),
            policy(required_approvals=2),
            ChangePhase.PENDING,
            id="same-approver-twice-counts-once",
        ),
        pytest.param(
            approved(approvals=[approval(REQUESTER.username)]),
            policy(),
            ChangePhase.PENDING,
            id="requester-does-not-count",
        ),
        pytest.param(
            facts(approvals=[approval(decision="Rejected")]),
            policy(),
            ChangePhase.REJECTED,
            id="rejected",
        ),
        pytest.param(facts(type="Emergency"), None, ChangePhase.APPROVED, id="emergency"),
        pytest.param(
            facts(type="Standard", approvals=[approval()]),
            policy(),
            ChangePhase.PENDING,
            id="standard-waits-for-the-controller",
        ),
        pytest.param(approved(cancel=True), policy(), ChangePhase.CANCELLED, id="cancelled"),
        pytest.param(
            facts(phase="Approved", cancel=True), policy(), ChangePhase.CANCELLED, id="cancel-wins"
        ),
        pytest.param(
            facts(phase="InProgress", cancel=True),
            policy(),
            ChangePhase.IN_PROGRESS,
            id="in-progress-wins-over-cancel",
        ),
        pytest.param(
            approved(phase="Completed"), policy(), ChangePhase.COMPLETED, id="terminal-wins"
        ),
        pytest.param(
            facts(type="Emergency", phase="Failed"), policy(), ChangePhase.FAILED, id="failed"
        ),
    ],
)
def test_effective_phase(
    change: ChangeFacts, service: ServicePolicy | None, phase: ChangePhase
) -> None:
    assert change.effective_phase(service) is phase


def test_change_facts_from_the_sample() -> None:
    change = facts(
        approved_change(
            approvals=[approval(), approval("x", "Rejected")],
            rollouts=[rollout(), rollout("payments-worker", result="Failed")],
        )
    )

    assert change.type is ChangeType.NORMAL
    assert change.requester == "product-dev-1"
    assert change.approvers == ("change-manager-1",)
    assert change.rejected_by == ("x",)
    assert change.deployed == {("Deployment", "payments-api")}
    assert change.target("Deployment", "payments-api") is not None
    assert change.target("StatefulSet", "payments-api") is None
    assert change_request().spec.requester == REQUESTER.username
