"""Rollouts as the controller observes them: progress, outcome, and what to write after.

`observe` reads a workload body with the same test as `kubectl rollout status`;
`evidence` turns a finished rollout and its change into a DeploymentRecord;
`emergency_change` is the ChangeRequest a break-glass rollout raises after the fact.
Pure: the controller gathers bodies and pods, and writes what these return.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from changegate.api.v1alpha1.changerequest import (
    ChangeRequest,
    ChangeRequestSpec,
    ChangeTarget,
    Rollout,
    RolloutResult,
)
from changegate.api.v1alpha1.common import (
    ChangeType,
    ContainerImage,
    ObjectMeta,
    ObjectRef,
    WorkloadKind,
)
from changegate.api.v1alpha1.deploymentrecord import (
    AdmissionBasis,
    DeploymentRecord,
    DeploymentRecordSpec,
    FinalResult,
    WorkloadRef,
)
from changegate.core.change.admission import (
    ADMISSION_ANNOTATION,
    ADMITTED_AT_ANNOTATION,
    AUDIT_ANNOTATION,
    BREAK_GLASS,
    CHANGE_ANNOTATION,
    DEPLOYER_ANNOTATION,
    PARTITION_ANNOTATION,
    Reason,
)
from changegate.core.change.raised import (
    DEPLOYMENT_RECORD,
    RAISED_FOR,
    generated_prefix,
    raised_for,
)
from changegate.core.change.revisions import (
    ControllerRevisionFact,
    rolled_out_revision,
    short_uid,
)
from changegate.core.change.workloads import partition_of, workload_images
from changegate.core.common import parse_time, raw_condition, seconds_between

_BASIS = {
    Reason.APPROVED_CHANGE.value: AdmissionBasis.CHANGE,
    Reason.ROLLBACK.value: AdmissionBasis.ROLLBACK,
    Reason.RESTART.value: AdmissionBasis.RESTART,
    Reason.BREAK_GLASS.value: AdmissionBasis.BREAK_GLASS,
    Reason.AUDIT_ONLY.value: AdmissionBasis.AUDIT_ONLY,
}


@dataclass(frozen=True, slots=True)
class Observation:
    """One admitted rollout of a workload, as its current body shows it."""

    kind: WorkloadKind
    namespace: str
    name: str
    uid: str
    revision: int
    images: dict[str, str]
    basis: AdmissionBasis
    change: str | None
    deployer: str | None
    admitted: dt.datetime
    break_glass: str | None
    # None while in progress; otherwise the outcome and when it was reached.
    result: FinalResult | None
    finished: dt.datetime | None
    # The ControllerRevision rolled out (StatefulSets, DaemonSets): whose pods run it.
    controller_revision: ControllerRevisionFact | None = None
    # Admitted in audit-only mode: why enforcement would have refused it.
    audit_reason: str | None = None
    # A StatefulSet's partition: the revision reaches only pods at or above it.
    partition: int = 0

    @property
    def key(self) -> str:
        """The DeploymentRecord's name: one record per workload revision and partition step,
        whatever retries.

        The workload's UID, shortened, tells a recreated workload's revision 1 from
        its namesake's: a record name is never reused. Lowering a StatefulSet's partition
        rolls the same revision onto more pods: each step is a rollout of its own, with
        its own record.
        """
        return record_name(
            self.kind, self.namespace, self.name, self.uid, self.revision, self.partition
        )


def record_name(
    kind: WorkloadKind, namespace: str, name: str, uid: str, revision: int, partition: int = 0
) -> str:
    """`<namespace>.<name>[-<kind>].<uid prefix>.<revision>[.p<partition>]`.

    No partition suffix on the step that reaches every pod, so an unpartitioned
    rollout keeps the name it always had.
    """
    suffix = "" if kind is WorkloadKind.DEPLOYMENT else f"-{kind.value.lower()}"
    uid_part = f".{short_uid(uid)}" if uid else ""
    step = f".p{partition}" if partition > 0 else ""
    return f"{namespace}.{name}{suffix}{uid_part}.{revision}{step}"[:253]


def seen_by_its_controller(body: Mapping[str, Any]) -> bool:
    """Whether the workload controller has observed the latest spec."""
    metadata, status = body.get("metadata") or {}, body.get("status") or {}
    return int(status.get("observedGeneration") or 0) >= int(metadata.get("generation") or 0)


def observe(
    body: Mapping[str, Any],
    now: dt.datetime,
    revisions: Iterable[ControllerRevisionFact] = (),
) -> Observation | None:
    """The admitted rollout in this body, or None when changegate admitted none.

    `revisions`: the ControllerRevisions of a StatefulSet or DaemonSet, whose
    revision numbers key its records (scaling bumps the generation, not these).
    """
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    basis = _BASIS.get(annotations.get(ADMISSION_ANNOTATION, ""))
    admitted = parse_time(annotations.get(ADMITTED_AT_ANNOTATION))
    if basis is None or admitted is None:
        return None
    if not seen_by_its_controller(body):
        return None  # the workload controller has not seen the admitted spec yet
    kind = WorkloadKind(body.get("kind", "Deployment"))
    spec, status = body.get("spec") or {}, body.get("status") or {}
    revision = rolled_out_revision(kind, body, revisions)
    if revision is None:
        return None
    result, finished = outcome(kind, spec, status, now)
    if finished is not None:
        # Conditions carry whole seconds; the admission stamp is finer.
        finished = max(finished, admitted)
    return Observation(
        kind=kind,
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        revision=revision.number,
        images=workload_images(body),
        basis=basis,
        change=annotations.get(CHANGE_ANNOTATION) or None,
        deployer=annotations.get(DEPLOYER_ANNOTATION) or None,
        admitted=admitted,
        break_glass=annotations.get(BREAK_GLASS) or None,
        result=result,
        finished=finished,
        controller_revision=revision.controller_revision,
        audit_reason=_audit_reason(basis, annotations),
        partition=_admitted_partition(annotations),
    )


def _admitted_partition(annotations: Mapping[str, str]) -> int:
    """The partition the webhook admitted the rollout at (0: every pod), as it stamped it."""
    value = annotations.get(PARTITION_ANNOTATION, "")
    return int(value) if value.isdigit() else 0


def _audit_reason(basis: AdmissionBasis, annotations: Mapping[str, str]) -> str | None:
    """The webhook's stamp of why enforcement would refuse it, on an audit-only rollout."""
    if basis is not AdmissionBasis.AUDIT_ONLY:
        return None
    return annotations.get(AUDIT_ANNOTATION) or "not stamped"


