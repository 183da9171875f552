"""Builders for the admission and governance tests: models and bodies with sensible defaults.

Each builder starts from a realistic object (the samples for our own kinds, a
plain Deployment for workloads) and takes keyword arguments for what a test
varies, so that a table row names only what matters to its case.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from changegate.api.v1alpha1.changerequest import ChangeRequest, ChangeRequestStatus
from changegate.api.v1alpha1.changetemplate import ChangeTemplate
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.admission import WorkloadRequest
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.governance import Authorities
from changegate.core.change.workloads import RESTARTED_AT, Workload
from changegate.core.common import User

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

# A Tuesday morning inside the sample change's window, weeks before the year-end freeze.
NOW = datetime(2026, 11, 17, 10, 0, tzinfo=UTC)
NAMESPACE = "payments-prod"
SERVICE = "payments-api"
REGISTRY = "registry.example.com/payments"
OLD_IMAGE = f"{REGISTRY}/payments-api:1.41.0"
NEW_IMAGE = f"{REGISTRY}/payments-api:1.42.0"
DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64

# The people of the tests, as the API server authenticates them.
REQUESTER = User("product-dev-1", frozenset({"team-payments"}))
TEAMMATE = User("product-dev-2", frozenset({"team-payments"}))
CHANGE_MANAGER = User("change-manager-1", frozenset({"change-managers"}))
SECOND_MANAGER = User("change-manager-2", frozenset({"change-managers"}))
NAMED_APPROVER = User("approver-by-name")  # listed in approvers.users, in no group
EMERGENCY_MEMBER = User("oncall-1", frozenset({"team-payments", "payments-emergency"}))
PLATFORM_ADMIN = User("platform-admin-1", frozenset({"platform-admins"}))
OPERATOR = User("system:serviceaccount:changegate-system:changegate-controller")
OUTSIDER = User("someone-else", frozenset({"team-orders"}))

AUTHORITIES = Authorities(
    change_manager_groups=frozenset({"change-managers"}),
    platform_admin_groups=frozenset({"platform-admins", "system:masters"}),
    operator_users=frozenset({OPERATOR.username}),
)


@cache
def _sample(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((SAMPLES / f"{kind}.yaml").read_text())
    return data


def sample(kind: str) -> dict[str, Any]:
    """A fresh copy of samples/<kind>.yaml, to edit freely."""
    return copy.deepcopy(_sample(kind))


def at(hours: float = 0, base: datetime = NOW) -> datetime:
    """A moment `hours` after (or before, when negative) NOW."""
    return base + timedelta(hours=hours)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# -- ServiceOnCall ------------------------------------------------------------


def freeze(
    name: str = "black-friday",
    start: float = -1,
    end: float = 24,
    reason: str = "Black Friday trading peak",
    change_types: list[str] | None = None,
) -> dict[str, Any]:
    """A freeze from `start` to `end` hours around NOW."""
    body: dict[str, Any] = {
        "name": name,
        "startTime": iso(at(start)),
        "endTime": iso(at(end)),
        "reason": reason,
    }
    if change_types is not None:
        body["changeTypes"] = change_types
    return body


def service_on_call(
    *,
    service: str = SERVICE,
    namespace: str = NAMESPACE,
    production: tuple[str, ...] = (NAMESPACE,),
    approver_users: list[str] | None = None,
    approver_groups: list[str] | None = None,
    required_approvals: int = 1,
    emergency_groups: list[str] | None = None,
    rollback: str = "Allow",
    restart: str = "Allow",
    freezes: list[dict[str, Any]] | None = None,
) -> ServiceOnCall:
    """The sample ServiceOnCall, with the change policy a test needs.

    Approvers default to change-manager-1 and approver-by-name by name and the
    change-managers group; the emergency group to payments-emergency; no freeze.
    """
    body = sample("serviceoncall")
    body["metadata"]["namespace"] = namespace
    body["spec"]["service"]["name"] = service
    body["spec"]["environments"] = [
        {"name": "staging", "namespace": f"{service}-staging", "raisesProductionChanges": True}
    ] + [
        {"name": f"production-{i}", "namespace": ns, "production": True}
        for i, ns in enumerate(production)
    ]
    policy = body["spec"]["changePolicy"]
    policy["approvers"] = {
        "users": ["change-manager-1", "approver-by-name"]
        if approver_users is None
        else approver_users,
        "groups": ["change-managers"] if approver_groups is None else approver_groups,
    }
    policy["requiredApprovals"] = required_approvals
    policy["emergencyGroups"] = (
        ["payments-emergency"] if emergency_groups is None else emergency_groups
    )
    policy["rollback"] = rollback
    policy["restart"] = restart
    policy["freezes"] = freezes or []
    return ServiceOnCall.model_validate(body)


def policy(**kw: Any) -> ServicePolicy:
    """The ServicePolicy of `service_on_call(**kw)`."""
    return ServicePolicy.from_model(service_on_call(**kw))


# -- ChangeRequest ------------------------------------------------------------


def target(
    name: str = SERVICE,
    kind: str = "Deployment",
    images: dict[str, str] | None = None,
    digests: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A change target; images per container, api -> NEW_IMAGE by default."""
    images = {"api": NEW_IMAGE} if images is None else images
    digests = digests or {}
    return {
        "kind": kind,
        "name": name,
        "images": [
            {"container": c, "image": i} | ({"digest": digests[c]} if c in digests else {})
            for c, i in images.items()
        ],
    }


