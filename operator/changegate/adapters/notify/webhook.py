"""The generic webhook channel: each page POSTed as signed JSON to an endpoint of yours.

The ServiceOnCall names two Secret keys (`integrations.webhook`): `secretRef`
holds the endpoint URL, `signingSecretRef` the signing key. Each request:

    POST <url>
    Content-Type: application/json
    Idempotency-Key: <the page's key; the same on every retry of the page>
    X-Changegate-Signature: sha256=<hex HMAC-SHA256 of the raw body with the signing key>

    {
      "version": "1",
      "idempotencyKey": "changegate-3f2a...",   // also in the header; drop repeats on it
      "action": "trigger",                      // trigger | acknowledge | resolve
      "time": "2025-03-30T00:00:00Z",           // when the page was decided
      "incident": {"uid": "...", "name": "payments-5xx", "namespace": "payments-prod",
                   "service": "payments", "severity": "Critical", "summary": "...",
                   "major": false},
      "user": "alice",                          // who is paged; null for the service's channel
      "onCall": "alice",                        // who is on call; null when nobody is
      "escalationStep": 0,                      // from 0, counted across repeats
      "dashboards": [{"name": "...", "url": "https://..."}],
      "runbooks": [{"name": "...", "url": "https://..."}],
      "acknowledgeCommand": "kubectl changegate incident ack -n payments-prod payments-5xx",
      "text": "[Critical] payments: ..."        // the page in one line
    }

Verify the signature over the bytes as received, before parsing. Any 2xx is
success; 429 and 5xx are retried with backoff; other answers fail the page.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import httpx

from changegate.adapters.notify.delivery import Sender
from changegate.api.v1alpha1.common import SecretKeyRef
from changegate.api.v1alpha1.incident import PageChannel, PageResult
from changegate.api.v1alpha1.serviceoncall import WebhookIntegration
from changegate.core.common import timestamp
from changegate.core.incident.notification import page_text
from changegate.core.ports import Page, PageLink, PageOutcome, SecretValue

SIGNATURE_HEADER = "X-Changegate-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
URL = "url"
SIGNING_KEY = "signingKey"
BODY_VERSION = "1"


def secret_refs(integration: WebhookIntegration) -> dict[str, SecretKeyRef]:
    """The Secret keys this channel reads, by the names `send` looks them up under."""
    return {URL: integration.secret_ref, SIGNING_KEY: integration.signing_secret_ref}


def signature(body: bytes, key: str) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def _links(links: tuple[PageLink, ...]) -> list[dict[str, str]]:
    return [{"name": link.name, "url": link.url} for link in links]


def document(page: Page) -> dict[str, Any]:
    """The JSON document of a page, as the module docstring describes it."""
    return {
        "version": BODY_VERSION,
        "idempotencyKey": page.idempotency_key,
        "action": page.action.value,
        "time": timestamp(page.time),
        "incident": {
            "uid": page.incident_uid,
            "name": page.incident_name,
            "namespace": page.namespace,
            "service": page.service,
            "severity": page.severity.value,
            "summary": page.summary,
            "major": page.major,
        },
        "user": page.user,
        "onCall": page.on_call,
        "escalationStep": page.escalation_step,
        "dashboards": _links(page.dashboards),
        "runbooks": _links(page.runbooks),
        "acknowledgeCommand": page.acknowledge_command,
        "text": page_text(page),
    }


def encode(page: Page) -> bytes:
    """The body's bytes, made once so every retry sends (and signs) the same."""
    return json.dumps(document(page), separators=(",", ":"), sort_keys=True).encode()


def is_success(response: httpx.Response) -> bool:
    return response.is_success


class WebhookNotifier:
    """Pages through the generic webhook; never raises into the caller."""

    channel = PageChannel.WEBHOOK

    def __init__(self, sender: Sender, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.sender = sender
        self.clock = clock or sender.clock

    async def send(self, page: Page, secret: SecretValue | None) -> PageOutcome:
        if secret is None or not (url := secret.get(URL)) or not (key := secret.get(SIGNING_KEY)):
            missing = "no endpoint URL or signing key was read from the Secret"
            return self._outcome(page, PageResult.FAILED, 0, missing)
        body = encode(page)
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: page.idempotency_key,
            SIGNATURE_HEADER: signature(body, key),
        }
        done = await self.sender.post(url, body, headers, is_success, secret.values())
        result = PageResult.SENT if done.accepted else PageResult.FAILED
        return self._outcome(page, result, done.attempts, done.error)

    def _outcome(
        self, page: Page, result: PageResult, attempts: int, error: str | None
    ) -> PageOutcome:
        return PageOutcome(self.channel, page.user, result, attempts, self.clock(), error)
