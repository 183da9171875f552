"""The controller role's Kopf registry: every controller module registers its handlers here.

Its own registry, so the webhook process never runs the controller's writers.
"""

from __future__ import annotations

import kopf

from changegate.handlers.login import register_login

registry = kopf.OperatorRegistry()
register_login(registry)
