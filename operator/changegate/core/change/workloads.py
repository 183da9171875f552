"""What changed in a workload: a rollout, a restart, or nothing that needs a change.

Built once from the admission request's objects at the boundary; every rule
after that reads these values, never the raw bodies.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from changegate.core.change.images import ImageRef

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# Labels the workload controllers put on pod templates; no change of configuration.
HASH_LABELS = ("pod-template-hash", "controller-revision-hash")
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
# Every kind that runs code in a governed namespace: the workloads above, and the
# ones a product team could otherwise use to run code around them.
GATED_KINDS = WORKLOAD_KINDS | {"Pod", "ReplicaSet", "Job", "CronJob"}


@dataclass(frozen=True, slots=True)
class Workload:
    """The parts of a Deployment, StatefulSet or DaemonSet that admission reads."""

    kind: str
    namespace: str
    name: str
    annotations: Mapping[str, str]
    template: Mapping[str, Any]
    images: Mapping[str, str] = field(default_factory=dict)
    # (kind, name) of the ownerReference marked controller, when there is one.
    controller: tuple[str, str] | None = None
    # A paused Deployment holds its template back; a StatefulSet updates only pods
    # at or above its partition. Releasing either rolls pods out (see `releases`).
    paused: bool = False
    partition: int = 0

    @classmethod
    def from_body(cls, body: Mapping[str, Any], namespace: str | None = None) -> Workload:
        metadata = body.get("metadata") or {}
        template = pod_template(body)
        return cls(
            kind=str(body.get("kind", "")),
            namespace=str(metadata.get("namespace") or namespace or ""),
            name=str(metadata.get("name") or ""),
            annotations=dict(metadata.get("annotations") or {}),
            template=template,
            images=container_images(template),
            controller=controller_of(metadata),
            paused=bool((body.get("spec") or {}).get("paused")),
            partition=partition_of(body),
        )

    def fingerprint(self) -> str:
        """A stable text of the pod template without what controllers add to it."""
        return template_fingerprint(self.template)


def pod_template(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """Where the kind keeps the pods it runs, as a pod template (metadata and spec).

    A Pod is its own template, but only its spec runs code: its labels and
    annotations are metadata like a Deployment's, so they are left out.
    """
    spec = body.get("spec") or {}
    kind = body.get("kind")
    if kind == "Pod":
        return {"spec": spec}
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
    return spec.get("template") or {}


def partition_of(body: Mapping[str, Any]) -> int:
    """A StatefulSet's rolling-update partition (0, every pod, when unset)."""
    strategy = (body.get("spec") or {}).get("updateStrategy") or {}
    value = (strategy.get("rollingUpdate") or {}).get("partition")
    return value if isinstance(value, int) else 0


def controller_of(metadata: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the object's controlling owner, as its ownerReferences say."""
    for owner in metadata.get("ownerReferences") or ():
        if isinstance(owner, Mapping) and owner.get("controller") is True:
            return str(owner.get("kind", "")), str(owner.get("name", ""))
    return None


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
    return container_images(pod_template(body))


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


def releases(old: Workload, new: Workload) -> bool:
    """Resuming a paused Deployment or lowering a StatefulSet's partition lets pods of the
    template out that were held back: a rollout, though the template did not move."""
    return (old.paused and not new.paused) or new.partition < old.partition


def is_rollout(old: Workload | None, new: Workload) -> bool:
    """A change of the pod template, a new workload, or a release of a held-back template."""
    if old is None or releases(old, new):
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


# -- the declared pod template ------------------------------------------------
# The canonical form of a pod template, used by the CLI to compute a change's
# spec.targets[].podTemplateHash from the manifest a pipeline applies, and by the
# webhook on the object the API server admits. Both must agree, so it leaves out
# what the API server or the controllers add and what is declared elsewhere:
# container images (declared per container), controller hash labels, the
# restartedAt stamp, metadata.creationTimestamp, null values, and fields that
# hold the API server's default (below). Then JSON with sorted keys, compact.
POD_SPEC_DEFAULTS: Mapping[str, Any] = {
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "securityContext": {},
    "schedulerName": "default-scheduler",
}
CONTAINER_DEFAULTS: Mapping[str, Any] = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "resources": {},
}
PROBE_DEFAULTS: Mapping[str, Any] = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}
CONTAINER_LISTS = ("initContainers", "containers")
# Labels the Job strategy adds to a new Job's template (the validating webhook sees them,
# the mutating one does not): its own uid and name, no configuration.
JOB_LABELS = (
    "controller-uid",
    "job-name",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
)
# What the API server adds to a new Pod (not to a template): defaults, the Priority and
# DefaultTolerationSeconds plugins' fields, and the ServiceAccount plugin's token volume.
POD_DEFAULTS: Mapping[str, Any] = {
    "enableServiceLinks": True,
    "priority": 0,
    "preemptionPolicy": "PreemptLowerPriority",
}
DEFAULT_TOLERATIONS = tuple(
    {"key": f"node.kubernetes.io/{taint}", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300}
    for taint in ("not-ready", "unreachable")
)  # fmt: skip
TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_SOURCES = [
    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                "path": "namespace"}]}},
]  # fmt: skip


