"""The targets a `changegate request --from-file MANIFEST` declares: read from the manifest
the pipeline applies, so the change covers exactly what will be applied.

Pure: parsed YAML documents in, ChangeTargets out (kind, name, every container's
image and the pod template's hash, computed by the same core function the webhook uses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from changegate.api.v1alpha1 import ChangeTarget, ContainerImage, WorkloadKind
from changegate.cli.errors import CommandError, ExitCode
from changegate.core.change.workloads import container_images, pod_template, pod_template_hash

KINDS = {kind.value: kind for kind in WorkloadKind}


def workload_documents(documents: Iterable[Any]) -> list[Mapping[str, Any]]:
    """The objects of a manifest that run code (the kinds a change targets), `kind: List`
    items too."""
    found: list[Mapping[str, Any]] = []
    for document in documents:
        if not isinstance(document, Mapping):
            continue
        if document.get("kind") == "List":
            found += workload_documents(document.get("items") or ())
        elif document.get("kind") in KINDS:
            found.append(document)
    return found


def declared_target(document: Mapping[str, Any]) -> ChangeTarget:
    """One workload as a change declares it: its images and its whole pod template, read
    where its kind keeps it (a Pod's spec, a CronJob's job template) as the webhook does."""
    template = pod_template(document)
    images = [
        ContainerImage(container=container, image=image)
        for container, image in container_images(template).items()
    ]
    return ChangeTarget(
        kind=KINDS[str(document["kind"])],
        name=str((document.get("metadata") or {}).get("name") or ""),
        images=images,
        pod_template_hash=pod_template_hash(template),
    )


def manifest_targets(documents: Iterable[Any], source: str) -> tuple[ChangeTarget, ...]:
    """Every workload of the manifest as a declared target; none is a usage error."""
    workloads = workload_documents(documents)
    if not workloads:
        raise CommandError(
            f"--from-file {source}: no workload (Deployment, StatefulSet, DaemonSet, ReplicaSet,"
            " Pod, Job or CronJob) in it",
            ExitCode.USAGE,
        )
    return tuple(declared_target(document) for document in workloads)


def manifest_namespace(documents: Iterable[Any]) -> str | None:
    """The namespace the manifest's workloads name, when they name one."""
    namespaces = {
        str(n)
        for document in workload_documents(documents)
        if (n := (document.get("metadata") or {}).get("namespace"))
    }
    return namespaces.pop() if len(namespaces) == 1 else None
