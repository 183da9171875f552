"""What a change covers beyond its images: the pod template it declares, and the
exact references a rollback may return to.

The admission rules (core/change/admission.py) ask these for one change and one
workload request: a change covers exactly what it declares, nothing more, and a
new workload only when it declares its pod template. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from changegate.core.change.facts import ChangeFacts, DeployedFacts, TargetFacts
from changegate.core.change.images import is_deployed_reference
from changegate.core.change.workloads import Workload, pod_template_hash, template_edits
from changegate.core.common import seconds_between

DECLARE_TEMPLATE = (
    "raise a change that declares the new pod template:"
    " changegate request --from-file MANIFEST (records spec.targets[].podTemplateHash)"
)


def template_problem(target: TargetFacts, old: Workload | None, new: Workload) -> str | None:
    """Why the new pod template is not what the change declared, or None when it is.

    With a podTemplateHash the whole template must hash to it; without one the
    change covers images only, so any other edit of an existing template is refused,
    and so is a new workload (`create_problem`).
    """
    if old is None and target.pod_template_hash is None:
        return create_problem(new)
    edits = template_edits(old.template, new.template) if old is not None else []
    if target.pod_template_hash is not None:
        actual = pod_template_hash(new.template)
        if actual == target.pod_template_hash:
            return None
        changed = f" (this write changes {', '.join(edits)})" if edits else ""
        return (
            f"pod template {actual} is not the declared {target.pod_template_hash}{changed};"
            f" {DECLARE_TEMPLATE}"
        )
    if not edits:
        return None
    return (
        f"declares images only, but this write also changes {', '.join(edits)}; {DECLARE_TEMPLATE}"
    )


def create_problem(new: Workload) -> str:
    """A change covers a new workload only when it declares the pod template.

    A create brings the whole template at once: commands, args, volumes, the service
    account, everything beside the images. A change that declares images only covers
    none of that, so it does not cover the create. The refusal names the hash this
    write would have to declare, and the command that declares it from the manifest.
    """
    return (
        f"declares images only, but a new {new.kind} runs its whole pod template"
        f" (this one hashes to {pod_template_hash(new.template)}); {DECLARE_TEMPLATE}"
    )


def rollback_source(
    change: ChangeFacts, workload: Workload, now: datetime, horizon_seconds: int
) -> DeployedFacts | None:
    """A finished rollout of `change` on this workload that ran exactly its new images,
    no longer ago than the policy's rollback horizon."""
    for deployed in change.deployed_refs:
        if (deployed.kind, deployed.name) != (workload.kind, workload.name):
            continue
        if seconds_between(deployed.finished, now) > horizon_seconds:
            continue
        if runs_exactly(deployed, workload.images):
            return deployed
    return None


def runs_exactly(deployed: DeployedFacts, images: Mapping[str, str]) -> bool:
    """The same containers, each on exactly the reference the rollout recorded."""
    recorded = {container: (image, digest) for container, image, digest in deployed.images}
    if recorded.keys() != images.keys():
        return False
    return all(
        is_deployed_reference(recorded[c][0], recorded[c][1], actual)
        for c, actual in images.items()
    )
