"""Kopf handlers: the only code that imports kopf.

Each role has its own registry so that the webhook process never runs the
controller's writers and the controller never serves admission.
"""

from __future__ import annotations

import kopf

from changegate.handlers import controller, webhook
from changegate.settings import Role, Settings


def registry_for(role: Role) -> kopf.OperatorRegistry:
    return controller.registry if role is Role.CONTROLLER else webhook.registry


def operator_settings(settings: Settings) -> kopf.OperatorSettings:
    """Kopf's own settings: our prefixes for annotations and finalizers."""
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
