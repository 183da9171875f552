"""Admission of Deployments, StatefulSets and DaemonSets: stamp, then allow or refuse.

The mutating call (/mutate-<plural>) notes on an admitted workload which change
let it through; the validating call (/validate-<plural>) refuses what no approved
change covers, and records the decision (metrics always; an Event and a log
line unless it is a dry run). Both read the caches and call the pure
`decide_rollout`; the validating call reuses the mutating call's decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.admission import STAMPED, Decision, WorkloadRequest, decide_rollout
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.workloads import Workload
from changegate.handlers.webhook.caches import parse_or_skip
from changegate.handlers.webhook.server import ALLOW, Answer, Review, Route
from changegate.handlers.webhook.state import Clock, WebhookState, utc_now
from changegate.metrics import ADMISSION_DECISIONS, ADMISSION_LATENCY, AUDIT_ONLY_ADMISSIONS

log = logging.getLogger(__name__)

WORKLOAD_PLURALS = {
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "daemonsets": "DaemonSet",
    # The other ways to run code; their controllers' own writes pass at once (controllers.py).
    "pods": "Pod",
    "replicasets": "ReplicaSet",
    "jobs": "Job",
    "cronjobs": "CronJob",
}
# The API group of each kind; the three workloads and ReplicaSets are "apps".
KIND_GROUPS = {"Pod": "", "Job": "batch", "CronJob": "batch"}


# -- one decision per request ---------------------------------------------------
# The API server calls the mutating webhook, then the validating one, for the same
# write; deciding twice doubles the cost of every rollout. The request uid cannot
# join the two: kube-apiserver gives every webhook call a fresh uid. So the
# mutating call leaves its decision here under (namespace, kind, name, operation,
# user), with what the decision read: the request (without the annotations the
# mutation itself sets), the ServiceOnCall and the ChangeRequests from the caches.
# The validating call takes it only if all of that is the same (equal request,
# the very same cached objects, so an approval in between is seen) and it is
# younger than a few seconds. Taking removes it: a later, identical write (a retry
# after an approval) always gets a fresh decision from its own mutating call.
# Comparing by equality costs less than hashing a canonical form of the bodies.


@dataclass(frozen=True, slots=True)
class _Shared:
    basis: WorkloadRequest
    service: ServicePolicy | None
    changes: tuple[ChangeFacts, ...]
    decision: Decision
    expires: float


def _basis(request: WorkloadRequest) -> WorkloadRequest:
    """The request as both calls see it: without the annotations the mutating call sets."""
    new = request.new
    annotations = {k: v for k, v in new.annotations.items() if k not in STAMPED}
    return replace(request, new=replace(new, annotations=annotations))


def _same_objects(a: Sequence[object], b: Sequence[object]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


class SharedDecisions:
    """The mutating call's decisions, waiting for the validating call of the same write."""

    def __init__(
        self, ttl: float = 5.0, size: int = 2048, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl, self._size, self._clock = ttl, size, clock
        self._entries: OrderedDict[Hashable, _Shared] = OrderedDict()

    @staticmethod
    def key(request: WorkloadRequest) -> Hashable:
        new = request.new
        return (new.namespace, new.kind, new.name, request.operation, request.user.username)

    def put(
        self,
        request: WorkloadRequest,
        service: ServicePolicy | None,
        changes: Sequence[ChangeFacts],
        decision: Decision,
    ) -> None:
        key = self.key(request)
        self._entries.pop(key, None)
        entry = _Shared(
            _basis(request), service, tuple(changes), decision, self._clock() + self._ttl
        )
        self._entries[key] = entry
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def take(
        self,
        request: WorkloadRequest,
        service: ServicePolicy | None,
        changes: Sequence[ChangeFacts],
    ) -> Decision | None:
        entry = self._entries.pop(self.key(request), None)
        if (
            entry is None
            or entry.expires < self._clock()
            or entry.service is not service
            or not _same_objects(entry.changes, changes)
            or entry.basis != _basis(request)
        ):
            return None
        return entry.decision

    def __len__(self) -> int:
        return len(self._entries)


# -- the patch ------------------------------------------------------------------


def _pointer(key: str) -> str:
    return "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")


def annotation_patch(current: Mapping[str, str], wanted: Mapping[str, str]) -> list[dict[str, Any]]:
    """JSON patch ops that give the workload these annotations ("" removes one)."""
    if not current:
        values = {k: v for k, v in wanted.items() if v}
        return [{"op": "add", "path": "/metadata/annotations", "value": values}] if values else []
    ops: list[dict[str, Any]] = []
    for key, value in wanted.items():
        if value:
            if current.get(key) != value:
                ops.append({"op": "add", "path": _pointer(key), "value": value})
        elif key in current:
            ops.append({"op": "remove", "path": _pointer(key)})
    return ops


# -- the handlers -----------------------------------------------------------------


