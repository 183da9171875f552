"""Which service an alert belongs to, and why: the intake's first decision.

An alert goes to the service its service label names, else to the service whose
production namespace is its `namespace` label, else to the fallback service;
it is never dropped, and the reason travels to the incident's timeline.
`split_post` cuts one Alertmanager notification into one delivery per service.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from changegate.api.v1alpha1.serviceoncall import Link, ServiceOnCall
from changegate.core.incident.alerts import WebhookAlert, WebhookPayload


class RouteRule(StrEnum):
    """Which rule placed the alert."""

    LABEL = "Label"
    NAMESPACE = "Namespace"
    FALLBACK = "Fallback"


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """What routing and links need of one service (a ServiceOnCall)."""

    name: str
    production_namespaces: frozenset[str] = frozenset()
    dashboards: tuple[Link, ...] = ()
    runbooks: tuple[Link, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceDirectory:
    """The known services; looked up by name and by production namespace."""

    services: tuple[ServiceEntry, ...] = ()

    def named(self, name: str) -> ServiceEntry | None:
        return next((s for s in self.services if s.name == name), None)

    def owners_of(self, namespace: str) -> tuple[ServiceEntry, ...]:
        """Services whose production namespaces include `namespace`, by name."""
        owners = (s for s in self.services if namespace in s.production_namespaces)
        return tuple(sorted(owners, key=lambda s: s.name))


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """Read once at start-up: the label naming the service, and where the rest goes."""

    fallback_service: str
    service_label: str = "service"


@dataclass(frozen=True, slots=True)
class Route:
    """Where an alert goes and why, in words for the timeline."""

    service: str
    rule: RouteRule
    reason: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """The alerts of one notification that belong to one service."""

    service: str
    group_key: str
    alerts: tuple[WebhookAlert, ...]
    routes: tuple[Route, ...]  # one per alert, in the same order
    truncated_alerts: int = 0


def directory_of(services: Iterable[ServiceOnCall]) -> ServiceDirectory:
    """The directory of some ServiceOnCalls (the handler's convenience; the core needs only this)."""
    entries = (
        ServiceEntry(
            name=s.spec.service.name,
            production_namespaces=frozenset(s.spec.production_namespaces()),
            dashboards=tuple(s.spec.dashboards),
            runbooks=tuple(s.spec.runbooks),
        )
        for s in services
    )
    return ServiceDirectory(tuple(entries))


def _by_label(labels: dict[str, str], directory: ServiceDirectory, label: str) -> Route | None:
    name = labels.get(label, "")
    if name and directory.named(name):
        return Route(name, RouteRule.LABEL, f"label {label}={name} names the service")
    return None


def _by_namespace(labels: dict[str, str], directory: ServiceDirectory) -> Route | None:
    namespace = labels.get("namespace", "")
    owners = directory.owners_of(namespace) if namespace else ()
    if not owners:
        return None
    reason = f"namespace {namespace} is a production namespace of {owners[0].name}"
    if len(owners) > 1:
        reason += f" (also of {', '.join(o.name for o in owners[1:])}; first by name)"
    return Route(owners[0].name, RouteRule.NAMESPACE, reason)


def _why_not(labels: dict[str, str], label: str) -> str:
    """Why neither the label nor the namespace placed the alert."""
    name, namespace = labels.get(label, ""), labels.get("namespace", "")
    by_label = f"label {label}={name} names no known service" if name else f"no {label} label"
    by_ns = (
        f"namespace {namespace} is no service's production namespace"
        if namespace
        else "no namespace label"
    )
    return f"{by_label}, {by_ns}"


def route(labels: dict[str, str], directory: ServiceDirectory, config: RoutingConfig) -> Route:
    """The service an alert with these labels belongs to; always one, with the reason."""
    found = _by_label(labels, directory, config.service_label) or _by_namespace(labels, directory)
    if found is not None:
        return found
    why = _why_not(labels, config.service_label)
    return Route(config.fallback_service, RouteRule.FALLBACK, f"{why}: fallback service")


def split_post(
    payload: WebhookPayload, directory: ServiceDirectory, config: RoutingConfig
) -> tuple[Delivery, ...]:
    """One delivery per service the notification's alerts belong to, by service name."""
    by_service: dict[str, list[tuple[WebhookAlert, Route]]] = {}
    for alert in payload.alerts:
        placed = route(alert.labels, directory, config)
        by_service.setdefault(placed.service, []).append((alert, placed))
    return tuple(
        Delivery(
            service=service,
            group_key=payload.group_key,
            alerts=tuple(a for a, _ in pairs),
            routes=tuple(r for _, r in pairs),
            truncated_alerts=payload.truncated_alerts,
        )
        for service, pairs in sorted(by_service.items())
    )
