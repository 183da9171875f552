"""Prometheus metrics of both roles, and the small HTTP server that exposes them.

The same server answers the readiness probe (`/readyz`, ready once the
indexes are warm) and the liveness probe (`/livez`).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

ADMISSION_DECISIONS = Counter(
    "changegate_admission_decisions_total",
    "Admission decisions on workloads and changegate's kinds, by decision and reason.",
    ["decision", "reason"],
)
ADMISSION_LATENCY = Histogram(
    "changegate_admission_duration_seconds",
    "Time spent deciding one admission request, in seconds.",
    ["kind"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
AUDIT_ONLY_ADMISSIONS = Counter(
    "changegate_audit_only_admissions_total",
    "Rollouts admitted in audit-only mode that enforcement would have refused, by namespace,"
    " workload kind and the reason of the refusal they escaped (NoApprovedChange, Freeze, ...).",
    ["namespace", "kind", "reason"],
)


async def serve_probes_and_metrics(
    address: str, port: int, ready: Callable[[], bool]
) -> web.AppRunner:
    """Start the probes-and-metrics server; the caller keeps the runner to stop it."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ok")
        return web.Response(status=503, text="indexes are warming up")

    async def livez(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/livez", livez)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner


CHANGE_TRANSITIONS = Counter(
    "changegate_change_transitions_total",
    "ChangeRequests entering each phase.",
    ["phase"],
)
ROLLOUTS = Counter(
    "changegate_rollouts_total",
    "Finished rollouts in governed namespaces, by service and result (DeploymentRecords written).",
    ["service", "result"],
)
LEAD_TIME = Histogram(
    "changegate_lead_time_seconds",
    "Change lead time in production: from commit to rollout finished, in seconds.",
    ["service"],
    buckets=(300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400),
)
INTAKE_REQUESTS = Counter(
    "changegate_intake_requests_total",
    "Alertmanager posts to the intake, by result (accepted, unauthorized, too_large, invalid,"
    " unavailable).",
    ["result"],
)
PAGERDUTY_WEBHOOKS = Counter(
    "changegate_pagerduty_webhooks_total",
    "PagerDuty webhook deliveries to the intake's /pagerduty, by result (applied, ignored,"
    " unsigned, invalid, stale, unavailable).",
    ["result"],
)
INCIDENTS_OPENED = Counter(
    "changegate_incidents_opened_total",
    "Incidents the controller started to escalate, by service and severity.",
    ["service", "severity"],
)
OPEN_INCIDENTS = Gauge(
    "changegate_open_incidents",
    "Incidents not resolved, by service.",
    ["service"],
)
_RESPONSE_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400)
TIME_TO_ACKNOWLEDGE = Histogram(
    "changegate_incident_time_to_acknowledge_seconds",
    "From an incident opening to its first acknowledgement, in seconds.",
    ["service"],
    buckets=_RESPONSE_BUCKETS,
)
TIME_TO_RESOLVE = Histogram(
    "changegate_incident_time_to_resolve_seconds",
    "From an incident's alert starting to its resolution, in seconds.",
    ["service"],
    buckets=_RESPONSE_BUCKETS,
)
PAGES = Counter(
    "changegate_pages_total",
    "Pages sent for incidents, by channel (Kubernetes, Webhook, Slack) and result (Sent, Failed, Skipped).",
    ["channel", "result"],
)
SYNC_CALLS = Counter(
    "changegate_sync_calls_total",
    "Calls to external systems from the outbox, by system (PagerDuty, ServiceNow) and result"
    " (Delivered, Retry, Refused).",
    ["system", "result"],
)
ALERT_TO_FIRST_PAGE = Histogram(
    "changegate_alert_to_first_page_seconds",
    "From an incident's alert starting (or the incident opening) to its first page, in seconds.",
    ["service"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)
SERVICE_ON_CALL = Gauge(
    "changegate_service_on_call",
    "Whether anyone is on call for the service now: 1, or 0 when nobody is (its OnCall condition"
    " is False; an alert would page nobody).",
    ["service"],
)
# DORA figures of each service over the last 30 days, as its ServiceOnCall's status.dora
# shows them (handlers/controller/dora.py); a figure without deployments is absent.
DORA_DEPLOYMENTS = Gauge(
    "changegate_dora_deployments",
    "Production deployments of the service in the last 30 days, succeeded or failed.",
    ["service"],
)
DORA_DEPLOYMENTS_PER_WEEK = Gauge(
    "changegate_dora_deployments_per_week",
    "Successful production deployments of the service per week, over the last 30 days.",
    ["service"],
)
DORA_FAILED_DEPLOYMENTS = Gauge(
    "changegate_dora_failed_deployments",
    "Production deployments of the last 30 days that needed intervention.",
    ["service"],
)
DORA_CHANGE_FAIL_RATE = Gauge(
    "changegate_dora_change_fail_rate",
    "Change fail rate over the last 30 days: failed deployments / deployments (0 to 1).",
    ["service"],
)
DORA_LEAD_TIME = Gauge(
    "changegate_dora_lead_time_seconds",
    "Change lead time over the last 30 days (commit to production), by quantile (0.5, 0.9).",
    ["service", "quantile"],
)
DORA_RECOVERY_TIME = Gauge(
    "changegate_dora_recovery_time_seconds",
    "Failed deployment recovery time over the last 30 days, by quantile (0.5, 0.9).",
    ["service", "quantile"],
)
DORA_REWORK_RATE = Gauge(
    "changegate_dora_rework_rate",
    "Deployment rework rate over the last 30 days: unplanned deployments after an incident"
    " / deployments (0 to 1).",
    ["service"],
)
