"""The generic webhook channel against a local receiver: real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from changegate.adapters.notify.delivery import RetryPolicy, Sender, new_client
from changegate.adapters.notify.webhook import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    WebhookNotifier,
    signature,
)
from changegate.api.v1alpha1.incident import PageChannel, PageResult
from changegate.core.ports import Page, PageOutcome, SecretValue
from tests.support.receivers import Receiver, receiving, valid_signature
from tests.unit.notify.builders import HOOK_TOKEN, SIGNING_KEY, T0, UID, Sleeps, clock, page

FAST = httpx.Timeout(0.3, connect=1.0)


def secret_for(receiver: Receiver, key: str = SIGNING_KEY) -> SecretValue:
    return SecretValue({"url": f"{receiver.url}/hooks/{HOOK_TOKEN}", "signingKey": key})


def send(
    built: Page, secret: SecretValue | None, sleeps: Sleeps | None = None, attempts: int = 4
) -> PageOutcome:
    async def run() -> PageOutcome:
        async with new_client(FAST) as client:
            sender = Sender(
                client, RetryPolicy(attempts=attempts), sleep=sleeps or Sleeps(), clock=clock
            )
            return await WebhookNotifier(sender).send(built, secret)

    return asyncio.run(run())


def test_a_page_is_posted_as_the_documented_json_signed_and_keyed() -> None:
    built = page(step=1, user="bob", on_call="alice")
    with receiving("webhook", SIGNING_KEY) as receiver:
        outcome = send(built, secret_for(receiver))
    assert outcome == PageOutcome(PageChannel.WEBHOOK, "bob", PageResult.SENT, 1, T0, None)
    [post] = receiver.posts
    assert post.path == f"/hooks/{HOOK_TOKEN}"
    assert post.header("Content-Type") == "application/json"
    assert post.header(IDEMPOTENCY_HEADER) == built.idempotency_key
    assert (post.header(SIGNATURE_HEADER) or "").startswith("sha256=")
    assert valid_signature(post, SIGNING_KEY)
    assert not valid_signature(post, "another key")
    assert post.json() == {
        "version": "1",
        "idempotencyKey": built.idempotency_key,
        "action": "trigger",
        "time": "2025-03-30T01:30:00Z",
        "incident": {
            "uid": UID,
            "name": "payments-5xx",
            "namespace": "payments-prod",
            "service": "payments",
            "severity": "Critical",
            "summary": "Error rate above 5% on payments-api",
            "major": False,
        },
        "user": "bob",
        "onCall": "alice",
        "escalationStep": 1,
        "dashboards": [{"name": "Golden signals", "url": "https://grafana.example.com/d/payments"}],
        "runbooks": [{"name": "Runbook", "url": "https://wiki.example.com/payments"}],
        "acknowledgeCommand": "kubectl changegate incident ack -n payments-prod payments-5xx",
        "text": post.json()["text"],
    }
    assert post.json()["text"].startswith("[Critical] payments: Error rate")


def test_the_signature_is_the_hmac_sha256_of_the_raw_body() -> None:
    # RFC 4231, test case 2.
    assert signature(b"what do ya want for nothing?", "Jefe") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_retries_after_5xx_send_the_same_body_key_and_signature() -> None:
    sleeps = Sleeps()
    with receiving("webhook", SIGNING_KEY) as receiver:
        receiver.fail(503, times=2)
        outcome = send(page(), secret_for(receiver), sleeps)
    assert (outcome.result, outcome.attempts) == (PageResult.SENT, 3)
    assert len(receiver.posts) == 3
    assert len({p.body for p in receiver.posts}) == 1
    assert len({p.header(IDEMPOTENCY_HEADER) for p in receiver.posts}) == 1
    assert all(valid_signature(p, SIGNING_KEY) for p in receiver.posts)
    assert len(sleeps.waits) == 2


def test_429_is_retried_after_the_wait_the_receiver_asked_for() -> None:
    sleeps = Sleeps()
    with receiving("webhook", SIGNING_KEY) as receiver:
        receiver.rate_limit(retry_after="3")
        outcome = send(page(), secret_for(receiver), sleeps)
    assert (outcome.result, outcome.attempts) == (PageResult.SENT, 2)
    assert sleeps.waits == [3.0]


def test_a_receiver_that_never_answers_times_out_and_is_retried_to_the_bound() -> None:
    with receiving("webhook", SIGNING_KEY) as receiver:
        receiver.hold(times=3)
        outcome = send(page(), secret_for(receiver), attempts=3)
    assert outcome.result is PageResult.FAILED
    assert outcome.attempts == 3
    assert outcome.error == "timed out (ReadTimeout)"
    assert len(receiver.posts) == 3


def test_a_wrong_signing_key_is_refused_at_once() -> None:
    with receiving("webhook", SIGNING_KEY) as receiver:
        outcome = send(page(), secret_for(receiver, key="not-the-key"))
    assert (outcome.result, outcome.attempts, outcome.error) == (
        PageResult.FAILED,
        1,
        "HTTP 401: bad signature",
    )


@pytest.mark.parametrize(
    "secret",
    [
        None,
        SecretValue({}),
        SecretValue({"url": "http://127.0.0.1:9/x"}),
        SecretValue({"signingKey": "k"}),
    ],
)
def test_without_url_or_key_nothing_is_sent_and_the_page_fails(secret: SecretValue | None) -> None:
    outcome = send(page(), secret)
    assert (outcome.result, outcome.attempts) == (PageResult.FAILED, 0)
    assert outcome.error == "no endpoint URL or signing key was read from the Secret"


def test_secrets_reach_neither_the_logs_nor_the_outcome(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with receiving("webhook", SIGNING_KEY) as receiver:
        receiver.fail(
            500, times=4, body=f"no route to /hooks/{HOOK_TOKEN} key {SIGNING_KEY}".encode()
        )
        secret = secret_for(receiver)
        outcome = send(page(), secret)
    assert outcome.result is PageResult.FAILED
    assert outcome.error is not None
    assert outcome.error.startswith("HTTP 500: no route to ")
    for value in (HOOK_TOKEN, SIGNING_KEY):
        assert value not in repr(outcome)
        assert value not in caplog.text
