"""Operator configuration, read once at start-up and passed down.

Every knob comes from the command line or the environment (the chart sets the
latter); nothing below reads the environment at import time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Role(StrEnum):
    """The two processes, run from one image; ARCHITECTURE.md says what each reads and writes."""

    CONTROLLER = "controller"
    WEBHOOK = "webhook"


@dataclass(frozen=True)
class Settings:
    role: Role
    # The namespace the operator is installed in; never governed.
    namespace: str = "changegate-system"
    # Address and port of the health (liveness/readiness) and metrics endpoints.
    health_address: str = "127.0.0.1"
    health_port: int = 8080
    metrics_port: int = 9090
    # Admission server (webhook role).
    webhook_address: str = "0.0.0.0"
    webhook_port: int = 9443
    webhook_cert_file: Path | None = None
    webhook_key_file: Path | None = None
    # Groups whose members may change governance (chart value).
    change_manager_groups: tuple[str, ...] = ("change-managers",)
    platform_admin_groups: tuple[str, ...] = ("platform-admins", "system:masters")
    # Identities of the controller: the only writers of DeploymentRecords.
    operator_users: tuple[str, ...] = (
        "system:serviceaccount:changegate-system:changegate-controller",
    )
    # This replica's name, reported on the Events it posts.
    instance: str = "changegate"
    # Days a DeploymentRecord is kept before the controller deletes it; 0 keeps them forever.
    retention_days: int = 400
    # Label that marks a namespace governed (narrows the webhook configuration).
    governed_label: str = "changegate.io/governed"
    # The service (spec.service.name) of the organisation's incident-management ServiceOnCall:
    # its schedule says who the incident manager on call is. Empty: each service's own
    # onCall.incidentManager, if any.
    incident_management_service: str = ""
    # Groups of incident managers: they may act on any Incident, and only they freeze changes.
    incident_manager_groups: tuple[str, ...] = ("incident-managers",)
    # Alertmanager intake (controller role): an HTTPS receiver of webhook_config posts.
    intake_enabled: bool = False
    intake_address: str = "0.0.0.0"
    intake_port: int = 9444
    intake_cert_file: Path | None = None
    intake_key_file: Path | None = None
    # The Secret (in `namespace`) and key holding the bearer token Alertmanager sends.
    intake_token_secret: str = "changegate-intake-token"
    intake_token_key: str = "token"
    # The alert label naming the service, and the service that takes unplaced alerts.
    intake_service_label: str = "service"
    intake_fallback_service: str = "unrouted-alerts"
    intake_max_body_bytes: int = 32 * 1024 * 1024
    # PagerDuty webhooks (v3) on the intake's server (POST /pagerduty): the Secret in
    # `namespace` and its keys, each the signing secret of one webhook subscription.
    pagerduty_webhook_secret: str = "changegate-pagerduty-webhook"
    pagerduty_webhook_secret_keys: tuple[str, ...] = ("secret",)
    # The ServiceNow instance's callback (POST /servicenow): the Secret in `namespace` and
    # its keys, each a shared key its business rule signs with (X-Changegate-Signature).
    servicenow_callback_secret: str = "changegate-servicenow-callback"
    servicenow_callback_secret_keys: tuple[str, ...] = ("secret",)
    # Seconds between reads of ServiceNow tickets for changes made there (state, assignee,
    # work notes, approvals); tests set it short.
    servicenow_poll_seconds: float = 60.0
    # PagerDuty Events API v2 (outbound): its base address (tests point it at a local
    # contract server), and how long an endpoint that keeps failing is skipped (its circuit).
    pagerduty_events_url: str = "https://events.pagerduty.com"
    sync_circuit_seconds: float = 30.0

    @classmethod
    def from_env(cls, role: Role, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def groups(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
            raw = env.get(name)
            return tuple(g.strip() for g in raw.split(",") if g.strip()) if raw else default

        def path(name: str) -> Path | None:
            raw = env.get(name)
            return Path(raw) if raw else None

        return cls(
            role=role,
            namespace=env.get("CHANGEGATE_NAMESPACE", cls.namespace),
            health_address=env.get("CHANGEGATE_HEALTH_ADDRESS", cls.health_address),
            health_port=int(env.get("CHANGEGATE_HEALTH_PORT", cls.health_port)),
            metrics_port=int(env.get("CHANGEGATE_METRICS_PORT", cls.metrics_port)),
            webhook_address=env.get("CHANGEGATE_WEBHOOK_ADDRESS", cls.webhook_address),
            webhook_port=int(env.get("CHANGEGATE_WEBHOOK_PORT", cls.webhook_port)),
            webhook_cert_file=path("CHANGEGATE_WEBHOOK_CERT_FILE"),
            webhook_key_file=path("CHANGEGATE_WEBHOOK_KEY_FILE"),
            change_manager_groups=groups(
                "CHANGEGATE_CHANGE_MANAGER_GROUPS", cls.change_manager_groups
            ),
            platform_admin_groups=groups(
                "CHANGEGATE_PLATFORM_ADMIN_GROUPS", cls.platform_admin_groups
            ),
            operator_users=groups("CHANGEGATE_OPERATOR_USERS", cls.operator_users),
            instance=env.get("HOSTNAME", cls.instance),
            retention_days=int(env.get("CHANGEGATE_RETENTION_DAYS", cls.retention_days)),
            governed_label=env.get("CHANGEGATE_GOVERNED_LABEL", cls.governed_label),
            incident_management_service=env.get(
                "CHANGEGATE_INCIDENT_MANAGEMENT_SERVICE", cls.incident_management_service
            ),
            incident_manager_groups=groups(
                "CHANGEGATE_INCIDENT_MANAGER_GROUPS", cls.incident_manager_groups
            ),
            intake_enabled=env.get("CHANGEGATE_INTAKE_ENABLED", "").lower() in ("1", "true"),
            intake_address=env.get("CHANGEGATE_INTAKE_ADDRESS", cls.intake_address),
            intake_port=int(env.get("CHANGEGATE_INTAKE_PORT", cls.intake_port)),
            intake_cert_file=path("CHANGEGATE_INTAKE_CERT_FILE"),
            intake_key_file=path("CHANGEGATE_INTAKE_KEY_FILE"),
            intake_token_secret=env.get("CHANGEGATE_INTAKE_TOKEN_SECRET", cls.intake_token_secret),
            intake_token_key=env.get("CHANGEGATE_INTAKE_TOKEN_KEY", cls.intake_token_key),
            intake_service_label=env.get(
                "CHANGEGATE_INTAKE_SERVICE_LABEL", cls.intake_service_label
            ),
            intake_fallback_service=env.get(
                "CHANGEGATE_INTAKE_FALLBACK_SERVICE", cls.intake_fallback_service
            ),
            intake_max_body_bytes=int(
                env.get("CHANGEGATE_INTAKE_MAX_BODY_BYTES", cls.intake_max_body_bytes)
            ),
            pagerduty_webhook_secret=env.get(
                "CHANGEGATE_PAGERDUTY_WEBHOOK_SECRET", cls.pagerduty_webhook_secret
            ),
            pagerduty_webhook_secret_keys=groups(
                "CHANGEGATE_PAGERDUTY_WEBHOOK_SECRET_KEYS", cls.pagerduty_webhook_secret_keys
            ),
            servicenow_callback_secret=env.get(
                "CHANGEGATE_SERVICENOW_CALLBACK_SECRET", cls.servicenow_callback_secret
            ),
            servicenow_callback_secret_keys=groups(
                "CHANGEGATE_SERVICENOW_CALLBACK_SECRET_KEYS", cls.servicenow_callback_secret_keys
            ),
            servicenow_poll_seconds=float(
                env.get("CHANGEGATE_SERVICENOW_POLL_SECONDS", cls.servicenow_poll_seconds)
            ),
            pagerduty_events_url=env.get(
                "CHANGEGATE_PAGERDUTY_EVENTS_URL", cls.pagerduty_events_url
            ).rstrip("/"),
            sync_circuit_seconds=float(
                env.get("CHANGEGATE_SYNC_CIRCUIT_SECONDS", cls.sync_circuit_seconds)
            ),
        )
