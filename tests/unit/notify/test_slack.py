"""The Slack channel against a local receiver that answers as an incoming webhook does."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest

from changegate.adapters.notify.delivery import RetryPolicy, Sender, new_client
from changegate.adapters.notify.slack import SlackNotifier, escape, message
from changegate.api.v1alpha1.incident import PageChannel, PageResult
from changegate.core.ports import Page, PageAction, PageOutcome, SecretValue
from tests.support.receivers import Receiver, receiving
from tests.unit.notify.builders import HOOK_TOKEN, T0, Sleeps, clock, page

FAST = httpx.Timeout(0.3, connect=1.0)


def secret_for(receiver: Receiver) -> SecretValue:
    return SecretValue({"url": f"{receiver.url}/services/{HOOK_TOKEN}"})


def send(
    built: Page, secret: SecretValue | None, sleeps: Sleeps | None = None, attempts: int = 4
) -> PageOutcome:
    async def run() -> PageOutcome:
        async with new_client(FAST) as client:
            policy = RetryPolicy(attempts=attempts)
            sender = Sender(client, policy, sleep=sleeps or Sleeps(), clock=clock)
            return await SlackNotifier(sender).send(built, secret)

    return asyncio.run(run())


def texts(blocks: list[dict[str, Any]]) -> str:
    """Every text of the blocks, joined: what a reader of the message sees."""
    return json.dumps(blocks)


def test_a_page_is_posted_with_text_and_blocks_and_slack_answers_ok() -> None:
    built = page(step=1, user="bob", on_call="alice")
    with receiving("slack") as receiver:
        outcome = send(built, secret_for(receiver))
    assert outcome == PageOutcome(PageChannel.SLACK, "bob", PageResult.SENT, 1, T0, None)
    [post] = receiver.posts
    assert post.path == f"/services/{HOOK_TOKEN}"
    assert post.header("Content-Type") == "application/json"
    body = post.json()
    assert body["text"].startswith("[Critical] payments: Error rate above 5% on payments-api")
    assert body["blocks"][0]["type"] == "header"
    assert body["blocks"][0]["text"]["type"] == "plain_text"


def test_the_blocks_say_severity_service_summary_on_call_links_and_the_ack_command() -> None:
    shown = texts(message(page(user="bob", on_call="alice"))["blocks"])
    for part in (
        "*Severity*\\nCritical",
        "*Service*\\npayments",
        "*Summary*\\nError rate above 5% on payments-api",
        "*On call*\\nalice",
        "*Paging*\\nbob",
        "<https://grafana.example.com/d/payments|Golden signals>",
        "<https://wiki.example.com/payments|Runbook>",
        "```kubectl changegate incident ack -n payments-prod payments-5xx```",
    ):
        assert part in shown


def test_nobody_on_call_is_said_and_a_resolution_has_no_ack_command() -> None:
    shown = texts(message(page(user=None, on_call=None, action=PageAction.RESOLVE))["blocks"])
    assert "*On call*\\nnobody" in shown
    assert "incident ack" not in shown
    assert "resolved: " in shown


def test_text_from_people_is_escaped_for_slack() -> None:
    assert escape("a < b & c > d") == "a &lt; b &amp; c &gt; d"
    sent = message(page(summary="<!channel> & friends"))
    # The header is plain_text, which Slack shows as written; mrkdwn texts are escaped.
    mrkdwn = texts(sent["blocks"][1:])
    assert "&lt;!channel&gt; &amp; friends" in mrkdwn
    assert "<!channel>" not in mrkdwn
    assert "<!channel>" not in sent["text"]


def test_a_long_summary_is_clipped_to_slacks_limits() -> None:
    blocks = message(page(summary="x" * 1024))["blocks"]
    assert len(blocks[0]["text"]["text"]) <= 150
    assert all(len(json.dumps(b)) < 3500 for b in blocks)


def test_429_with_retry_after_is_honoured_then_sent() -> None:
    sleeps = Sleeps()
    with receiving("slack") as receiver:
        receiver.rate_limit(retry_after="2", times=2)
        outcome = send(page(), secret_for(receiver), sleeps)
    assert (outcome.result, outcome.attempts) == (PageResult.SENT, 3)
    assert sleeps.waits == [2.0, 2.0]
    assert len(receiver.posts) == 3


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, b"invalid_payload"), (404, b"channel_not_found"), (410, b"channel_is_archived")],
)
def test_slack_refusals_fail_at_once(status: int, body: bytes) -> None:
    with receiving("slack") as receiver:
        receiver.fail(status, body=body)
        outcome = send(page(), secret_for(receiver))
    assert (outcome.result, outcome.attempts) == (PageResult.FAILED, 1)
    assert outcome.error == f"HTTP {status}: {body.decode()}"


def test_200_without_ok_is_not_success() -> None:
    with receiving("slack") as receiver:
        receiver.fail(200, body=b"something else")
        outcome = send(page(), secret_for(receiver))
    assert outcome.result is PageResult.FAILED


def test_5xx_and_timeouts_are_retried_to_the_bound() -> None:
    sleeps = Sleeps()
    with receiving("slack") as receiver:
        receiver.fail(500)
        receiver.hold(times=2)
        outcome = send(page(), secret_for(receiver), sleeps, attempts=3)
    assert (outcome.result, outcome.attempts) == (PageResult.FAILED, 3)
    assert outcome.error == "timed out (ReadTimeout)"
    assert len(sleeps.waits) == 2


def test_without_a_url_nothing_is_sent() -> None:
    outcome = send(page(), SecretValue({}))
    assert (outcome.result, outcome.attempts) == (PageResult.FAILED, 0)


def test_the_webhook_url_reaches_neither_logs_nor_outcome(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with receiving("slack") as receiver:
        receiver.fail(500, times=4, body=f"bad hook {receiver.url}/services/{HOOK_TOKEN}".encode())
        outcome = send(page(), secret_for(receiver))
    assert outcome.result is PageResult.FAILED
    assert HOOK_TOKEN not in repr(outcome)
    assert HOOK_TOKEN not in caplog.text
