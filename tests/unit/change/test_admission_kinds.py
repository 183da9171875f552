"""Every way to run code in a governed namespace is decided: tables per kind and rule.

Pods, ReplicaSets, Jobs and CronJobs written by people go through the same
chain as Deployments; Kubernetes' own controllers writing for the owner they
manage pass at once, and a forged ownerReference proves nothing. Debug, exec
and attach (core/change/pods.py) and the governed label (namespaces.py).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from changegate.api.v1alpha1.changerequest import ChangeRequest
from changegate.core.change.admission import Reason, decide_rollout
from changegate.core.change.controllers import acting_for_owner, allowed_pairs
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.namespaces import LabelChange, decide_namespace_update
from changegate.core.change.pods import ATTACH, EPHEMERAL, EXEC, PodAccess, decide_pod_access
from changegate.core.change.workloads import Workload, is_rollout, pod_template, pod_template_hash
from changegate.core.common import User
from tests.unit.builders import (
    AUTHORITIES,
    CHANGE_MANAGER,
    EMERGENCY_MEMBER,
    NAMESPACE,
    NEW_IMAGE,
    NOW,
    OLD_IMAGE,
    PLATFORM_ADMIN,
    REQUESTER,
    approved_change,
    policy,
    request,
    service_on_call,
    target,
    workload_body,
)

KCM = "system:serviceaccount:kube-system:"
RS_CONTROLLER = User(KCM + "replicaset-controller", frozenset({"system:serviceaccounts"}))
DEPLOYMENT_CONTROLLER = User(KCM + "deployment-controller")
JOB_CONTROLLER = User(KCM + "job-controller")
CRONJOB_CONTROLLER = User(KCM + "cronjob-controller")
CONTROLLER_MANAGER = User("system:kube-controller-manager")


def shaped(kind: str, name: str = "payments-api", image: str = OLD_IMAGE) -> dict[str, Any]:
    """A body of `kind` whose pods run `image` in container api, where that kind keeps them."""
    body = workload_body(name, images={"api": image})
    template = body["spec"]["template"]
    if kind == "Pod":
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**body["metadata"], "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
        }
    if kind in ("ReplicaSet", "Job"):
        body["kind"] = kind
        body["apiVersion"] = "apps/v1" if kind == "ReplicaSet" else "batch/v1"
        return body
    if kind == "CronJob":
        return {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": body["metadata"],
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}},
        }
    raise AssertionError(kind)


def owned(body: dict[str, Any], kind: str, name: str = "owner", controller: bool = True) -> Any:
    body = copy.deepcopy(body)
    body["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": kind, "name": name, "uid": "u-1", "controller": controller}
    ]
    return body


def decide(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    user: User = REQUESTER,
    changes: tuple[ChangeRequest, ...] = (),
    service: ServicePolicy | None = None,
) -> tuple[bool, Reason]:
    facts = [ChangeFacts.from_model(c) for c in changes]
    decision = decide_rollout(request(old, new, user=user), service or policy(), facts, NOW)
    return decision.allowed, decision.reason


def change_for(kind: str, image: str = NEW_IMAGE) -> ChangeRequest:
    """An approved change declaring the object `shaped` makes: its image and its template
    (a change covers a new object only when it declares its pod template)."""
    declared = target(kind=kind, images={"api": image})
    body = shaped(kind, image=image) if kind in KINDS else workload_body(images={"api": image})
    declared["podTemplateHash"] = pod_template_hash(pod_template(body))
    return approved_change(targets=[declared])


KINDS = ("Pod", "ReplicaSet", "Job", "CronJob")


# -- where each kind keeps its pod template -------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_reads_its_images_where_it_keeps_its_pods(kind: str) -> None:
    workload = Workload.from_body(shaped(kind, image=NEW_IMAGE))
    assert (workload.kind, dict(workload.images)) == (kind, {"api": NEW_IMAGE})


def test_a_pod_is_its_own_template_but_its_labels_are_no_rollout() -> None:
    pod = shaped("Pod")
    relabelled = copy.deepcopy(pod)
    relabelled["metadata"]["labels"]["tier"] = "gold"
    assert pod_template(pod) == {"spec": pod["spec"]}
    assert not is_rollout(Workload.from_body(pod), Workload.from_body(relabelled))


def test_a_cronjob_schedule_is_no_rollout_but_its_job_template_is() -> None:
    cron = shaped("CronJob")
    rescheduled = copy.deepcopy(cron)
    rescheduled["spec"]["schedule"] = "0 * * * *"
    assert not is_rollout(Workload.from_body(cron), Workload.from_body(rescheduled))
    assert is_rollout(Workload.from_body(cron), Workload.from_body(shaped("CronJob", image="x")))


def test_only_an_owner_marked_controller_counts() -> None:
    assert Workload.from_body(owned(shaped("Pod"), "ReplicaSet", "rs")).controller == (
        "ReplicaSet",
        "rs",
    )
    assert (
        Workload.from_body(owned(shaped("Pod"), "ReplicaSet", controller=False)).controller is None
    )


# -- people's writes of the new kinds -------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ((), (False, Reason.NO_CHANGE)),
        (("declared",), (True, Reason.APPROVED_CHANGE)),
        (("other-image",), (False, Reason.NO_CHANGE)),
        (("deployment",), (False, Reason.NO_CHANGE)),
    ],
    ids=["no-change", "declared-change", "change-for-another-image", "change-for-a-deployment"],
)
def test_a_person_creating_a_kind_needs_a_change_that_declares_it(
    kind: str, changes: tuple[str, ...], expected: tuple[bool, Reason]
) -> None:
    declared = {
        "declared": change_for(kind),
        "other-image": change_for(kind, image=f"{NEW_IMAGE}-other"),
        "deployment": change_for("Deployment"),
    }
    assert (
        decide(None, shaped(kind, image=NEW_IMAGE), changes=tuple(declared[c] for c in changes))
        == expected
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_person_editing_the_image_of_a_kind_is_a_rollout(kind: str) -> None:
    old, new = shaped(kind), shaped(kind, image=NEW_IMAGE)
    assert decide(old, new) == (False, Reason.NO_CHANGE)
    assert decide(old, new, changes=(change_for(kind),)) == (True, Reason.APPROVED_CHANGE)


@pytest.mark.parametrize("kind", KINDS)
def test_a_person_scaling_or_relabelling_a_kind_passes(kind: str) -> None:
    old = shaped(kind)
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"team": "payments"}
    assert decide(old, new) == (True, Reason.NOT_A_ROLLOUT)


# -- Kubernetes' controllers ------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "kind", "owner", "expected"),
    [
        (RS_CONTROLLER, "Pod", "ReplicaSet", (True, Reason.CONTROLLER)),
        (User(KCM + "statefulset-controller"), "Pod", "StatefulSet", (True, Reason.CONTROLLER)),
        (User(KCM + "daemon-set-controller"), "Pod", "DaemonSet", (True, Reason.CONTROLLER)),
        (JOB_CONTROLLER, "Pod", "Job", (True, Reason.CONTROLLER)),
        (DEPLOYMENT_CONTROLLER, "ReplicaSet", "Deployment", (True, Reason.CONTROLLER)),
        (CRONJOB_CONTROLLER, "Job", "CronJob", (True, Reason.CONTROLLER)),
        (CONTROLLER_MANAGER, "Pod", "ReplicaSet", (True, Reason.CONTROLLER)),
        (CONTROLLER_MANAGER, "ReplicaSet", "Deployment", (True, Reason.CONTROLLER)),
        # A person who forges the ownerReference is still decided as a person.
        (REQUESTER, "Pod", "ReplicaSet", (False, Reason.NO_CHANGE)),
        (REQUESTER, "ReplicaSet", "Deployment", (False, Reason.NO_CHANGE)),
        (REQUESTER, "Job", "CronJob", (False, Reason.NO_CHANGE)),
        # A controller writing for a kind it does not manage, or without an owner.
        (RS_CONTROLLER, "Pod", "Job", (False, Reason.NO_CHANGE)),
        (JOB_CONTROLLER, "ReplicaSet", "Deployment", (False, Reason.NO_CHANGE)),
        (DEPLOYMENT_CONTROLLER, "Pod", "ReplicaSet", (False, Reason.NO_CHANGE)),
        (CONTROLLER_MANAGER, "CronJob", "Deployment", (False, Reason.NO_CHANGE)),
        (User(KCM + "generic-garbage-collector"), "Pod", "ReplicaSet", (False, Reason.NO_CHANGE)),
        (
            User("system:serviceaccount:payments-prod:replicaset-controller"),
            "Pod",
            "ReplicaSet",
            (False, Reason.NO_CHANGE),
        ),
    ],
)
def test_controllers_pass_only_for_the_owner_they_manage(
    user: User, kind: str, owner: str, expected: tuple[bool, Reason]
) -> None:
    assert decide(None, owned(shaped(kind, image=NEW_IMAGE), owner), user=user) == expected


def test_a_controller_write_without_a_controller_owner_is_decided_as_any_other() -> None:
    body = owned(shaped("Pod", image=NEW_IMAGE), "ReplicaSet", controller=False)
    assert decide(None, body, user=RS_CONTROLLER) == (False, Reason.NO_CHANGE)


def test_controller_writes_pass_even_in_a_labelled_namespace_without_a_service() -> None:
    req = request(None, owned(shaped("Pod"), "ReplicaSet"), user=RS_CONTROLLER, labelled=True)
    assert decide_rollout(req, None, [], NOW).reason is Reason.CONTROLLER


def test_people_have_no_controller_pairs() -> None:
    assert allowed_pairs(REQUESTER) == frozenset()
    assert not acting_for_owner(CHANGE_MANAGER, Workload.from_body(owned(shaped("Pod"), "Job")))


# -- debug, exec, attach ----------------------------------------------------------


def access(how: str, user: User = REQUESTER, **kw: Any) -> PodAccess:
    kw.setdefault("added", (("debugger", "busybox"),) if how == EPHEMERAL else ())
    return PodAccess(how, NAMESPACE, "payments-api-7d4f", user, **kw)


def refusing_exec() -> ServicePolicy:
    body = service_on_call().to_json()
    body["spec"]["changePolicy"]["exec"] = "Refuse"
    return ServicePolicy.from_model(type(service_on_call()).model_validate(body))


@pytest.mark.parametrize(
    ("request_", "service", "expected"),
    [
        (access(EPHEMERAL, EMERGENCY_MEMBER), policy(), (True, Reason.DEBUG)),
        (access(EPHEMERAL), policy(), (False, Reason.DEBUG_REFUSED)),
        (access(EPHEMERAL, CHANGE_MANAGER), policy(), (False, Reason.DEBUG_REFUSED)),
        (access(EPHEMERAL, added=()), policy(), (True, Reason.NOT_A_ROLLOUT)),
        (access(EPHEMERAL), None, (True, Reason.UNGOVERNED)),
        (access(EXEC, command=("sh",)), policy(), (True, Reason.EXEC)),
        (access(ATTACH), policy(), (True, Reason.EXEC)),
        (access(EXEC), refusing_exec(), (False, Reason.EXEC_REFUSED)),
        (access(ATTACH, EMERGENCY_MEMBER), refusing_exec(), (False, Reason.EXEC_REFUSED)),
        (access(EXEC), None, (True, Reason.UNGOVERNED)),
        (
            PodAccess(EXEC, "kube-system", "p", REQUESTER),
            refusing_exec(),
            (True, Reason.UNGOVERNED),
        ),
    ],
    ids=[
        "debug-by-emergency-member",
        "debug-by-team-member",
        "debug-by-change-manager",
        "debug-adding-nothing",
        "debug-ungoverned",
        "exec-recorded",
        "attach-recorded",
        "exec-refused-by-policy",
        "attach-refused-even-for-emergency",
        "exec-ungoverned",
        "exec-in-kube-system",
    ],
)
def test_ways_into_a_pod(
    request_: PodAccess, service: ServicePolicy | None, expected: tuple[bool, Reason]
) -> None:
    decision = decide_pod_access(request_, service)
    assert (decision.allowed, decision.reason) == expected
    assert decision.recorded == (
        not decision.allowed or decision.reason in (Reason.DEBUG, Reason.EXEC)
    )


def test_a_refused_debug_says_whom_to_ask() -> None:
    text = decide_pod_access(access(EPHEMERAL), policy()).explain()
    assert "payments-emergency" in text
    assert "To proceed: ask a member" in text


def test_the_exec_policy_defaults_to_record() -> None:
    assert not policy().refuse_exec
    assert refusing_exec().refuse_exec


# -- the governed label -----------------------------------------------------------


LABEL = "changegate.io/governed"


@pytest.mark.parametrize(
    ("old", "new", "user", "service", "expected"),
    [
        ({LABEL: "true"}, {}, REQUESTER, policy(), (False, Reason.GOVERNED_LABEL_KEPT)),
        (
            {LABEL: "true"},
            {LABEL: "false"},
            CHANGE_MANAGER,
            policy(),
            (False, Reason.GOVERNED_LABEL_KEPT),
        ),
        ({LABEL: "true"}, {}, PLATFORM_ADMIN, policy(), (True, Reason.GOVERNED_LABEL_REMOVED)),
        ({LABEL: "true"}, {}, REQUESTER, None, (True, Reason.UNGOVERNED)),
        (
            {LABEL: "true"},
            {LABEL: "true", "x": "y"},
            REQUESTER,
            policy(),
            (True, Reason.GOVERNED_LABEL_KEPT),
        ),
        ({}, {LABEL: "true"}, REQUESTER, policy(), (True, Reason.GOVERNED_LABEL_KEPT)),
    ],
    ids=[
        "team-removes",
        "change-manager-sets-false",
        "platform-admin-removes",
        "no-production-service",
        "other-label-edit",
        "label-added",
    ],
)
def test_the_governed_label_of_a_production_namespace(
    old: dict[str, str],
    new: dict[str, str],
    user: User,
    service: ServicePolicy | None,
    expected: tuple[bool, Reason],
) -> None:
    change = LabelChange(NAMESPACE, LABEL, old, new, user)
    decision = decide_namespace_update(change, service, AUTHORITIES.platform_admin_groups)
    assert (decision.allowed, decision.reason) == expected
