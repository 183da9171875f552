"""What the webhook role's handlers share within one process.

Built once at start-up from Settings: the authorities the chart names, the
Kubernetes adapter (Events, one live read on a cache miss) and the caches.
Ready to admit once every cache has listed its kind in full.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from changegate.adapters.cache import WatchCache
from changegate.adapters.kube import KubeAdapter
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.governance import Authorities
from changegate.handlers.webhook.caches import (
    change_cache,
    freeze_cache,
    namespace_cache,
    service_cache,
)
from changegate.settings import Settings

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def authorities_of(settings: Settings) -> Authorities:
    return Authorities(
        change_manager_groups=frozenset(settings.change_manager_groups),
        platform_admin_groups=frozenset(settings.platform_admin_groups),
        operator_users=frozenset(settings.operator_users),
    )


@dataclass
class WebhookState:
    settings: Settings
    kube: KubeAdapter
    changes: WatchCache[ChangeFacts]
    services: WatchCache[ServicePolicy]
    namespaces: WatchCache[str]
    # Open major Incidents with spec.freezeChanges, by ("freeze", service).
    freezes: WatchCache[str]
    authorities: Authorities = field(init=False)
    # Events in flight: kept referenced until posted, so none is garbage-collected half-way.
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.authorities = authorities_of(self.settings)

    @classmethod
    def create(cls, settings: Settings, kube: KubeAdapter) -> WebhookState:
        """The state with its caches built, not yet started."""
        return cls(
            settings=settings,
            kube=kube,
            changes=change_cache(kube),
            services=service_cache(kube, settings),
            namespaces=namespace_cache(kube, settings),
            freezes=freeze_cache(kube),
        )

    def caches(
        self,
    ) -> tuple[
        WatchCache[ChangeFacts], WatchCache[ServicePolicy], WatchCache[str], WatchCache[str]
    ]:
        return self.changes, self.services, self.namespaces, self.freezes

    def start(self) -> None:
        for cache in self.caches():
            cache.start()

    def stop(self) -> None:
        for cache in self.caches():
            cache.stop()

    def warm(self) -> bool:
        """Ready to admit: every cache has listed its kind in full."""
        return all(cache.warm.is_set() for cache in self.caches())

    def service_named(self, name: str) -> ServicePolicy | None:
        return next(iter(self.services.get(("service", name))), None)

    def incident_freezes(self, service: str) -> tuple[tuple[str, str], ...]:
        """(service, incident) for each open major Incident that freezes the service."""
        return tuple((service, incident) for incident in self.freezes.get(("freeze", service)))

    def terminating(self, namespace: str) -> bool:
        return ("terminating", namespace) in self.namespaces

    def governed(self, namespace: str) -> bool:
        return ("governed", namespace) in self.namespaces

    def audit_only(self, namespace: str) -> bool:
        """Governed in audit-only mode by its namespace's changegate.io/enforcement: Audit."""
        return ("audit", namespace) in self.namespaces
