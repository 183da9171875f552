"""The second reference of the admission benchmark: an allow-all webhook on Kopf.

Kopf standalone with changegate's login, its WebhookServer with the same TLS
certificate, one async `@kopf.on.validate` handler at the same path that allows
everything: what admission cost while the webhook ran on Kopf's machinery,
before any decision was made. The floor proper is bench/floor.py.

    python -m bench.floor_kopf   # CHANGEGATE_WEBHOOK_{PORT,CERT_FILE,KEY_FILE}, KUBECONFIG
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from changegate.handlers.login import register_login

registry = kopf.OperatorRegistry()
register_login(registry)


@kopf.on.startup(registry=registry)
async def serve_admission(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.admission.server = kopf.WebhookServer(
        addr="127.0.0.1",
        port=int(os.environ["CHANGEGATE_WEBHOOK_PORT"]),
        certfile=os.environ["CHANGEGATE_WEBHOOK_CERT_FILE"],
        pkeyfile=os.environ["CHANGEGATE_WEBHOOK_KEY_FILE"],
    )
    settings.admission.managed = None


@kopf.on.validate(
    "apps",
    "v1",
    "deployments",
    id="validate-deployments",
    registry=registry,
    operations=["CREATE", "UPDATE"],
)
async def allow_everything(**_: Any) -> None:
    """Allow every request: the least a Kopf admission handler can do."""


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s [%(name)s] %(message)s"
    )
    kopf.run(registry=registry, clusterwide=True, standalone=True)


if __name__ == "__main__":
    main()
