"""The floor of the admission benchmark: an allow-all server on the webhook's own stack.

The same aiohttp application, TLS context, AdmissionReview decoding and
encoding as `python -m changegate webhook` (changegate.handlers.webhook.server),
with one route at the benchmark's path whose handler allows everything. What
the webhook costs above this is the cost of its decisions and caches.

    python -m bench.floor   # CHANGEGATE_WEBHOOK_{PORT,CERT_FILE,KEY_FILE}
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from changegate.handlers.webhook.server import (
    ALLOW,
    Answer,
    Review,
    Route,
    ServingCertificate,
    serve_admission,
)


async def allow_everything(_: Review) -> Answer:
    """Allow every request: the least an admission handler on this stack can do."""
    return ALLOW


async def serve() -> None:
    certificate = ServingCertificate(
        Path(os.environ["CHANGEGATE_WEBHOOK_CERT_FILE"]),
        Path(os.environ["CHANGEGATE_WEBHOOK_KEY_FILE"]),
    )
    route = Route(
        "/validate-deployments",
        "validating",
        frozenset({("apps", "Deployment")}),
        allow_everything,
        frozenset({"CREATE", "UPDATE"}),
    )
    runner = await serve_admission(
        [route], "127.0.0.1", int(os.environ["CHANGEGATE_WEBHOOK_PORT"]), certificate
    )
    try:
        await asyncio.Event().wait()  # until the benchmark terminates the process
    finally:
        await runner.cleanup()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s [%(name)s] %(message)s"
    )
    asyncio.run(serve())


if __name__ == "__main__":
    main()
