"""One HTTP POST with bounded retries: what every HTTP paging channel shares.

Channels (webhook, Slack; PagerDuty and ServiceNow next) serialise their body
once and hand it here with their own test of success. Timeouts, connection
errors, 5xx and 429 are retried with exponential backoff and jitter (429's
Retry-After honoured, within a bound); any other answer fails at once. The
result says how it went in words that never carry a secret.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import httpx

# Connect fast, allow the far side a few seconds to answer; a page must not hang.
TIMEOUT = httpx.Timeout(5.0, connect=3.0)
USER_AGENT = "changegate"
BODY_EXCERPT = 200

Accept = Callable[[httpx.Response], bool]
Sleep = Callable[[float], Awaitable[None]]
Jitter = Callable[[float], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many requests one page may cost and how long it may wait between them."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A Retry-After longer than this is not waited for: the channel fails and
    # escalation goes on, rather than one slow channel holding up the page.
    max_retry_after: float = 30.0


class Verdict(StrEnum):
    """What one answer means for the page."""

    ACCEPTED = "accepted"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict on one attempt, why, and how long the far side asked us to wait."""

    verdict: Verdict
    reason: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    """How a POST ended after its retries: accepted or not, after how many requests."""

    accepted: bool
    attempts: int
    error: str | None = None
    # For an outbox that retries later itself: whether trying again may help, and the
    # wait the far side asked for (429's Retry-After). Left out of comparisons.
    retryable: bool = field(default=False, compare=False)
    retry_after: float | None = field(default=None, compare=False)


def new_client(
    timeout: httpx.Timeout = TIMEOUT, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one client the channels share, with explicit timeouts and no redirects."""
    quiet_request_logs()
    return httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        transport=transport,
    )


def quiet_request_logs() -> None:
    """Keep httpx and httpcore below INFO.

    httpx logs every request's full URL at INFO, and an incoming webhook's URL
    is itself the credential: it must never reach a log line.
    """
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def equal_jitter(delay: float) -> float:
    """Half the delay fixed, half random: retries spread out but still back off."""
    return delay / 2 + random.uniform(0, delay / 2)  # spreads retries; not security


def backoff(policy: RetryPolicy, attempt: int, jitter: Jitter) -> float:
    """The wait after failed attempt `attempt` (from 1): doubling, capped, jittered."""
    return jitter(min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1)))


def retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None if absent or bad."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


# Parts of a secret URL shorter than this are left alone: too common to be the secret.
FRAGMENT_MIN = 8


def fragments(secret: str) -> set[str]:
    """A secret and, when it is a URL, the parts that carry the credential.

    An incoming webhook's URL is secret by its path (Slack's last segments) or
    its query or user info; a far side may echo any of them alone.
    """
    parts = {secret}
    try:
        url = httpx.URL(secret)
    except (httpx.InvalidURL, TypeError):
        return parts
    pieces = [url.path, url.query.decode(errors="replace"), url.userinfo.decode(errors="replace")]
    pieces += url.path.split("/")
    return parts | {piece for piece in pieces if len(piece) >= FRAGMENT_MIN}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret (and every credential part of a secret URL) hidden."""
    hidden = set().union(*(fragments(secret) for secret in secrets if secret))
    for part in sorted(hidden, key=len, reverse=True):
        text = text.replace(part, "<hidden>")
    return text


def judge(response: httpx.Response, accept: Accept, now: dt.datetime) -> Judgement:
    """Accepted by the channel's own test; 408, 429 and 5xx are worth another try; the rest is final."""
    if accept(response):
        return Judgement(Verdict.ACCEPTED, f"HTTP {response.status_code}")
    reason = f"HTTP {response.status_code}: {response.text[:BODY_EXCERPT].strip()}".rstrip(": ")
    if response.status_code == httpx.codes.TOO_MANY_REQUESTS:
        return Judgement(
            Verdict.RETRY, reason, retry_after(response.headers.get("Retry-After"), now)
        )
    if (
        response.status_code >= httpx.codes.INTERNAL_SERVER_ERROR
        or response.status_code == httpx.codes.REQUEST_TIMEOUT
    ):
        return Judgement(Verdict.RETRY, reason)
    return Judgement(Verdict.REJECTED, reason)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Sender:
    """POSTs a body with bounded retries through the shared client."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        policy: RetryPolicy | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        jitter: Jitter = equal_jitter,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.client = client
        self.policy = policy or RetryPolicy()
        self.sleep = sleep
        self.jitter = jitter
        self.clock = clock

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        accept: Accept,
        secrets: Iterable[str] = (),
    ) -> Delivered:
        """POST the same bytes and headers until accepted, refused, or out of attempts."""
        hidden = tuple(secrets)
        for attempt in range(1, self.policy.attempts + 1):
            judgement = await self._attempt(url, body, headers, accept)
            reason = scrub(judgement.reason, hidden)
            if judgement.verdict is Verdict.ACCEPTED:
                return Delivered(True, attempt)
            retryable = judgement.verdict is Verdict.RETRY
            if not retryable or attempt == self.policy.attempts:
                return Delivered(False, attempt, reason, retryable, judgement.retry_after)
            wait = self._wait(attempt, judgement)
            if wait is None:
                return Delivered(
                    False,
                    attempt,
                    f"{reason} (asked to wait too long)",
                    True,
                    judgement.retry_after,
                )
            await self.sleep(wait)
        raise AssertionError("unreachable: the last attempt always returns")

    def _wait(self, attempt: int, judgement: Judgement) -> float | None:
        """Retry-After when given (None if beyond the bound), else exponential backoff."""
        if judgement.retry_after is None:
            return backoff(self.policy, attempt, self.jitter)
        if judgement.retry_after > self.policy.max_retry_after:
            return None
        return judgement.retry_after

    async def _attempt(
        self, url: str, body: bytes, headers: Mapping[str, str], accept: Accept
    ) -> Judgement:
        """One request; transport trouble is a verdict too, described without the URL."""
        try:
            response = await self.client.post(url, content=body, headers=dict(headers))
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            return Judgement(Verdict.REJECTED, "the configured URL is not a valid http(s) URL")
        except httpx.TimeoutException as error:
            return Judgement(Verdict.RETRY, f"timed out ({type(error).__name__})")
        except httpx.TransportError as error:
            return Judgement(Verdict.RETRY, f"could not connect ({type(error).__name__})")
        return judge(response, accept, self.clock())
