"""What calls into the core: one package per role.

`handlers.controller` is Kopf's (watches, peering, writes); `handlers.webhook`
serves admission over its own aiohttp server and never imports Kopf. The
controller's Kopf settings live here, imported only by the controller role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from changegate.settings import Settings

if TYPE_CHECKING:
    import kopf


def controller_registry() -> kopf.OperatorRegistry:
    from changegate.handlers import controller

    registry: kopf.OperatorRegistry = controller.registry
    return registry


def operator_settings(settings: Settings) -> kopf.OperatorSettings:
    """Kopf's own settings: our prefixes for annotations and finalizers."""
    import kopf

    kopf_settings = kopf.OperatorSettings()
    kopf_settings.persistence.finalizer = "changegate.io/finalizer"
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="changegate.io"
    )
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="changegate.io", key="last-handled-configuration"
    )
    kopf_settings.posting.level = 20  # INFO and above become Kubernetes Events
    kopf_settings.watching.server_timeout = 300
    kopf_settings.networking.request_timeout = 30
    # Sync handlers run in threads; a burst of rollouts needs more than the default few.
    kopf_settings.execution.max_workers = 16
    return kopf_settings