def canonical_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """The pod template as a change declares it (see the comment above)."""
    cleaned: dict[str, Any] = _without_nulls(template)
    metadata = cleaned.get("metadata") or {}
    metadata.pop("creationTimestamp", None)
    for key, drop in (("labels", HASH_LABELS + JOB_LABELS), ("annotations", (RESTARTED_AT,))):
        values = metadata.get(key) or {}
        for name in drop:
            values.pop(name, None)
        if key in metadata and not values:
            del metadata[key]
    if "metadata" in cleaned and not metadata:
        del cleaned["metadata"]
    pod_spec = cleaned.get("spec") or {}
    _drop_defaults(pod_spec, POD_SPEC_DEFAULTS)
    for key in CONTAINER_LISTS:
        for container in pod_spec.get(key) or ():
            _canonical_container(container)
    for volume in pod_spec.get("volumes") or ():
        for source in volume.values():
            if isinstance(source, dict) and source.get("defaultMode") == 0o644:
                del source["defaultMode"]
    _drop_pod_admission(pod_spec)
    return cleaned


def _drop_pod_admission(pod_spec: dict[str, Any]) -> None:
    """Leave out what the API server adds to a new Pod, so that a Pod declared from its
    manifest hashes as the Pod admitted. Each is dropped only in the exact shape the API
    server writes: a volume of another shape, or mounted elsewhere, is declared code."""
    if pod_spec.get("serviceAccount") == pod_spec.get("serviceAccountName"):
        pod_spec.pop("serviceAccount", None)  # the deprecated mirror of serviceAccountName
    _drop_defaults(pod_spec, {**POD_DEFAULTS, "serviceAccountName": "default"})
    tolerations = [t for t in pod_spec.get("tolerations") or () if t not in DEFAULT_TOLERATIONS]
    pod_spec.pop("tolerations", None)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    token = {v.get("name") for v in pod_spec.get("volumes") or () if _is_token_volume(v)}
    if not token:
        return
    pod_spec["volumes"] = [v for v in pod_spec["volumes"] if v.get("name") not in token]
    if not pod_spec["volumes"]:
        del pod_spec["volumes"]
    for key in CONTAINER_LISTS:
        for container in pod_spec.get(key) or ():
            mounts = [
                m for m in container.get("volumeMounts") or () if not _is_token_mount(m, token)
            ]
            container.pop("volumeMounts", None)
            if mounts:
                container["volumeMounts"] = mounts


def _is_token_volume(volume: Mapping[str, Any]) -> bool:
    """The ServiceAccount plugin's `kube-api-access-*` volume, as it writes it."""
    projected = volume.get("projected")
    return (
        str(volume.get("name", "")).startswith("kube-api-access-")
        and set(volume) == {"name", "projected"}
        and isinstance(projected, dict)
        and projected == {"sources": TOKEN_SOURCES}
    )


def _is_token_mount(mount: Mapping[str, Any], token: set[Any]) -> bool:
    return mount.get("name") in token and dict(mount) == {
        "name": mount.get("name"),
        "mountPath": TOKEN_MOUNT,
        "readOnly": True,
    }


def _canonical_container(container: dict[str, Any]) -> None:
    image = ImageRef.parse(str(container.pop("image", "")))
    # The API server's default: Always for `latest` (or no tag), else IfNotPresent.
    latest = image.digest is None and image.tag in (None, "latest")
    pull = "Always" if latest else "IfNotPresent"
    _drop_defaults(container, {**CONTAINER_DEFAULTS, "imagePullPolicy": pull})
    for port in container.get("ports") or ():
        _drop_defaults(port, {"protocol": "TCP"})
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(name)
        if isinstance(probe, dict):
            _drop_defaults(probe, PROBE_DEFAULTS)
            _drop_defaults(probe.get("httpGet") or {}, {"scheme": "HTTP"})
    for env in container.get("env") or ():
        _drop_defaults(((env.get("valueFrom") or {}).get("fieldRef")) or {}, {"apiVersion": "v1"})


def _drop_defaults(values: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    for key, default in defaults.items():
        if key in values and values[key] == default:
            del values[key]


def _without_nulls(value: Any) -> Any:
    """A deep copy without null values (a manifest's `key: null` is the key left out)."""
    if isinstance(value, Mapping):
        return {str(k): _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_without_nulls(v) for v in value]
    return value


def pod_template_hash(template: Mapping[str, Any]) -> str:
    """`sha256:<hex>` of the canonical JSON of a pod template: what a change declares."""
    text = json.dumps(canonical_template(template), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def template_edits(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 5) -> list[str]:
    """The paths where two pod templates differ in their canonical forms, at most `limit`.

    Containers and volumes are named by their `name`, as in spec.containers[api].command.
    """
    paths: list[str] = []
    _diff(canonical_template(old), canonical_template(new), "", paths)
    return paths[:limit] + ([f"and {len(paths) - limit} more"] if len(paths) > limit else [])


def _diff(old: Any, new: Any, path: str, paths: list[str]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            _diff(old.get(key), new.get(key), f"{path}.{key}" if path else key, paths)
    elif isinstance(old, list) and isinstance(new, list) and _named(old) and _named(new):
        olds, news = {i["name"]: i for i in old}, {i["name"]: i for i in new}
        for name in sorted(olds.keys() | news.keys()):
            _diff(olds.get(name), news.get(name), f"{path}[{name}]", paths)
    else:
        paths.append(path)


def _named(items: list[Any]) -> bool:
    return all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in items)