def approval(
    approver: str | None = "change-manager-1",
    decision: str = "Approved",
    comment: str | None = "looks good",
    time: datetime | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"decision": decision}
    if approver is not None:
        body["approver"] = approver
    if comment is not None:
        body["comment"] = comment
    if time is not None:
        body["time"] = iso(time)
    return body


def rollout(
    name: str = SERVICE,
    kind: str = "Deployment",
    result: str = "Succeeded",
    images: dict[str, str] | None = None,
    *,
    start: float = -2,
    finish: float | None = None,
    revision: int | None = None,
) -> dict[str, Any]:
    """One entry of status.rollouts; `start` and `finish` in hours around NOW."""
    images = {"api": NEW_IMAGE} if images is None else images
    body: dict[str, Any] = {
        "kind": kind,
        "name": name,
        "images": [{"container": c, "image": i} for c, i in images.items()],
        "startTime": iso(at(start)),
        "result": result,
    }
    if finish is not None:
        body["finishTime"] = iso(at(finish))
    if revision is not None:
        body["revision"] = revision
    return body


def change_request(
    name: str = "payments-api-1-42-0",
    *,
    namespace: str = NAMESPACE,
    service: str = SERVICE,
    type: str = "Normal",
    targets: list[dict[str, Any]] | None = None,
    window: tuple[float, float] | None = (-1, 2),
    requester: str | None = REQUESTER.username,
    approvals: list[dict[str, Any]] | None = None,
    cancel: bool = False,
    phase: str | None = None,
    expiration: float | None = None,
    rollouts: list[dict[str, Any]] | None = None,
) -> ChangeRequest:
    """The sample ChangeRequest: a Normal change of payments-api to NEW_IMAGE.

    By default it is requested by product-dev-1, has no approvals yet, and its
    window runs from an hour before NOW to two hours after (`window` in hours).
    """
    body = sample("changerequest")
    body["metadata"] = {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
    spec = body["spec"]
    spec["service"] = service
    spec["type"] = type
    if type == "Standard":
        spec["templateRef"] = {"name": "payments-api-image-update"}
    if type == "Emergency":
        spec["emergencyReason"] = "card payments are failing"
    spec["targets"] = [target()] if targets is None else targets
    if window is None:
        spec.pop("window")
    else:
        spec["window"] = {"startTime": iso(at(window[0])), "endTime": iso(at(window[1]))}
    if requester is None:
        spec.pop("requester", None)
    else:
        spec["requester"] = requester
    spec["approvals"] = approvals or []
    spec["cancel"] = cancel
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if expiration is not None:
        status["expirationTime"] = iso(at(expiration))
    if rollouts:
        status["rollouts"] = rollouts
    body["status"] = status
    return ChangeRequest.model_validate(body)


def approved_change(name: str = "payments-api-1-42-0", **kw: Any) -> ChangeRequest:
    """A change the change manager approved (by its approvals, before the controller saw it)."""
    kw.setdefault("approvals", [approval()])
    return change_request(name, **kw)


def facts(change: ChangeRequest | None = None, **kw: Any) -> ChangeFacts:
    """The ChangeFacts of `change`, or of `change_request(**kw)`."""
    return ChangeFacts.from_model(change if change is not None else change_request(**kw))


def with_spec(change: ChangeRequest, **spec: Any) -> ChangeRequest:
    """A copy of `change` whose spec has the given camelCase fields replaced."""
    body = change.to_json()
    body["spec"].update(spec)
    return ChangeRequest.model_validate(body)


# -- ChangeTemplate -----------------------------------------------------------


def change_template(*, active: bool = False, summary: str | None = None) -> ChangeTemplate:
    body = sample("changetemplate")
    body["spec"]["active"] = active
    if summary is not None:
        body["spec"]["summary"] = summary
    return ChangeTemplate.model_validate(body)


# -- Workloads ----------------------------------------------------------------


def workload_body(
    name: str = SERVICE,
    *,
    kind: str = "Deployment",
    namespace: str = NAMESPACE,
    images: dict[str, str] | None = None,
    init_images: dict[str, str] | None = None,
    replicas: int = 3,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    template_labels: dict[str, str] | None = None,
    template_annotations: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Deployment (or StatefulSet, DaemonSet) body as the API server sends it."""
    images = {"api": OLD_IMAGE} if images is None else images
    containers = [
        {
            "name": c,
            "image": i,
            "ports": [{"containerPort": 8080}],
            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        }
        for c, i in images.items()
    ]
    pod_spec: dict[str, Any] = {"containers": containers}
    if init_images:
        pod_spec["initContainers"] = [{"name": c, "image": i} for c, i in init_images.items()]
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {
                "labels": {"app": name} | (template_labels or {}),
                "annotations": dict(template_annotations or {}),
            },
            "spec": pod_spec,
        },
    }
    if kind != "DaemonSet":
        spec["replicas"] = replicas
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": name} | (labels or {}),
            "annotations": dict(annotations or {}),
        },
        "spec": spec,
    }


def workload(**kw: Any) -> Workload:
    return Workload.from_body(workload_body(**kw))


def restarted(body: dict[str, Any], moment: datetime = NOW) -> dict[str, Any]:
    """What `kubectl rollout restart` sends: the body with a new restartedAt stamp."""
    new = copy.deepcopy(body)
    new["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] = iso(moment)
    return new


def update(
    old: dict[str, Any] | None = None,
    *,
    user: User = REQUESTER,
    labelled: bool = True,
    **new: Any,
) -> WorkloadRequest:
    """An UPDATE from `old` (the default Deployment) to `workload_body(**new)`.

    `new` defaults to the old body's name, kind and namespace.
    """
    old = workload_body() if old is None else old
    new.setdefault("name", old["metadata"]["name"])
    new.setdefault("kind", old["kind"])
    new.setdefault("namespace", old["metadata"]["namespace"])
    return request(old, workload_body(**new), user=user, labelled=labelled)


def request(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    user: User = REQUESTER,
    labelled: bool = True,
) -> WorkloadRequest:
    """An admission request for a workload; CREATE when there is no old body."""
    return WorkloadRequest(
        operation="UPDATE" if old is not None else "CREATE",
        new=Workload.from_body(new),
        old=Workload.from_body(old) if old is not None else None,
        user=user,
        namespace_labelled=labelled,
    )


# -- Lifecycle ------------------------------------------------------------------


def with_status(
    change: ChangeRequest, status: ChangeRequestStatus | dict[str, Any]
) -> ChangeRequest:
    """A copy of `change` with `status` applied, as the controller's status patch leaves it.

    `status` is a reconcile's result, or camelCase fields that replace the current ones.
    """
    body = change.to_json()
    if isinstance(status, ChangeRequestStatus):
        body["status"] = status.to_json()
    else:
        body["status"] = body.get("status", {}) | status
    return ChangeRequest.model_validate(body)


def with_metadata(change: ChangeRequest, **fields: Any) -> ChangeRequest:
    """A copy of `change` whose metadata has the given (snake_case) fields replaced."""
    return change.model_copy(update={"metadata": change.metadata.model_copy(update=fields)})


def recurring_window(
    days: tuple[str, ...] = ("Monday", "Tuesday", "Wednesday", "Thursday"),
    start_at: str = "09:00",
    end_at: str = "16:00",
    time_zone: str = "Europe/Berlin",
) -> dict[str, Any]:
    """A weekly window of a ChangeTemplate; the sample's by default."""
    return {"days": list(days), "startAt": start_at, "endAt": end_at, "timeZone": time_zone}


def standard_template(
    *,
    service: str = SERVICE,
    active: bool = True,
    workloads: list[dict[str, Any]] | None = None,
    allowed: tuple[str, ...] | None = None,
    windows: list[dict[str, Any]] | None = None,
    expires: float | None = None,
) -> ChangeTemplate:
    """The sample ChangeTemplate, active: what a Standard change is checked against.

    None keeps the sample's value: payments-api by name and by the label
    app.kubernetes.io/part-of=payments-api, both kinds of change, Monday to
    Thursday 09:00-16:00 Europe/Berlin, until the end of 2027. `expires` is in
    hours around NOW.
    """
    body = sample("changetemplate")
    spec = body["spec"]
    spec["service"] = service
    spec["active"] = active
    if workloads is not None:
        spec["workloads"] = workloads
    if allowed is not None:
        spec["allowedChanges"] = list(allowed)
    if windows is not None:
        spec["windows"] = windows
    if expires is not None:
        spec["expirationTime"] = iso(at(expires))
    return ChangeTemplate.model_validate(body)


# -- Admitted workloads, as the controller sees them -----------------------------


def admitted(
    body: dict[str, Any],
    *,
    basis: str = "ApprovedChange",
    change: str | None = "payments-api-1-42-0",
    deployer: str = REQUESTER.username,
    moment: datetime | None = None,
    revision: int | None = 2,
    generation: int = 2,
    break_glass: str | None = None,
) -> dict[str, Any]:
    """`body` with the webhook's stamps, a uid, a generation and (Deployments) a revision.

    Admitted at `moment`, by default half an hour before NOW.
    """
    new = copy.deepcopy(body)
    metadata = new["metadata"]
    metadata["uid"] = f"uid-{metadata['name']}"
    metadata["generation"] = generation
    annotations = metadata.setdefault("annotations", {})
    annotations |= {
        "changegate.io/admission": basis,
        "changegate.io/deployer": deployer,
        "changegate.io/admitted-at": iso(at(-0.5) if moment is None else moment),
    }
    if change is not None:
        annotations["changegate.io/change-request"] = change
    if break_glass is not None:
        annotations["changegate.io/break-glass"] = break_glass
    if revision is not None and new["kind"] == "Deployment":
        annotations["deployment.kubernetes.io/revision"] = str(revision)
    return new


def with_workload_status(body: dict[str, Any], **status: Any) -> dict[str, Any]:
    """`body` with the given camelCase status fields; observedGeneration defaults to current."""
    new = copy.deepcopy(body)
    status.setdefault("observedGeneration", new["metadata"].get("generation", 1))
    new["status"] = status
    return new


def progressing(reason: str, updated: datetime, status: str = "True") -> dict[str, Any]:
    """A Deployment's Progressing condition."""
    return {
        "type": "Progressing",
        "status": status,
        "reason": reason,
        "lastUpdateTime": iso(updated),
        "lastTransitionTime": iso(updated),
    }