class WorkloadAdmission:
    """The two webhook calls for workloads, over one process's state."""

    def __init__(
        self, state: WebhookState, shared: SharedDecisions | None = None, clock: Clock = utc_now
    ) -> None:
        self.state = state
        self.shared = shared if shared is not None else SharedDecisions()
        self.clock = clock

    def routes(self) -> list[Route]:
        routes = []
        for plural, kind in WORKLOAD_PLURALS.items():
            kinds = frozenset({(KIND_GROUPS.get(kind, "apps"), kind)})
            ops = frozenset({"CREATE", "UPDATE"})
            routes.append(Route(f"/mutate-{plural}", "mutating", kinds, self.mutate, ops))
            routes.append(Route(f"/validate-{plural}", "validating", kinds, self.validate, ops))
        return routes

    async def mutate(self, review: Review) -> Answer:
        """Note on the workload which change let it through, and who deployed it."""
        if review.sub_resource or review.object is None:
            return ALLOW
        request = self._request(review, review.object)
        service = await self._service_for(request)
        changes = self._changes(request)
        freezes = self._freezes(service)
        decision = decide_rollout(request, service, changes, self.clock(), freezes)
        self.shared.put(request, service, changes, decision)
        if not decision.allowed:
            return ALLOW  # the validating call refuses it, and records why
        return Answer(True, patch=annotation_patch(request.new.annotations, decision.annotations))

    async def validate(self, review: Review) -> Answer:
        """Refuse a rollout in a governed namespace that no approved change covers."""
        if review.sub_resource or review.object is None:
            return ALLOW
        started = time.perf_counter()
        request = self._request(review, review.object)
        service = await self._service_for(request)
        changes = self._changes(request)
        freezes = self._freezes(service)
        decision = self.shared.take(request, service, changes)
        if decision is None or freezes:  # a freeze may have begun since the mutating call
            decision = decide_rollout(request, service, changes, self.clock(), freezes)
        ADMISSION_LATENCY.labels(request.new.kind).observe(time.perf_counter() - started)
        ADMISSION_DECISIONS.labels(
            "allow" if decision.allowed else "deny", decision.reason.value
        ).inc()
        if decision.refusal is not None and not review.dry_run:
            workload = request.new
            AUDIT_ONLY_ADMISSIONS.labels(
                workload.namespace, workload.kind, decision.refusal.reason.value
            ).inc()
        if decision.recorded and not review.dry_run:
            self._record(review.object, request, decision)
        if not decision.allowed:
            return Answer(False, 403, decision.explain())
        # In audit-only mode, kubectl prints the refusal the rollout escaped.
        return Answer(True, warnings=decision.warnings) if decision.warnings else ALLOW

    # -- gathering ----------------------------------------------------------------

    def _request(self, review: Review, body: dict[str, Any]) -> WorkloadRequest:
        new = Workload.from_body(body, review.namespace)
        old = review.old_object
        return WorkloadRequest(
            operation=review.operation,
            new=new,
            old=Workload.from_body(old, new.namespace) if old else None,
            user=review.user,
            namespace_labelled=self.state.governed(new.namespace),
            operator_namespace=self.state.settings.namespace,
            namespace_audit=self.state.audit_only(new.namespace),
        )

    def _freezes(self, service: ServicePolicy | None) -> tuple[tuple[str, str], ...]:
        return self.state.incident_freezes(service.service) if service else ()

    def _changes(self, request: WorkloadRequest) -> list[ChangeFacts]:
        new = request.new
        return self.state.changes.get((new.namespace, new.kind, new.name))

    async def _service_for(self, request: WorkloadRequest) -> ServicePolicy | None:
        namespace = request.new.namespace
        service = next(iter(self.state.services.get(namespace)), None)
        if service is not None or not request.namespace_labelled:
            return service
        # Cache miss on a namespace marked governed: one live read, in case the cache lags.
        items = await asyncio.to_thread(self.state.kube.list_service_on_calls)
        groups = self.state.settings.change_manager_groups
        for item in items:
            soc = parse_or_skip(ServiceOnCall, item)
            if soc is not None:
                policy = ServicePolicy.from_model(soc, groups)
                if namespace in policy.production_namespaces:
                    return policy
        return None

    # -- recording ----------------------------------------------------------------

    def _record(
        self, body: Mapping[str, Any], request: WorkloadRequest, decision: Decision
    ) -> None:
        """An Event on the workload and an INFO line: a refusal is the product working."""
        workload, user = request.new, request.user.username
        log.info(
            "admission %s %s/%s/%s by %s: %s: %s",
            "allowed" if decision.allowed else "denied",
            workload.namespace,
            workload.kind,
            workload.name,
            user,
            decision.reason.value,
            decision.message,
        )
        metadata = body.get("metadata") or {}
        involved = {
            "apiVersion": body.get("apiVersion"),
            "kind": workload.kind,
            "namespace": workload.namespace,
            "name": workload.name,
            "uid": metadata.get("uid"),
        }
        reason = "RolloutRefused" if not decision.allowed else f"Rollout{decision.reason.value}"
        if decision.warnings:
            message = "\n".join(decision.warnings)
        else:
            message = decision.explain() if not decision.allowed else decision.message
        warn = not decision.allowed or decision.refusal is not None
        task = asyncio.create_task(
            asyncio.to_thread(
                self.state.kube.post_event,
                involved,
                reason=reason,
                message=f"{message} (user {user})",
                type_="Warning" if warn else "Normal",
            )
        )
        self.state.background.add(task)
        task.add_done_callback(self.state.background.discard)