def outcome(
    kind: WorkloadKind, spec: Mapping[str, Any], status: Mapping[str, Any], now: dt.datetime
) -> tuple[FinalResult | None, dt.datetime | None]:
    if kind is WorkloadKind.DEPLOYMENT:
        progressing = raw_condition(status, "Progressing")
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            return FinalResult.FAILED, parse_time(progressing.get("lastUpdateTime")) or now
        want = int(spec.get("replicas", 1))
        done = (
            int(status.get("updatedReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
        )
        if done:
            return FinalResult.SUCCEEDED, parse_time(progressing.get("lastUpdateTime")) or now
        return None, None
    if kind is WorkloadKind.STATEFUL_SET:
        done = stateful_set_done(spec, status)
        return (FinalResult.SUCCEEDED, now) if done else (None, None)
    want = int(status.get("desiredNumberScheduled") or 0)
    done = (
        int(status.get("updatedNumberScheduled") or 0) == want
        and int(status.get("numberAvailable") or 0) == want
    )
    return (FinalResult.SUCCEEDED, now) if done else (None, None)


def stateful_set_done(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """All pods ready, and those at or above the partition run the update revision.

    Unpartitioned, that is every pod (the current revision becomes the update one);
    partitioned, the pods below the partition keep the old revision by design.
    """
    want = int(spec.get("replicas", 1))
    partition = partition_of({"spec": spec})
    ready = int(status.get("readyReplicas") or 0) == want
    updated = int(status.get("updatedReplicas") or 0)
    if partition > 0:
        # At least the pods at or above it: a new StatefulSet starts every pod on its
        # update revision, whatever the partition.
        return ready and updated >= max(want - partition, 0)
    return (
        ready and updated == want and status.get("updateRevision") == status.get("currentRevision")
    )


def with_rollout(change: ChangeRequest, seen: Observation, record: str | None) -> list[Rollout]:
    """The change's rollouts with this observation merged in (by workload and revision)."""
    result = {
        None: RolloutResult.IN_PROGRESS,
        FinalResult.SUCCEEDED: RolloutResult.SUCCEEDED,
        FinalResult.FAILED: RolloutResult.FAILED,
    }[seen.result]
    entry = Rollout(
        kind=seen.kind,
        name=seen.name,
        revision=seen.revision,
        images=[ContainerImage(container=c, image=i) for c, i in sorted(seen.images.items())],
        deployer=seen.deployer,
        start_time=seen.admitted,
        finish_time=seen.finished,
        result=result,
        deployment_record=record,
    )
    kept = [
        r
        for r in change.status.rollouts
        if not (r.kind is seen.kind and r.name == seen.name and r.revision == seen.revision)
    ]
    return [*kept, entry][-32:]


def _lead_time(seen: Observation, change: ChangeRequest | None) -> int | None:
    """Seconds from the change's commit to a successful rollout's finish, when known."""
    source = change.spec.source if change else None
    if not source or not source.commit_time or seen.finished is None:
        return None
    if seen.result is not FinalResult.SUCCEEDED:
        return None
    return seconds_between(source.commit_time, seen.finished)


def evidence(
    seen: Observation,
    change: ChangeRequest | None,
    service: str,
    environment: str,
    production: bool,
    digests: Mapping[str, str],
) -> DeploymentRecord:
    """The DeploymentRecord of a finished rollout."""
    if seen.result is None or seen.finished is None:
        raise ValueError(f"rollout {seen.key} has not finished")
    images = [
        ContainerImage(container=c, image=i, digest=digests.get(c))
        for c, i in sorted(seen.images.items())
    ]
    source = change.spec.source if change else None
    return DeploymentRecord(
        metadata=ObjectMeta(name=seen.key, labels={"changegate.io/service": service}),
        spec=DeploymentRecordSpec(
            service=service,
            environment=environment,
            namespace=seen.namespace,
            production=production,
            workload=WorkloadRef(kind=seen.kind, name=seen.name),
            revision=seen.revision,
            images=images,
            image_summary=", ".join(f"{c}={i}" for c, i in sorted(seen.images.items()))[:1024],
            admission=seen.basis,
            change_request=(
                ObjectRef(
                    name=change.metadata.name or "",
                    namespace=seen.namespace,
                    uid=change.metadata.uid,
                )
                if change
                else None
            ),
            change_type=change.spec.type if change else None,
            requester=change.spec.requester if change else None,
            approvers=list(change.status.approved_by) if change else [],
            deployer=seen.deployer,
            source=source,
            start_time=seen.admitted,
            finish_time=seen.finished,
            result=seen.result,
            lead_time_seconds=_lead_time(seen, change),
            audit_reason=seen.audit_reason,
        ),
    )


def emergency_change(seen: Observation, service: str) -> ChangeRequest:
    """The Emergency ChangeRequest a break-glass rollout raises after the fact, for review.

    Its name is generated, so nobody pre-creates it; the operator finds it again by
    its raised-for label (the record's name, hashed), so a retry raises nothing twice.
    """
    return ChangeRequest(
        metadata=ObjectMeta(
            generate_name=generated_prefix("emergency", seen.name),
            namespace=seen.namespace,
            labels={"changegate.io/review": "required", RAISED_FOR: raised_for(seen.key)},
            annotations={DEPLOYMENT_RECORD: seen.key},
        ),
        spec=ChangeRequestSpec(
            service=service,
            type=ChangeType.EMERGENCY,
            summary=(
                f"Break-glass rollout of {seen.kind.value}/{seen.name} revision {seen.revision}"
            )[:256],
            emergency_reason=(seen.break_glass or "break-glass rollout")[:2048],
            requester=seen.deployer,
            targets=[
                ChangeTarget(
                    kind=seen.kind,
                    name=seen.name,
                    images=[
                        ContainerImage(container=c, image=i) for c, i in sorted(seen.images.items())
                    ],
                )
            ],
        ),
    )
