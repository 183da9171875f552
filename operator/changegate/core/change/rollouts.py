"""Rollouts as the controller observes them: progress, outcome, and the evidence to write.

`observe` reads a workload body with the same test as `kubectl rollout status`;
`evidence` turns a finished rollout and its change into a DeploymentRecord.
Pure: the controller gathers bodies and pods, and writes what these return.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from changegate.api.v1alpha1.changerequest import ChangeRequest, Rollout, RolloutResult
from changegate.api.v1alpha1.common import ContainerImage, ObjectMeta, ObjectRef, WorkloadKind
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


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    return next((c for c in status.get("conditions") or () if c.get("type") == type_), {})


def observe(body: Mapping[str, Any], now: dt.datetime) -> Observation | None:
    """The admitted rollout in this body, or None when changegate admitted none."""
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    basis = _BASIS.get(annotations.get(ADMISSION_ANNOTATION, ""))
    admitted = _time(annotations.get(ADMITTED_AT_ANNOTATION))
    if basis is None or admitted is None:
        return None
    kind = WorkloadKind(body.get("kind", "Deployment"))
    spec, status = body.get("spec") or {}, body.get("status") or {}
    generation = int(metadata.get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if observed < generation:
        return None  # the workload controller has not seen the admitted spec yet
    if kind is WorkloadKind.DEPLOYMENT:
        revision = int(annotations.get(REVISION_ANNOTATION) or 0)
    else:
        revision = generation
    if revision <= 0:
        return None
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or ()
    result, finished = _outcome(kind, spec, status, now)
    if finished is not None:
        # Conditions carry whole seconds; the admission stamp is finer.
        finished = max(finished, admitted)
    return Observation(
        kind=kind,
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        revision=revision,
        images={c["name"]: c["image"] for c in containers},
        basis=basis,
        change=annotations.get(CHANGE_ANNOTATION) or None,
        deployer=annotations.get(DEPLOYER_ANNOTATION) or None,
        admitted=admitted,
        break_glass=annotations.get(BREAK_GLASS) or None,
        result=result,
        finished=finished,
    )


def _outcome(
    kind: WorkloadKind, spec: Mapping[str, Any], status: Mapping[str, Any], now: dt.datetime
) -> tuple[FinalResult | None, dt.datetime | None]:
    if kind is WorkloadKind.DEPLOYMENT:
        progressing = _condition(status, "Progressing")
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            return FinalResult.FAILED, _time(progressing.get("lastUpdateTime")) or now
        want = int(spec.get("replicas", 1))
        done = (
            int(status.get("updatedReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
        )
        if done:
            return FinalResult.SUCCEEDED, _time(progressing.get("lastUpdateTime")) or now
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
    lead_time = None
    source = change.spec.source if change else None
    if source and source.commit_time and seen.result is FinalResult.SUCCEEDED:
        lead_time = max(0, int((seen.finished - source.commit_time).total_seconds()))
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
            lead_time_seconds=lead_time,
        ),
    )


SOURCE_REPOSITORY = "changegate.io/source-repository"
SOURCE_COMMIT = "changegate.io/source-commit"
SOURCE_COMMIT_TIME = "changegate.io/source-commit-time"


@dataclass(frozen=True, slots=True)
class Promotion:
    """A finished rollout in the pre-production stage: what production should get next."""

    kind: WorkloadKind
    namespace: str
    name: str
    revision: int
    images: dict[str, str]
    source: dict[str, str]
    deployer: str | None

    @property
    def change_name(self) -> str:
        return f"promote-{self.name}-{self.revision}"[:253]


def promotion(body: Mapping[str, Any], now: dt.datetime) -> Promotion | None:
    """The pre-production rollout in this body, once it has finished successfully.

    Pre-production is not governed, so nothing is stamped: the source comes from
    the annotations the pipeline sets (changegate.io/source-commit and friends).
    """
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    kind = WorkloadKind(body.get("kind", "Deployment"))
    spec, status = body.get("spec") or {}, body.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(metadata.get("generation") or 0):
        return None
    revision = (
        int(annotations.get(REVISION_ANNOTATION) or 0)
        if kind is WorkloadKind.DEPLOYMENT
        else int(metadata.get("generation") or 0)
    )
    result, _ = _outcome(kind, spec, status, now)
    if revision <= 0 or result is not FinalResult.SUCCEEDED:
        return None
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or ()
    source = {
        key: annotations[annotation]
        for key, annotation in (
            ("repository", SOURCE_REPOSITORY),
            ("commit", SOURCE_COMMIT),
            ("commitTime", SOURCE_COMMIT_TIME),
        )
        if annotations.get(annotation)
    }
    return Promotion(
        kind=kind,
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        revision=revision,
        images={c["name"]: c["image"] for c in containers},
        source=source if {"repository", "commit"} <= source.keys() else {},
        deployer=annotations.get(DEPLOYER_ANNOTATION) or None,
    )
