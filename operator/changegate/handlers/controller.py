"""The controller role: reconciles changegate's kinds and watches rollouts.

Only this role writes. It runs with Kopf peering, so one replica is active.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from changegate.handlers.login import register_login
from changegate.settings import Settings

registry = kopf.OperatorRegistry()
register_login(registry)
log = logging.getLogger(__name__)


@kopf.on.startup(registry=registry)
def announce_controller(memo: kopf.Memo, **_: Any) -> None:
    settings: Settings = memo.settings
    log.info("changegate controller starting (namespace %s)", settings.namespace)
