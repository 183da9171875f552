"""The webhook role: admission for workloads and changegate's kinds.

It only reads: in-memory indexes feed the pure decision core. It runs
standalone, so several replicas can serve at once.
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
def announce_webhook(memo: kopf.Memo, **_: Any) -> None:
    settings: Settings = memo.settings
    log.info("changegate webhook starting (port %s)", settings.webhook_port)
