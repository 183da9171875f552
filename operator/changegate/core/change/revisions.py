"""Which revision of a workload a rollout put out, and which pods run it.

Deployments count revisions in an annotation and label the new ReplicaSet's pods
with its pod-template-hash; StatefulSets and DaemonSets keep ControllerRevisions
and label their pods with controller-revision-hash. `observe` and `promotion`
key records and promoted changes by these revisions (never by metadata.generation,
which scaling bumps); the controller selects the pods whose digests it records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from changegate.api.v1alpha1.common import WorkloadKind

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
CONTROLLER_REVISION_HASH = "controller-revision-hash"


@dataclass(frozen=True, slots=True)
class ControllerRevisionFact:
    """One ControllerRevision of a StatefulSet or DaemonSet: its name and revision number."""

    name: str
    revision: int
    hash: str  # its controller-revision-hash label: what a DaemonSet's pods carry


@dataclass(frozen=True, slots=True)
class Revision:
    """The revision a workload's spec rolls out: its number and, for the controller
    revision kinds, the ControllerRevision it is."""

    number: int
    controller_revision: ControllerRevisionFact | None = None


def controller_revision_of(body: Mapping[str, Any]) -> tuple[str, ControllerRevisionFact] | None:
    """A ControllerRevision body as (uid of the workload it belongs to, its facts)."""
    metadata = body.get("metadata") or {}
    owner = next(
        (r for r in metadata.get("ownerReferences") or () if r.get("controller")),
        None,
    )
    if owner is None or owner.get("kind") not in ("StatefulSet", "DaemonSet"):
        return None
    labels = metadata.get("labels") or {}
    fact = ControllerRevisionFact(
        name=str(metadata.get("name", "")),
        revision=int(body.get("revision") or 0),
        hash=str(labels.get(CONTROLLER_REVISION_HASH, "")),
    )
    return str(owner.get("uid", "")), fact


def rolled_out_revision(
    kind: WorkloadKind, body: Mapping[str, Any], revisions: Iterable[ControllerRevisionFact]
) -> Revision | None:
    """The revision the body's spec rolls out; None while it is not known yet.

    A Deployment's comes from its revision annotation. A StatefulSet's is the
    ControllerRevision its status names as updateRevision; a DaemonSet names
    none, and its controller gives the current template the highest revision.
    """
    metadata, status = body.get("metadata") or {}, body.get("status") or {}
    if kind is WorkloadKind.DEPLOYMENT:
        number = int((metadata.get("annotations") or {}).get(REVISION_ANNOTATION) or 0)
        return Revision(number) if number > 0 else None
    known = list(revisions)
    if kind is WorkloadKind.STATEFUL_SET:
        wanted = status.get("updateRevision")
        found = next((r for r in known if r.name == wanted), None)
    else:
        found = max(known, key=lambda r: r.revision, default=None)
    if found is None or found.revision <= 0:
        return None
    return Revision(found.revision, found)


def revision_pods(kind: WorkloadKind, revision: ControllerRevisionFact) -> dict[str, str]:
    """The label that selects the pods of a StatefulSet's or DaemonSet's revision.

    A StatefulSet labels its pods with the revision's name; a DaemonSet with its hash.
    """
    if kind is WorkloadKind.STATEFUL_SET:
        return {CONTROLLER_REVISION_HASH: revision.name}
    return {CONTROLLER_REVISION_HASH: revision.hash or revision.name}


def new_replica_set_hash(
    replica_sets: Iterable[Mapping[str, Any]], owner_uid: str, revision: int
) -> str | None:
    """The pod-template-hash of the ReplicaSet a Deployment's revision created.

    Only a ReplicaSet the Deployment controls, carrying the same revision annotation.
    """
    for replica_set in replica_sets:
        metadata = replica_set.get("metadata") or {}
        owned = any(
            r.get("controller") and r.get("uid") == owner_uid
            for r in metadata.get("ownerReferences") or ()
        )
        annotations = metadata.get("annotations") or {}
        if owned and annotations.get(REVISION_ANNOTATION) == str(revision):
            found = (metadata.get("labels") or {}).get(POD_TEMPLATE_HASH)
            return str(found) if found else None
    return None


def short_uid(uid: str) -> str:
    """The first eight characters of a UID: tells one workload from a recreated namesake."""
    return uid.replace("-", "")[:8].lower()
