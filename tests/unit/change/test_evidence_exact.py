"""Issue 10, items 4 and 5: the operator's own objects are unforgeable, evidence is exact."""

from __future__ import annotations

from typing import Any

import pytest

from changegate.api.v1alpha1.changerequest import ChangeRequest
from changegate.api.v1alpha1.common import WorkloadKind
from changegate.core.change.governance import review_change_request
from changegate.core.change.provenance import (
    DEPLOYED_TEMPLATE,
    preproduction_stamp,
    trusted_deployer,
)
from changegate.core.change.raised import RAISED_FOR
from changegate.core.change.revisions import (
    ControllerRevisionFact,
    new_replica_set_hash,
    revision_pods,
    rolled_out_revision,
)
from changegate.core.change.rollouts import record_name, stateful_set_done
from changegate.core.change.workloads import Workload, pod_template_hash
from changegate.core.common import User

DEV = User("product-dev-1", ("product-team",))
TEMPLATE = {"spec": {"containers": [{"name": "api", "image": "registry.example/api:1"}]}}


def body(template: dict[str, Any] = TEMPLATE, **annotations: str) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "staging", "annotations": annotations},
        "spec": {"template": template},
    }


RECORD_NAMES = [
    pytest.param("uid-a1b2c3d4-0000", 1, "prod.api.uida1b2c.1", id="uid-prefix-in-the-name"),
    pytest.param("f00dfeed-1111", 1, "prod.api.f00dfeed.1", id="recreated-namesake-differs"),
]  # fmt: skip


@pytest.mark.parametrize(("uid", "revision", "name"), RECORD_NAMES)
def test_record_names_carry_the_workload_uid(uid: str, revision: int, name: str) -> None:
    assert record_name(WorkloadKind.DEPLOYMENT, "prod", "api", uid, revision) == name


R1, R2 = ControllerRevisionFact("web-aaa", 1, "aaa"), ControllerRevisionFact("web-bbb", 2, "bbb")
REVISIONS = [
    pytest.param(WorkloadKind.STATEFUL_SET, {"updateRevision": "web-aaa"}, [R1, R2], 1, id="statefulset-update-revision"),
    pytest.param(WorkloadKind.STATEFUL_SET, {"updateRevision": "web-ccc"}, [R1, R2], None, id="statefulset-revision-not-indexed-yet"),
    pytest.param(WorkloadKind.DAEMON_SET, {}, [R1, R2], 2, id="daemonset-newest"),
    pytest.param(WorkloadKind.DAEMON_SET, {}, [], None, id="daemonset-none-yet"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "status", "known", "number"), REVISIONS)
def test_controller_revisions_not_generation(
    kind: WorkloadKind,
    status: dict[str, Any],
    known: list[ControllerRevisionFact],
    number: int | None,
) -> None:
    found = rolled_out_revision(kind, {"metadata": {"generation": 99}, "status": status}, known)
    assert (found.number if found else None) == number


def test_revision_pods_label_per_kind() -> None:
    assert revision_pods(WorkloadKind.STATEFUL_SET, R2) == {"controller-revision-hash": "web-bbb"}
    assert revision_pods(WorkloadKind.DAEMON_SET, R2) == {"controller-revision-hash": "bbb"}


def replica_set(uid: str, revision: str, hash_: str) -> dict[str, Any]:
    return {
        "metadata": {
            "ownerReferences": [{"controller": True, "uid": uid}],
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "labels": {"pod-template-hash": hash_},
        }
    }


def test_digests_come_from_the_new_replica_set_only() -> None:
    sets = [
        replica_set("d1", "1", "old"),
        replica_set("other", "2", "forged"),
        replica_set("d1", "2", "new"),
    ]
    assert new_replica_set_hash(sets, "d1", 2) == "new"
    assert new_replica_set_hash(sets, "d1", 3) is None


PARTITIONS = [
    pytest.param({"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 2}}}, {"updatedReplicas": 1, "readyReplicas": 3}, True, id="partition-pods-updated"),
    pytest.param({"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 2}}}, {"updatedReplicas": 0, "readyReplicas": 3}, False, id="partition-pods-not-yet"),
    pytest.param({"replicas": 3}, {"updatedReplicas": 3, "readyReplicas": 3, "updateRevision": "b", "currentRevision": "b"}, True, id="unpartitioned-complete"),
    pytest.param({"replicas": 3}, {"updatedReplicas": 3, "readyReplicas": 3, "updateRevision": "b", "currentRevision": "a"}, False, id="unpartitioned-revisions-differ"),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "status", "done"), PARTITIONS)
def test_partitioned_stateful_sets_complete(
    spec: dict[str, Any], status: dict[str, Any], done: bool
) -> None:
    assert stateful_set_done(spec, status) is done


def test_a_preproduction_rollout_is_stamped_for_its_template() -> None:
    new = Workload.from_body(body())
    stamp = preproduction_stamp(None, new, DEV)
    assert stamp == {
        "changegate.io/deployer": DEV.username,
        DEPLOYED_TEMPLATE: pod_template_hash(TEMPLATE),
    }
    assert trusted_deployer(body(**stamp)) == DEV.username


def test_a_stale_or_typed_stamp_claims_nobody() -> None:
    stale = {"changegate.io/deployer": "someone-else", DEPLOYED_TEMPLATE: "sha256:old"}
    assert trusted_deployer(body(**stale)) is None
    assert trusted_deployer(body(**{"changegate.io/deployer": "someone-else"})) is None


def test_a_hand_edit_of_the_stamp_is_undone_on_a_non_rollout() -> None:
    old = Workload.from_body(body(**{"changegate.io/deployer": "a", DEPLOYED_TEMPLATE: "h"}))
    new = Workload.from_body(body(**{"changegate.io/deployer": "b", DEPLOYED_TEMPLATE: "h"}))
    assert preproduction_stamp(old, new, DEV) == {"changegate.io/deployer": "a"}


def change(labels: dict[str, str]) -> ChangeRequest:
    return ChangeRequest.model_validate(
        {
            "metadata": {"name": "c", "namespace": "prod", "labels": labels},
            "spec": {"service": "payments-api", "type": "Normal", "summary": "s",
                     "targets": [{"kind": "Deployment", "name": "api"}]},
        }
    )  # fmt: skip


MARKS = [
    pytest.param("CREATE", None, {RAISED_FOR: "x"}, False, False, id="team-pre-creates-a-raised-change"),
    pytest.param("CREATE", None, {RAISED_FOR: "x"}, True, True, id="operator-raises-it"),
    pytest.param("UPDATE", {}, {RAISED_FOR: "x"}, False, False, id="team-adds-the-mark"),
    pytest.param("UPDATE", {RAISED_FOR: "x"}, {}, False, False, id="team-removes-the-mark"),
    pytest.param("UPDATE", {RAISED_FOR: "x"}, {RAISED_FOR: "x", "team": "a"}, False, True, id="other-labels-are-free"),
]  # fmt: skip


@pytest.mark.parametrize(("op", "old", "new", "operator", "allowed"), MARKS)
def test_only_the_operator_writes_its_marks(
    op: str, old: dict[str, str] | None, new: dict[str, str], operator: bool, allowed: bool
) -> None:
    import datetime as dt

    verdict = review_change_request(
        op,
        None if old is None else change(old),
        change(new),
        DEV,
        None,
        dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        operator=operator,
    )
    assert verdict.allowed is allowed, verdict.message
