"""Rollouts as the controller observes them: progress, outcome, and what to write after.

`observe` reads a workload body with the same test as `kubectl rollout status`;
`evidence` turns a finished rollout and its change into a DeploymentRecord;
`emergency_change` is the ChangeRequest a break-glass rollout raises after the fact.
Pure: the controller gathers bodies and pods, and writes what these return.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
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
    BREAK_GLASS,
    CHANGE_ANNOTATION,
    DEPLOYER_ANNOTATION,
    Reason,
)
from changegate.core.change.workloads import workload_images
from changegate.core.common import parse_time, raw_condition, seconds_between

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
_BASIS = {
    Reason.APPROVED_CHANGE.value: AdmissionBasis.CHANGE,
    Reason.ROLLBACK.value: AdmissionBasis.ROLLBACK,
    Reason.RESTART.value: AdmissionBasis.RESTART,
    Reason.BREAK_GLASS.value: AdmissionBasis.BREAK_GLASS,
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

    @property
    def key(self) -> str:
        """The DeploymentRecord's name: one record per workload revision, whatever retries."""
        suffix = "" if self.kind is WorkloadKind.DEPLOYMENT else f"-{self.kind.value.lower()}"
        return f"{self.namespace}.{self.name}{suffix}.{self.revision}"


def revision_of(kind: WorkloadKind, metadata: Mapping[str, Any]) -> int:
    """A Deployment's rollout revision; for the other kinds, the generation."""
    if kind is WorkloadKind.DEPLOYMENT:
        return int((metadata.get("annotations") or {}).get(REVISION_ANNOTATION) or 0)
    return int(metadata.get("generation") or 0)


def seen_by_its_controller(body: Mapping[str, Any]) -> bool:
    """Whether the workload controller has observed the latest spec."""
    metadata, status = body.get("metadata") or {}, body.get("status") or {}
    return int(status.get("observedGeneration") or 0) >= int(metadata.get("generation") or 0)


def observe(body: Mapping[str, Any], now: dt.datetime) -> Observation | None:
    """The admitted rollout in this body, or None when changegate admitted none."""
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
    revision = revision_of(kind, metadata)
    if revision <= 0:
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
        revision=revision,
        images=workload_images(body),
        basis=basis,
        change=annotations.get(CHANGE_ANNOTATION) or None,
        deployer=annotations.get(DEPLOYER_ANNOTATION) or None,
        admitted=admitted,
        break_glass=annotations.get(BREAK_GLASS) or None,
        result=result,
        finished=finished,
    )


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
        want = int(spec.get("replicas", 1))
        done = (
            status.get("updateRevision") == status.get("currentRevision")
            and int(status.get("updatedReplicas") or 0) == want
            and int(status.get("readyReplicas") or 0) == want
        )
        return (FinalResult.SUCCEEDED, now) if done else (None, None)
    want = int(status.get("desiredNumberScheduled") or 0)
    done = (
        int(status.get("updatedNumberScheduled") or 0) == want
        and int(status.get("numberAvailable") or 0) == want
    )
    return (FinalResult.SUCCEEDED, now) if done else (None, None)


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
        ),
    )


def emergency_change(seen: Observation, service: str) -> ChangeRequest:
    """The Emergency ChangeRequest a break-glass rollout raises after the fact, for review.

    Named after the workload and revision, so a retry raises nothing twice.
    """
    return ChangeRequest(
        metadata=ObjectMeta(
            name=f"emergency-{seen.name}-{seen.revision}"[:253],
            namespace=seen.namespace,
            labels={"changegate.io/review": "required"},
            annotations={"changegate.io/deployment-record": seen.key},
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
