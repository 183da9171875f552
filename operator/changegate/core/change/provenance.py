"""Who deployed a workload outside governed namespaces, as the API server authenticated them.

Pre-production is not gated, but a promotion names its deployer as production's
requester. The webhook stamps every pre-production rollout with the authenticated
user and the hash of the pod template it was stamped for; the controller trusts
the deployer only while that hash matches the template it promotes, so a stamp
left over from an earlier rollout, or typed by hand while the webhook was away,
claims nobody.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from changegate.core.change.admission import DEPLOYER_ANNOTATION
from changegate.core.change.workloads import Workload, is_rollout, pod_template, pod_template_hash
from changegate.core.common import User

DEPLOYED_TEMPLATE = "changegate.io/deployed-template"
PROVENANCE = (DEPLOYER_ANNOTATION, DEPLOYED_TEMPLATE)


def preproduction_stamp(old: Workload | None, new: Workload, user: User) -> dict[str, str]:
    """The annotations to write on a pre-production workload ("" removes one).

    A rollout is stamped with its deployer and template; any other write keeps the
    stamps as they were, so nobody edits them by hand.
    """
    if is_rollout(old, new):
        return {
            DEPLOYER_ANNOTATION: user.username,
            DEPLOYED_TEMPLATE: pod_template_hash(new.template),
        }
    before = old.annotations if old else {}
    return {
        key: before.get(key, "")
        for key in PROVENANCE
        if new.annotations.get(key) != before.get(key)
    }


def trusted_deployer(body: Mapping[str, Any]) -> str | None:
    """The stamped deployer, when the stamp was made for the template the body runs."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    deployer = annotations.get(DEPLOYER_ANNOTATION)
    stamped_for = annotations.get(DEPLOYED_TEMPLATE)
    if not deployer or not stamped_for:
        return None
    return deployer if stamped_for == pod_template_hash(pod_template(body)) else None
