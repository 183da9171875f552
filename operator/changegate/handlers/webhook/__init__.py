"""The webhook role: admission for workloads and changegate's kinds, without Kopf.

It only reads. WatchCaches of ChangeRequests, ServiceOnCalls and namespaces
(state.py, caches.py) feed the pure core; an aiohttp HTTPS server (server.py)
decodes each AdmissionReview and hands it to workloads.py, changes.py or
incidents.py. Ready
once the caches are warm. Several replicas run at once, each standalone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from changegate.adapters.kube import KubeAdapter, api_client
from changegate.adapters.tls import ServingCertificate
from changegate.handlers.webhook.changes import ChangeAdmission
from changegate.handlers.webhook.incidents import IncidentAdmission
from changegate.handlers.webhook.pods import PodAccessAdmission
from changegate.handlers.webhook.server import Route, serve_admission
from changegate.handlers.webhook.stamps import PreproductionStamps
from changegate.handlers.webhook.state import WebhookState
from changegate.handlers.webhook.workloads import WorkloadAdmission
from changegate.metrics import serve_probes_and_metrics
from changegate.settings import Settings

log = logging.getLogger(__name__)


def routes(state: WebhookState) -> list[Route]:
    """Every path of the chart's webhook configurations, with its handler."""
    return (
        WorkloadAdmission(state).routes()
        + PodAccessAdmission(state).routes()
        + PreproductionStamps(state).routes()
        + ChangeAdmission(state).routes()
        + IncidentAdmission(state).routes()
    )


def serving_certificate(settings: Settings) -> ServingCertificate:
    if not (settings.webhook_cert_file and settings.webhook_key_file):
        raise SystemExit(
            "the webhook needs a serving certificate: set CHANGEGATE_WEBHOOK_CERT_FILE and"
            " CHANGEGATE_WEBHOOK_KEY_FILE"
        )
    return ServingCertificate(settings.webhook_cert_file, settings.webhook_key_file)


async def serve(settings: Settings) -> None:
    """Run the webhook role until SIGTERM or SIGINT."""
    certificate = serving_certificate(settings)
    kube = KubeAdapter(await asyncio.to_thread(api_client), instance=settings.instance)
    state = WebhookState.create(settings, kube)
    state.start()
    probes = await serve_probes_and_metrics(
        settings.health_address, settings.metrics_port, state.warm
    )
    admission = await serve_admission(
        routes(state), settings.webhook_address, settings.webhook_port, certificate
    )
    reload = asyncio.create_task(certificate.watch())
    log.info(
        "changegate webhook serving admission on %s:%s",
        settings.webhook_address,
        settings.webhook_port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("changegate webhook stopping")
    finally:
        reload.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reload
        # In-flight reviews are answered before the server closes (shutdown_timeout).
        await admission.cleanup()
        await probes.cleanup()
        state.stop()


def run(settings: Settings) -> None:
    asyncio.run(serve(settings))
