"""Promotion: a finished pre-production rollout raises production's ChangeRequest.

`promotion` reads the pre-production workload body once its rollout has
succeeded; `production_change` builds the ChangeRequest production gets, as
Standard under the first active template of the service that fits it, else
Normal (and so Pending). Its name is generated; a label carrying the hash of the
pre-production rollout lets a retry find it instead of raising it twice. Its
requester is the deployer the webhook stamped, only while that stamp is trusted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from changegate.api.v1alpha1.changerequest import (
    ChangeRequest,
    ChangeRequestSpec,
    ChangeSource,
    ChangeTarget,
)
from changegate.api.v1alpha1.changetemplate import ChangeTemplate
from changegate.api.v1alpha1.common import (
    ChangeType,
    ContainerImage,
    LocalObjectRef,
    ObjectMeta,
    WorkloadKind,
)
from changegate.api.v1alpha1.deploymentrecord import FinalResult
from changegate.core.change.provenance import trusted_deployer
from changegate.core.change.raised import (
    PROMOTED_FROM,
    RAISED_FOR,
    REQUESTER_UNVERIFIED,
    generated_prefix,
    raised_for,
)
from changegate.core.change.revisions import ControllerRevisionFact, rolled_out_revision
from changegate.core.change.rollouts import outcome, seen_by_its_controller
from changegate.core.change.templates import WorkloadImages, WorkloadLabels, template_fit
from changegate.core.change.workloads import workload_images

SOURCE_REPOSITORY = "changegate.io/source-repository"
SOURCE_COMMIT = "changegate.io/source-commit"
SOURCE_COMMIT_TIME = "changegate.io/source-commit-time"
UNVERIFIED = (
    "no requester claimed: the pre-production rollout carries no deployer stamp the webhook"
    " made for this template"
)


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
    uid: str = ""

    @property
    def key(self) -> str:
        """What raised production's change: this workload (by UID) at this revision."""
        return f"{self.namespace}/{self.kind.value}/{self.name}/{self.uid}/{self.revision}"

    @property
    def raised_for(self) -> str:
        return raised_for(self.key)


def promotion(
    body: Mapping[str, Any],
    now: dt.datetime,
    revisions: Iterable[ControllerRevisionFact] = (),
) -> Promotion | None:
    """The pre-production rollout in this body, once it has finished successfully.

    Pre-production is not gated: the source comes from the annotations the pipeline
    sets (changegate.io/source-commit and friends); the deployer from the webhook's
    stamp, when it was made for this template (core/change/provenance.py).
    """
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    kind = WorkloadKind(body.get("kind", "Deployment"))
    if not seen_by_its_controller(body):
        return None
    revision = rolled_out_revision(kind, body, revisions)
    result, _ = outcome(kind, body.get("spec") or {}, body.get("status") or {}, now)
    if revision is None or result is not FinalResult.SUCCEEDED:
        return None
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
        revision=revision.number,
        images=workload_images(body),
        source=source if {"repository", "commit"} <= source.keys() else {},
        deployer=trusted_deployer(body),
        uid=str(metadata.get("uid", "")),
    )


def _source(promoted: Promotion) -> ChangeSource | None:
    """The pipeline's source annotations as a ChangeSource; None when they do not parse."""
    if not promoted.source:
        return None
    try:
        return ChangeSource.model_validate(promoted.source)
    except ValidationError:
        return None  # a mistyped annotation must not stop production's change being raised


def normal_change(
    promoted: Promotion, service: str, environment: str, production: str
) -> ChangeRequest:
    """Production's change for a promotion, as a Normal change that needs approval."""
    summary = (
        f"Promote {promoted.kind.value}/{promoted.name} revision {promoted.revision}"
        f" from {environment}"
    )
    images = [ContainerImage(container=c, image=i) for c, i in sorted(promoted.images.items())]
    return ChangeRequest(
        metadata=ObjectMeta(
            generate_name=generated_prefix("promote", promoted.name),
            namespace=production,
            labels={PROMOTED_FROM: environment, RAISED_FOR: promoted.raised_for},
            annotations={} if promoted.deployer else {REQUESTER_UNVERIFIED: UNVERIFIED},
        ),
        spec=ChangeRequestSpec(
            service=service,
            type=ChangeType.NORMAL,
            summary=summary[:256],
            targets=[ChangeTarget(kind=promoted.kind, name=promoted.name, images=images)],
            source=_source(promoted),
            requester=promoted.deployer,
        ),
    )


def as_standard(change: ChangeRequest, template: str) -> ChangeRequest:
    """The same change as a Standard one under `template`."""
    spec = change.spec.model_copy(
        update={"type": ChangeType.STANDARD, "template_ref": LocalObjectRef(name=template)}
    )
    return change.model_copy(update={"spec": spec})


def production_change(
    promoted: Promotion,
    service: str,
    environment: str,
    production: str,
    templates: Iterable[ChangeTemplate],
    running: WorkloadImages,
    labels: WorkloadLabels,
    now: dt.datetime,
) -> ChangeRequest:
    """Production's change: Standard under the first template (by name) that fits, else Normal.

    `templates` may hold any; only the production namespace's, of the service, are tried.
    """
    normal = normal_change(promoted, service, environment, production)
    candidates = sorted(
        (t for t in templates if t.metadata.namespace == production and t.spec.service == service),
        key=lambda t: t.metadata.name or "",
    )
    for template in candidates:
        draft = as_standard(normal, template.metadata.name or "")
        if template_fit(draft, template, running, labels, now).ok:
            return draft
    return normal
