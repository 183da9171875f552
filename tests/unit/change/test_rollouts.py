"""Rollouts as the controller observes them, as tables: observe, with_rollout and evidence.

Rows build a workload body the webhook has stamped (builders.admitted) with the
status its controller reports, and pin what observe makes of it: nothing when
changegate admitted nothing or the status is stale, otherwise the rollout, with
its outcome by the same test as `kubectl rollout status`. Then the rollout as a
change records it, and the DeploymentRecord written when it finishes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from changegate.api.v1alpha1.changerequest import ChangeRequest, RolloutResult
from changegate.api.v1alpha1.common import ChangeType, ContainerImage, ObjectRef, WorkloadKind
from changegate.api.v1alpha1.deploymentrecord import AdmissionBasis, FinalResult, WorkloadRef
from changegate.core.change.revisions import ControllerRevisionFact
from changegate.core.change.rollouts import Observation, evidence, observe, with_rollout
from tests.unit.builders import (
    DIGEST,
    NAMESPACE,
    NEW_IMAGE,
    NOW,
    OTHER_DIGEST,
    REQUESTER,
    SERVICE,
    admitted,
    approval,
    approved_change,
    at,
    progressing,
    rollout,
    with_spec,
    with_status,
    with_workload_status,
    workload_body,
)

ADMITTED = at(-0.5)  # when the webhook let the rollout through
FINISHED = at(-0.1)  # when the Deployment controller reported it complete
SIDECAR = "registry.example.com/platform/envoy:1.30.1"
CHANGE = "payments-api-1-42-0"


def deployment(spec_replicas: int = 3, **status: Any) -> dict[str, Any]:
    """The payments-api Deployment, admitted under CHANGE at revision 2, with this status."""
    body = admitted(workload_body(images={"api": NEW_IMAGE}, replicas=spec_replicas))
    return with_workload_status(body, **status)


def without_annotation(body: dict[str, Any], key: str) -> dict[str, Any]:
    del body["metadata"]["annotations"][key]
    return body


def complete(n: int = 3, finished: datetime = FINISHED) -> dict[str, Any]:
    """A Deployment status that passes `kubectl rollout status`."""
    return {
        "replicas": n,
        "updatedReplicas": n,
        "readyReplicas": n,
        "availableReplicas": n,
        "conditions": [progressing("NewReplicaSetAvailable", finished)],
    }


# A StatefulSet's or DaemonSet's ControllerRevisions: "r2" is the newest (revision 4).
CONTROLLER_REVISIONS = [
    ControllerRevisionFact("r1", 3, "h1"),
    ControllerRevisionFact("r2", 4, "h2"),
]


def stateful_set(**status: Any) -> dict[str, Any]:
    body = admitted(workload_body(kind="StatefulSet", images={"api": NEW_IMAGE}), generation=4)
    return with_workload_status(body, **status)


def daemon_set(**status: Any) -> dict[str, Any]:
    body = admitted(workload_body(kind="DaemonSet", images={"api": NEW_IMAGE}), generation=5)
    return with_workload_status(body, **status)


def finished_observation(
    result: FinalResult | None = FinalResult.SUCCEEDED,
    finished: datetime | None = FINISHED,
    images: dict[str, str] | None = None,
    **kw: Any,
) -> Observation:
    fields: dict[str, Any] = {
        "kind": WorkloadKind.DEPLOYMENT,
        "namespace": NAMESPACE,
        "name": SERVICE,
        "uid": f"uid-{SERVICE}",
        "revision": 2,
        "images": {"api": NEW_IMAGE} if images is None else images,
        "basis": AdmissionBasis.CHANGE,
        "change": CHANGE,
        "deployer": REQUESTER.username,
        "admitted": ADMITTED,
        "break_glass": None,
        "result": result,
        "finished": finished,
    }
    return Observation(**(fields | kw))


# -- observe: whether there is an admitted rollout to look at --------------------------

NOTHING = [
    pytest.param(with_workload_status(workload_body(), **complete()), id="no-changegate-annotations"),
    pytest.param(with_workload_status(admitted(workload_body(), basis="NoApprovedChange"), **complete()), id="refusal-reason-is-no-basis"),
    pytest.param(with_workload_status(admitted(workload_body(), basis="Whatever"), **complete()), id="unknown-basis"),
    pytest.param(without_annotation(deployment(**complete()), "changegate.io/admitted-at"), id="no-admitted-at"),
    pytest.param(without_annotation(deployment(**complete()), "changegate.io/admission"), id="no-admission-basis"),
    pytest.param(deployment(**complete(), observedGeneration=1), id="observed-generation-behind"),
    pytest.param(admitted(workload_body()), id="no-status-yet"),
    pytest.param(with_workload_status(admitted(workload_body(), revision=None), **complete()), id="deployment-without-revision"),
    pytest.param(with_workload_status(admitted(workload_body(), revision=0), **complete()), id="deployment-revision-zero"),
    pytest.param(stateful_set(observedGeneration=3, updateRevision="r2", currentRevision="r2", updatedReplicas=3, readyReplicas=3), id="statefulset-observed-generation-behind"),
    pytest.param(daemon_set(observedGeneration=4, desiredNumberScheduled=2, updatedNumberScheduled=2, numberAvailable=2), id="daemonset-observed-generation-behind"),
]  # fmt: skip


@pytest.mark.parametrize("body", NOTHING)
def test_observe_sees_nothing(body: dict[str, Any]) -> None:
    assert observe(body, NOW) is None


# -- observe: the outcome, by the test of kubectl rollout status ---------------------------

OUTCOMES = [
    # Deployment: observedGeneration current, then updated == replicas == available == spec.
    pytest.param(deployment(replicas=4, updatedReplicas=1, readyReplicas=3, availableReplicas=3), None, None, id="deployment-in-progress"),
    pytest.param(deployment(**complete()), FinalResult.SUCCEEDED, at(-0.1), id="deployment-complete-at-progressing-update"),
    pytest.param(deployment(**(complete() | {"conditions": []})), FinalResult.SUCCEEDED, NOW, id="deployment-complete-without-condition-now"),
    pytest.param(deployment(**(complete() | {"updatedReplicas": 2})), None, None, id="deployment-not-all-updated"),
    pytest.param(deployment(**(complete() | {"replicas": 4})), None, None, id="deployment-old-replicas-still-running"),
    pytest.param(deployment(**(complete() | {"availableReplicas": 2})), None, None, id="deployment-not-all-available"),
    pytest.param(deployment(**(complete() | {"readyReplicas": 0})), FinalResult.SUCCEEDED, at(-0.1), id="deployment-ready-is-not-the-test"),
    pytest.param(deployment(spec_replicas=0), FinalResult.SUCCEEDED, NOW, id="deployment-scaled-to-zero"),
    pytest.param(deployment(spec_replicas=5, **complete()), None, None, id="deployment-scaled-up-mid-rollout"),
    pytest.param(deployment(updatedReplicas=1, replicas=4, availableReplicas=3, conditions=[progressing("ProgressDeadlineExceeded", at(-0.2), "False")]), FinalResult.FAILED, at(-0.2), id="deployment-progress-deadline-exceeded"),
    pytest.param(deployment(**(complete() | {"conditions": [progressing("ProgressDeadlineExceeded", at(-0.2), "False")]})), FinalResult.FAILED, at(-0.2), id="deadline-exceeded-wins-over-counts"),
    pytest.param(deployment(**(complete() | {"conditions": [progressing("ReplicaSetUpdated", at(-0.2))], "updatedReplicas": 1})), None, None, id="deployment-progressing"),
    pytest.param(deployment(**complete(finished=at(-1))), FinalResult.SUCCEEDED, ADMITTED, id="finish-never-before-admission"),
    pytest.param(deployment(updatedReplicas=1, conditions=[progressing("ProgressDeadlineExceeded", at(-1), "False")]), FinalResult.FAILED, ADMITTED, id="failure-never-before-admission"),
    # StatefulSet: revisions agree, and every replica updated and ready.
    pytest.param(stateful_set(updateRevision="r2", currentRevision="r2", replicas=3, updatedReplicas=3, readyReplicas=3), FinalResult.SUCCEEDED, NOW, id="statefulset-complete"),
    pytest.param(stateful_set(updateRevision="r2", currentRevision="r1", replicas=3, updatedReplicas=2, readyReplicas=3), None, None, id="statefulset-revisions-differ"),
    pytest.param(stateful_set(updateRevision="r2", currentRevision="r2", replicas=3, updatedReplicas=3, readyReplicas=2), None, None, id="statefulset-not-all-ready"),
    # DaemonSet: every scheduled pod updated and available.
    pytest.param(daemon_set(desiredNumberScheduled=4, updatedNumberScheduled=4, numberAvailable=4), FinalResult.SUCCEEDED, NOW, id="daemonset-complete"),
    pytest.param(daemon_set(desiredNumberScheduled=4, updatedNumberScheduled=3, numberAvailable=4), None, None, id="daemonset-not-all-updated"),
    pytest.param(daemon_set(desiredNumberScheduled=4, updatedNumberScheduled=4, numberAvailable=3), None, None, id="daemonset-not-all-available"),
    pytest.param(daemon_set(desiredNumberScheduled=0), FinalResult.SUCCEEDED, NOW, id="daemonset-on-no-node"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "result", "finished"), OUTCOMES)
def test_observe_outcome(
    body: dict[str, Any], result: FinalResult | None, finished: datetime | None
) -> None:
    seen = observe(body, NOW, CONTROLLER_REVISIONS)
    assert seen is not None
    assert (seen.result, seen.finished) == (result, finished)
    if seen.finished is not None:
        assert seen.finished >= seen.admitted


def test_observe_reads_the_rollout_the_webhook_stamped() -> None:
    body = admitted(
        workload_body(images={"api": NEW_IMAGE, "proxy": SIDECAR}),
        revision=7,
        generation=9,
        deployer="ci-bot",
    )
    seen = observe(with_workload_status(body, **complete()), NOW)
    assert seen == Observation(
        kind=WorkloadKind.DEPLOYMENT,
        namespace=NAMESPACE,
        name=SERVICE,
        uid=f"uid-{SERVICE}",
        revision=7,
        images={"api": NEW_IMAGE, "proxy": SIDECAR},
        basis=AdmissionBasis.CHANGE,
        change=CHANGE,
        deployer="ci-bot",
        admitted=ADMITTED,
        break_glass=None,
        result=FinalResult.SUCCEEDED,
        finished=at(-0.1),
    )
    assert seen.key == f"{NAMESPACE}.{SERVICE}.uidpayme.7"


BASES = [
    pytest.param({"basis": "ApprovedChange"}, AdmissionBasis.CHANGE, CHANGE, None, id="change"),
    pytest.param({"basis": "Rollback", "change": None}, AdmissionBasis.ROLLBACK, None, None, id="rollback"),
    pytest.param({"basis": "Restart", "change": None}, AdmissionBasis.RESTART, None, None, id="restart"),
    pytest.param({"basis": "BreakGlass", "change": None, "break_glass": "INC-1234 card payments down"}, AdmissionBasis.BREAK_GLASS, None, "INC-1234 card payments down", id="break-glass"),
]  # fmt: skip


@pytest.mark.parametrize(("stamps", "basis", "change", "break_glass"), BASES)
def test_observe_basis_of_admission(
    stamps: dict[str, Any], basis: AdmissionBasis, change: str | None, break_glass: str | None
) -> None:
    seen = observe(with_workload_status(admitted(workload_body(), **stamps), **complete()), NOW)
    assert seen is not None
    assert (seen.basis, seen.change, seen.break_glass) == (basis, change, break_glass)


REVISIONS = [
    pytest.param(deployment(**complete()), 2, f"{NAMESPACE}.{SERVICE}.uidpayme.2", id="deployment-from-revision-annotation"),
    pytest.param(with_workload_status(admitted(workload_body(), revision=12, generation=30), **complete()), 12, f"{NAMESPACE}.{SERVICE}.uidpayme.12", id="deployment-annotation-not-generation"),
    pytest.param(stateful_set(updateRevision="r2", currentRevision="r2", updatedReplicas=3, readyReplicas=3), 4, f"{NAMESPACE}.{SERVICE}-statefulset.uidpayme.4", id="statefulset-from-its-update-revision"),
    pytest.param(daemon_set(desiredNumberScheduled=1, updatedNumberScheduled=1, numberAvailable=1), 4, f"{NAMESPACE}.{SERVICE}-daemonset.uidpayme.4", id="daemonset-from-its-newest-revision"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "revision", "key"), REVISIONS)
def test_observe_revision_and_record_key(body: dict[str, Any], revision: int, key: str) -> None:
    seen = observe(body, NOW, CONTROLLER_REVISIONS)
    assert seen is not None
    assert (seen.revision, seen.key) == (revision, key)


def partitioned_at(partition: int, updated: int) -> dict[str, Any]:
    """The StatefulSet above, rolled out to the pods at or above `partition` (of 3)."""
    body = stateful_set(updateRevision="r2", currentRevision="r1", updatedReplicas=updated,
                        readyReplicas=3)  # fmt: skip
    body["spec"]["updateStrategy"] = {"type": "RollingUpdate",
                                      "rollingUpdate": {"partition": partition}}  # fmt: skip
    body["metadata"]["annotations"]["changegate.io/admitted-partition"] = str(partition)
    return body


@pytest.mark.parametrize(
    ("partition", "updated", "key"),
    [
        pytest.param(2, 1, f"{NAMESPACE}.{SERVICE}-statefulset.uidpayme.4.p2", id="canary-step"),
        pytest.param(1, 2, f"{NAMESPACE}.{SERVICE}-statefulset.uidpayme.4.p1", id="wider-step"),
    ],
)
def test_each_partition_step_of_one_revision_is_a_rollout_with_its_own_record(
    partition: int, updated: int, key: str
) -> None:
    seen = observe(partitioned_at(partition, updated), NOW, CONTROLLER_REVISIONS)
    assert seen is not None
    assert (seen.revision, seen.partition, seen.key, seen.result) == (
        4, partition, key, FinalResult.SUCCEEDED
    )  # fmt: skip


def test_raising_the_partition_after_a_rollout_is_no_new_step() -> None:
    raised = partitioned_at(2, 1)
    raised["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 3  # no admission stamps it
    seen = observe(raised, NOW, CONTROLLER_REVISIONS)
    assert seen is not None
    assert seen.key.endswith(".4.p2")


def test_the_last_partition_step_keeps_the_unpartitioned_name() -> None:
    last = stateful_set(updateRevision="r2", currentRevision="r2", updatedReplicas=3,
                        readyReplicas=3)  # fmt: skip
    first = observe(partitioned_at(2, 1), NOW, CONTROLLER_REVISIONS)
    seen = observe(last, NOW, CONTROLLER_REVISIONS)
    assert first is not None
    assert seen is not None
    assert seen.key == f"{NAMESPACE}.{SERVICE}-statefulset.uidpayme.4" != first.key


# -- with_rollout: the change's status.rollouts ---------------------------------------


def test_with_rollout_records_an_in_progress_rollout() -> None:
    seen = finished_observation(result=None, finished=None)
    [entry] = with_rollout(approved_change(), seen, None)
    assert entry.to_json() == {
        "kind": "Deployment",
        "name": SERVICE,
        "revision": 2,
        "images": [{"container": "api", "image": NEW_IMAGE}],
        "deployer": REQUESTER.username,
        "startTime": ADMITTED.isoformat().replace("+00:00", "Z"),
        "result": "InProgress",
    }


def test_with_rollout_replaces_the_same_revision_and_keeps_others() -> None:
    change = with_status(
        approved_change(),
        {
            "rollouts": [
                rollout(revision=1, finish=-3),
                rollout(result="InProgress", revision=2),
                rollout("payments-worker", result="InProgress", revision=2),
            ]
        },
    )
    merged = with_rollout(change, finished_observation(), "payments-prod.payments-api.2")
    assert [(r.name, r.revision, r.result) for r in merged] == [
        (SERVICE, 1, RolloutResult.SUCCEEDED),
        ("payments-worker", 2, RolloutResult.IN_PROGRESS),
        (SERVICE, 2, RolloutResult.SUCCEEDED),
    ]
    assert merged[-1].finish_time == at(-0.1)
    assert merged[-1].deployment_record == "payments-prod.payments-api.2"
    # Merging the same observation again changes nothing.
    again = with_rollout(
        with_status(change, {"rollouts": [r.to_json() for r in merged]}),
        finished_observation(),
        "payments-prod.payments-api.2",
    )
    assert [r.to_json() for r in again] == [r.to_json() for r in merged]


def test_with_rollout_keeps_the_newest_32() -> None:
    change = with_status(
        approved_change(), {"rollouts": [rollout(revision=i, finish=-3) for i in range(1, 33)]}
    )
    merged = with_rollout(change, finished_observation(revision=40), None)
    assert len(merged) == 32
    assert [merged[0].revision, merged[-1].revision] == [2, 40]


@pytest.mark.parametrize(
    ("result", "expected"),
    [(FinalResult.SUCCEEDED, RolloutResult.SUCCEEDED), (FinalResult.FAILED, RolloutResult.FAILED)],
    ids=["succeeded", "failed"],
)
def test_with_rollout_result(result: FinalResult, expected: RolloutResult) -> None:
    [entry] = with_rollout(approved_change(), finished_observation(result), "rec")
    assert entry.result is expected


# -- evidence: the DeploymentRecord ---------------------------------------------------------


def approved_by_two() -> ChangeRequest:
    change = approved_change(approvals=[approval(), approval("approver-by-name")])
    return with_status(change, {"approvedBy": ["change-manager-1", "approver-by-name"]})


def test_evidence_of_a_change_rollout() -> None:
    change = approved_by_two()
    seen = finished_observation(images={"api": NEW_IMAGE, "proxy": SIDECAR})
    record = evidence(seen, change, SERVICE, "production", True, {"api": DIGEST})
    assert record.metadata.name == f"{NAMESPACE}.{SERVICE}.uidpayme.2"
    assert record.metadata.labels == {"changegate.io/service": SERVICE}
    spec = record.spec
    assert (spec.service, spec.environment, spec.namespace, spec.production) == (
        SERVICE,
        "production",
        NAMESPACE,
        True,
    )
    assert spec.workload == WorkloadRef(kind=WorkloadKind.DEPLOYMENT, name=SERVICE)
    assert spec.revision == 2
    assert spec.images == [
        ContainerImage(container="api", image=NEW_IMAGE, digest=DIGEST),
        ContainerImage(container="proxy", image=SIDECAR),
    ]
    assert spec.image_summary == f"api={NEW_IMAGE}, proxy={SIDECAR}"
    assert spec.admission is AdmissionBasis.CHANGE
    assert spec.change_request == ObjectRef(name=CHANGE, namespace=NAMESPACE, uid=f"uid-{CHANGE}")
    assert spec.change_type is ChangeType.NORMAL
    assert spec.requester == REQUESTER.username
    assert spec.approvers == ["change-manager-1", "approver-by-name"]
    assert spec.deployer == REQUESTER.username
    assert spec.source == change.spec.source
    assert (spec.start_time, spec.finish_time, spec.result) == (
        ADMITTED,
        at(-0.1),
        FinalResult.SUCCEEDED,
    )
    # The sample commit is from 2026-11-16T16:12Z; the rollout finished at 09:54Z the next day.
    assert spec.lead_time_seconds == 17 * 3600 + 42 * 60


DIGESTS = [
    pytest.param({}, {"api": None, "proxy": None}, id="none-known"),
    pytest.param({"api": DIGEST}, {"api": DIGEST, "proxy": None}, id="some-known"),
    pytest.param({"api": DIGEST, "proxy": OTHER_DIGEST}, {"api": DIGEST, "proxy": OTHER_DIGEST}, id="all-known"),
    pytest.param({"other": DIGEST}, {"api": None, "proxy": None}, id="other-containers-ignored"),
]  # fmt: skip


@pytest.mark.parametrize(("digests", "expected"), DIGESTS)
def test_evidence_digests_per_container(
    digests: dict[str, str], expected: dict[str, str | None]
) -> None:
    seen = finished_observation(images={"proxy": SIDECAR, "api": NEW_IMAGE})
    record = evidence(seen, approved_change(), SERVICE, "production", True, digests)
    assert {i.container: i.digest for i in record.spec.images} == expected
    assert [i.container for i in record.spec.images] == ["api", "proxy"]


LEAD = [
    pytest.param(FinalResult.SUCCEEDED, approved_change(), 17 * 3600 + 42 * 60, id="succeeded"),
    pytest.param(FinalResult.FAILED, approved_change(), None, id="failed-has-none"),
    pytest.param(FinalResult.SUCCEEDED, with_spec(approved_change(), source=None), None, id="no-source"),
    pytest.param(FinalResult.SUCCEEDED, None, None, id="no-change"),
]  # fmt: skip


@pytest.mark.parametrize(("result", "change", "seconds"), LEAD)
def test_evidence_lead_time(
    result: FinalResult, change: ChangeRequest | None, seconds: int | None
) -> None:
    record = evidence(finished_observation(result), change, SERVICE, "production", True, {})
    assert record.spec.lead_time_seconds == seconds
    assert record.spec.result is result


def test_evidence_without_a_change() -> None:
    seen = finished_observation(basis=AdmissionBasis.RESTART, change=None)
    spec = evidence(seen, None, SERVICE, "staging", False, {}).spec
    assert (spec.change_request, spec.change_type, spec.requester, spec.approvers) == (
        None,
        None,
        None,
        [],
    )
    assert (spec.admission, spec.production, spec.source) == (AdmissionBasis.RESTART, False, None)


def test_evidence_of_a_statefulset_names_the_kind() -> None:
    seen = finished_observation(kind=WorkloadKind.STATEFUL_SET, revision=4)
    record = evidence(seen, approved_change(), SERVICE, "production", True, {})
    assert record.metadata.name == f"{NAMESPACE}.{SERVICE}-statefulset.uidpayme.4"
    assert record.spec.workload.kind is WorkloadKind.STATEFUL_SET


def test_evidence_refuses_an_unfinished_rollout() -> None:
    seen = finished_observation(result=None, finished=None)
    with pytest.raises(ValueError, match="has not finished"):
        evidence(seen, approved_change(), SERVICE, "production", True, {})


def test_observe_then_evidence_end_to_end() -> None:
    body = deployment(**complete())
    seen = observe(body, NOW)
    assert seen is not None
    record = evidence(seen, approved_by_two(), SERVICE, "production", True, {"api": DIGEST})
    json = record.to_json()
    assert json["kind"] == "DeploymentRecord"
    assert json["spec"]["finishTime"] >= json["spec"]["startTime"]
    assert json["spec"]["images"] == [{"container": "api", "image": NEW_IMAGE, "digest": DIGEST}]
