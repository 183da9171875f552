"""The shared retrying POST (adapters.notify.delivery), through httpx.MockTransport."""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
from collections.abc import Callable

import httpx
import pytest

from changegate.adapters.notify.delivery import (
    Delivered,
    RetryPolicy,
    Sender,
    backoff,
    new_client,
    retry_after,
    scrub,
)
from tests.unit.notify.builders import T0, Sleeps, clock, no_jitter

URL = "https://hooks.example.com/services/T000/B000/s3cr3t"
Handler = Callable[[httpx.Request], httpx.Response]


def post(
    handler: Handler, policy: RetryPolicy | None = None
) -> tuple[Delivered, list[httpx.Request], Sleeps]:
    """POST once through a mock transport; the requests it saw and the waits asked for."""
    seen: list[httpx.Request] = []
    sleeps = Sleeps()

    def recording(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    async def run() -> Delivered:
        async with httpx.AsyncClient(transport=httpx.MockTransport(recording)) as client:
            sender = Sender(client, policy, sleep=sleeps, jitter=no_jitter, clock=clock)
            return await sender.post(
                URL, b'{"a":1}', {"Idempotency-Key": "k1"}, lambda r: r.is_success, ["s3cr3t"]
            )

    return asyncio.run(run()), seen, sleeps


def answers(*responses: httpx.Response | Exception) -> Handler:
    """A handler giving these answers in turn, the last one from then on."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


def test_success_at_once_is_one_attempt() -> None:
    done, seen, sleeps = post(answers(httpx.Response(204)))
    assert done == Delivered(True, 1)
    assert len(seen) == 1
    assert sleeps.waits == []


@pytest.mark.parametrize(
    ("failure", "what"),
    [
        (httpx.Response(500, text="boom"), "HTTP 500: boom"),
        (httpx.Response(503), "HTTP 503"),
        (httpx.ReadTimeout("slow"), "timed out (ReadTimeout)"),
        (httpx.ConnectTimeout("slow"), "timed out (ConnectTimeout)"),
        (httpx.ConnectError("refused"), "could not connect (ConnectError)"),
        (httpx.RemoteProtocolError("closed"), "could not connect (RemoteProtocolError)"),
    ],
)
def test_transient_failures_are_retried_until_the_attempts_run_out(
    failure: httpx.Response | Exception, what: str
) -> None:
    done, seen, sleeps = post(answers(failure), RetryPolicy(attempts=4, base_delay=0.5))
    assert done == Delivered(False, 4, what)
    assert len(seen) == 4
    assert sleeps.waits == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(500), httpx.ReadTimeout("slow"), httpx.ConnectError("refused")],
)
def test_a_transient_failure_then_success_is_sent_with_the_same_body_and_key(
    failure: httpx.Response | Exception,
) -> None:
    done, seen, _ = post(answers(failure, failure, httpx.Response(200)))
    assert done == Delivered(True, 3)
    assert {r.content for r in seen} == {b'{"a":1}'}
    assert {r.headers["Idempotency-Key"] for r in seen} == {"k1"}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413])
def test_a_client_error_other_than_429_fails_at_once(status: int) -> None:
    done, seen, sleeps = post(answers(httpx.Response(status, text="no")))
    assert done == Delivered(False, 1, f"HTTP {status}: no")
    assert len(seen) == 1
    assert sleeps.waits == []


def test_429_waits_as_long_as_retry_after_says() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "7"}, text="rate_limited")
    done, seen, sleeps = post(answers(limited, limited, httpx.Response(200)))
    assert done == Delivered(True, 3)
    assert len(seen) == 3
    assert sleeps.waits == [7.0, 7.0]


def test_429_with_an_http_date_waits_until_that_date() -> None:
    later = email.utils.format_datetime(T0 + dt.timedelta(seconds=12), usegmt=True)
    limited = httpx.Response(429, headers={"Retry-After": later})
    done, _, sleeps = post(answers(limited, httpx.Response(200)))
    assert done.accepted
    assert sleeps.waits == [12.0]


def test_429_without_retry_after_backs_off() -> None:
    done, _, sleeps = post(
        answers(httpx.Response(429), httpx.Response(200)), RetryPolicy(base_delay=2)
    )
    assert done.accepted
    assert sleeps.waits == [2.0]


def test_a_retry_after_beyond_the_bound_is_not_waited_for() -> None:
    limited = httpx.Response(429, headers={"Retry-After": "3600"}, text="slow down")
    done, seen, sleeps = post(answers(limited), RetryPolicy(max_retry_after=30))
    assert not done.accepted
    assert done.attempts == 1
    assert done.error == "HTTP 429: slow down (asked to wait too long)"
    assert len(seen) == 1
    assert sleeps.waits == []


def test_a_bad_url_fails_at_once_without_naming_it() -> None:
    async def run() -> Delivered:
        async with new_client() as client:
            sender = Sender(client, sleep=Sleeps(), clock=clock)
            return await sender.post("ftp://s3cr3t@example.com/x", b"{}", {}, lambda r: True)

    done = asyncio.run(run())
    assert done == Delivered(False, 1, "the configured URL is not a valid http(s) URL")


def test_text_from_the_far_side_is_scrubbed_of_secrets() -> None:
    echo = httpx.Response(500, text=f"cannot deliver to {URL}")
    done, _, _ = post(answers(echo), RetryPolicy(attempts=1))
    assert done.error is not None
    assert "s3cr3t" not in done.error
    assert "<hidden>" in done.error


def test_backoff_doubles_up_to_the_cap_and_jitter_applies() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=5)
    assert [backoff(policy, n, no_jitter) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 5, 5]
    assert backoff(policy, 2, lambda d: d / 2) == 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("", None), ("5", 5.0), (" 0 ", 0.0), ("soon", None), ("-3", None)],
)
def test_retry_after_reads_seconds_and_ignores_nonsense(
    header: str | None, seconds: float | None
) -> None:
    assert retry_after(header, T0) == seconds


def test_retry_after_in_the_past_is_no_wait() -> None:
    assert (
        retry_after(email.utils.format_datetime(T0 - dt.timedelta(hours=1), usegmt=True), T0) == 0.0
    )


def test_the_shared_client_keeps_request_urls_out_of_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    async def run() -> None:
        async with new_client(
            transport=httpx.MockTransport(lambda r: httpx.Response(200))
        ) as client:
            await client.post(URL, content=b"{}")

    asyncio.run(run())
    assert "s3cr3t" not in caplog.text


@pytest.mark.parametrize(
    "echo",
    [
        URL,
        "/services/T000/B000/s3cr3t",
        "token s3cr3t-and-more? no: just the last segment s3cr3tSegment",
    ],
)
def test_a_secret_url_is_hidden_whole_or_in_its_credential_parts(echo: str) -> None:
    hook = "https://hooks.example.com/services/T000/B000/s3cr3tSegment?token=s3cr3tQuery"
    scrubbed = scrub(f"{echo} {hook} token=s3cr3tQuery", [hook, "s3cr3t"])
    assert "s3cr3t" not in scrubbed
    assert scrub("nothing secret here", [hook]) == "nothing secret here"
