"""What the webhook keeps in memory: ChangeRequests, ServiceOnCalls, namespaces, and
the open major Incidents that freeze changes.

Each kind is listed then watched by an adapters.cache.WatchCache; the index
functions below turn each object into compact facts, parsed once, under the
keys the admission handlers look up.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from changegate.adapters.cache import WatchCache
from changegate.adapters.kube import GROUP, VERSION, KubeAdapter
from changegate.api.v1alpha1.changerequest import ChangeRequest
from changegate.api.v1alpha1.incident import Incident, IncidentPhase
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.compaction import compact
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.namespaces import audit_only
from changegate.settings import Settings

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


def parse_or_skip(model: type[M], body: dict[str, Any]) -> M | None:
    """The object as a model, or None (logged) when it does not parse."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        log.warning("skipping %s that does not parse: %s", model.__name__, error.errors()[:3])
        return None


def index_changes(body: dict[str, Any]) -> dict[Hashable, ChangeFacts]:
    """By (namespace, kind, name) of each target; only what can still admit a rollout or be
    rolled back to (core/change/compaction.py), so finished changes cost next to nothing."""
    change = parse_or_skip(ChangeRequest, body)
    if change is None:
        return {}
    facts = compact(ChangeFacts.from_model(change), datetime.datetime.now(datetime.UTC))
    if facts is None:
        return {}
    return {(facts.namespace, t.kind, t.name): facts for t in facts.targets}


def index_services(settings: Settings) -> Callable[[dict[str, Any]], dict[Hashable, ServicePolicy]]:
    """By production namespace, by ("service", name) and by ("environment", namespace)."""

    def index(body: dict[str, Any]) -> dict[Hashable, ServicePolicy]:
        soc = parse_or_skip(ServiceOnCall, body)
        if soc is None:
            return {}
        policy = ServicePolicy.from_model(soc, settings.change_manager_groups)
        keys: dict[Hashable, ServicePolicy] = {ns: policy for ns in policy.production_namespaces}
        keys[("service", policy.service)] = policy
        # Every namespace it claims, so that no other ServiceOnCall takes it as production.
        keys.update({("environment", e.namespace): policy for e in soc.spec.environments})
        return keys

    return index


def index_namespaces(settings: Settings) -> Callable[[dict[str, Any]], dict[Hashable, str]]:
    """("governed", name) for labelled namespaces, ("audit", name) for those of them in
    audit-only mode, ("terminating", name) for those going away."""

    def index(body: dict[str, Any]) -> dict[Hashable, str]:
        metadata = body.get("metadata") or {}
        name = metadata.get("name", "")
        keys: dict[Hashable, str] = {}
        labels = metadata.get("labels") or {}
        if labels.get(settings.governed_label) == "true":
            keys[("governed", name)] = name
        if audit_only(labels, metadata.get("annotations") or {}, settings.governed_label):
            keys[("audit", name)] = name
        if (
            metadata.get("deletionTimestamp")
            or (body.get("status") or {}).get("phase") == "Terminating"
        ):
            keys[("terminating", name)] = name
        return keys

    return index


def index_freezes(body: dict[str, Any]) -> dict[Hashable, str]:
    """("freeze", service) -> "namespace/name" for each service an open major Incident freezes."""
    incident = parse_or_skip(Incident, body)
    if incident is None:
        return {}
    spec = incident.spec
    resolved = spec.resolution is not None or incident.status.phase is IncidentPhase.RESOLVED
    if not (spec.major and spec.freeze_changes) or resolved:
        return {}
    name = f"{incident.metadata.namespace}/{incident.metadata.name}"
    return {("freeze", service): name for service in (spec.service, *spec.affected_services)}


def freeze_cache(kube: KubeAdapter) -> WatchCache[str]:
    lister = kube.custom.list_cluster_custom_object
    return WatchCache("incidents", lister, (GROUP, VERSION, "incidents"), index_freezes)


def change_cache(kube: KubeAdapter) -> WatchCache[ChangeFacts]:
    lister = kube.custom.list_cluster_custom_object
    return WatchCache("changerequests", lister, (GROUP, VERSION, "changerequests"), index_changes)


def service_cache(kube: KubeAdapter, settings: Settings) -> WatchCache[ServicePolicy]:
    lister = kube.custom.list_cluster_custom_object
    return WatchCache(
        "serviceoncalls", lister, (GROUP, VERSION, "serviceoncalls"), index_services(settings)
    )


def namespace_cache(kube: KubeAdapter, settings: Settings) -> WatchCache[str]:
    return WatchCache("namespaces", kube.core.list_namespace, (), index_namespaces(settings))
