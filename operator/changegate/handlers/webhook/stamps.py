"""Provenance stamps on pre-production rollouts: who deployed, as the API server says.

The chart sends workload writes in namespaces that are not governed to
/stamp-<plural>, with failurePolicy Ignore: nothing here ever refuses. In a
namespace a ServiceOnCall lists as a non-production environment, a rollout is
stamped with the authenticated user and its template's hash
(core/change/provenance.py), which a promotion then names as production's
requester; any other namespace passes untouched, from the cache alone.
"""

from __future__ import annotations

from changegate.core.change.provenance import preproduction_stamp
from changegate.core.change.workloads import Workload
from changegate.handlers.webhook.server import ALLOW, Answer, Review, Route
from changegate.handlers.webhook.state import WebhookState
from changegate.handlers.webhook.workloads import annotation_patch

STAMPED_PLURALS = {
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "daemonsets": "DaemonSet",
}


class PreproductionStamps:
    """The stamping call for workloads outside governed namespaces."""

    def __init__(self, state: WebhookState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        ops = frozenset({"CREATE", "UPDATE"})
        return [
            Route(f"/stamp-{plural}", "mutating", frozenset({("apps", kind)}), self.stamp, ops)
            for plural, kind in STAMPED_PLURALS.items()
        ]

    def preproduction(self, namespace: str) -> bool:
        """A namespace some ServiceOnCall lists as an environment, and not as production."""
        policy = next(iter(self.state.services.get(("environment", namespace))), None)
        return policy is not None and namespace not in policy.production_namespaces

    async def stamp(self, review: Review) -> Answer:
        if review.sub_resource or review.object is None or not self.preproduction(review.namespace):
            return ALLOW
        new = Workload.from_body(review.object, review.namespace)
        old = Workload.from_body(review.old_object, new.namespace) if review.old_object else None
        wanted = preproduction_stamp(old, new, review.user)
        return Answer(True, patch=annotation_patch(new.annotations, wanted))
