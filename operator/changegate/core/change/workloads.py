"""What changed in a workload: a rollout, a restart, or nothing that needs a change.

Built once from the admission request's objects at the boundary; every rule
after that reads these values, never the raw bodies.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# Labels the workload controllers put on pod templates; no change of configuration.
HASH_LABELS = ("pod-template-hash", "controller-revision-hash")
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})


@dataclass(frozen=True, slots=True)
class Workload:
    """The parts of a Deployment, StatefulSet or DaemonSet that admission reads."""

    kind: str
    namespace: str
    name: str
    annotations: Mapping[str, str]
    template: Mapping[str, Any]
    images: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any], namespace: str | None = None) -> Workload:
        metadata = body.get("metadata") or {}
        spec = body.get("spec") or {}
        template = spec.get("template") or {}
        return cls(
            kind=str(body.get("kind", "")),
            namespace=str(metadata.get("namespace") or namespace or ""),
            name=str(metadata.get("name") or ""),
            annotations=dict(metadata.get("annotations") or {}),
            template=template,
            images=container_images(template),
        )

    def fingerprint(self) -> str:
        """A stable text of the pod template without what controllers add to it."""
        return template_fingerprint(self.template)


def container_images(template: Mapping[str, Any]) -> dict[str, str]:
    """The image of every container of a pod template, by container name, init containers too.

    The one reader of a template's images: admission, evidence, emergency changes,
    promotion and the controller's workload index all see the same images.
    """
    pod_spec = template.get("spec") or {}
    return {
        str(c.get("name", "")): str(c.get("image", ""))
        for key in ("initContainers", "containers")
        for c in pod_spec.get(key) or ()
    }


def workload_images(body: Mapping[str, Any]) -> dict[str, str]:
    """The images of a workload body's pod template (see `container_images`)."""
    return container_images((body.get("spec") or {}).get("template") or {})


def template_fingerprint(template: Mapping[str, Any]) -> str:
    cleaned = copy.deepcopy(dict(template))
    labels = (cleaned.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        for label in HASH_LABELS:
            labels.pop(label, None)
    return json.dumps(cleaned, sort_keys=True, separators=(",", ":"))


def _without_restart(template: Mapping[str, Any]) -> str:
    cleaned = copy.deepcopy(dict(template))
    metadata = cleaned.get("metadata") or {}
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(RESTARTED_AT, None)
        if not annotations:
            del metadata["annotations"]
    return template_fingerprint(cleaned)


def _without_images(template: Mapping[str, Any]) -> str:
    cleaned = copy.deepcopy(dict(template))
    pod_spec = cleaned.get("spec") or {}
    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key) or ():
            if isinstance(container, dict):
                container.pop("image", None)
    return _without_restart(cleaned)


def _without_hash_labels(template: Mapping[str, Any]) -> Mapping[str, Any]:
    """The template without the labels controllers add, copied only where they are."""
    metadata = template.get("metadata")
    if not isinstance(metadata, dict):
        return template
    labels = metadata.get("labels")
    if not isinstance(labels, dict) or not any(k in labels for k in HASH_LABELS):
        return template
    kept = {k: v for k, v in labels.items() if k not in HASH_LABELS}
    return {**template, "metadata": {**metadata, "labels": kept}}


def is_rollout(old: Workload | None, new: Workload) -> bool:
    """Only a change of the pod template (or a new workload) rolls pods out."""
    if old is None:
        return True
    if old.template == new.template:
        return False  # the common case (scaling, metadata edits)
    # Comparing the templates as values costs far less than fingerprinting both (a deep
    # copy and a sorted dump each): this runs on every rollout the webhook sees.
    return _without_hash_labels(old.template) != _without_hash_labels(new.template)


def is_restart(old: Workload | None, new: Workload) -> bool:
    """`kubectl rollout restart`: only the restartedAt annotation of the template moved."""
    if old is None:
        return False
    new_stamp = ((new.template.get("metadata") or {}).get("annotations") or {}).get(RESTARTED_AT)
    old_stamp = ((old.template.get("metadata") or {}).get("annotations") or {}).get(RESTARTED_AT)
    return (
        new_stamp is not None
        and new_stamp != old_stamp
        and _without_restart(old.template) == _without_restart(new.template)
    )


def only_images_changed(old: Workload | None, new: Workload) -> bool:
    """Whether the pod templates differ in container images alone.

    That is what `kubectl rollout undo` of an image update changes; a different
    restartedAt stamp is no difference of configuration.
    """
    if old is None:
        return False
    return _without_images(old.template) == _without_images(new.template)
