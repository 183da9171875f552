"""Faults on demand: each kind, per path, for the next N requests, and the request counter."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.contracts.faults import FaultKind
from tests.support.contracts.pagerduty import PagerDutyServer
from tests.unit.contracts.test_pagerduty_events import trigger

ENQUEUE = "/v2/enqueue"


@pytest.fixture
def secure() -> Iterator[PagerDutyServer]:
    with PagerDutyServer(tls=True) as server:
        yield server


def post(server: PagerDutyServer, path: str = ENQUEUE, **options: object) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=trigger(), **options)  # type: ignore[arg-type]


def test_rate_limit_answers_429_with_retry_after_for_the_next_n_requests(
    pagerduty: PagerDutyServer,
) -> None:
    pagerduty.faults.rate_limit(2, retry_after=7)

    answers = [post(pagerduty) for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 202]
    assert answers[0].headers["Retry-After"] == "7"
    assert pagerduty.requests.count(ENQUEUE) == 3
    assert [r.fault for r in pagerduty.requests.all(ENQUEUE)] == [
        FaultKind.RATE_LIMIT,
        FaultKind.RATE_LIMIT,
        None,
    ]
    assert len(pagerduty.events) == 1


def test_server_error_applies_only_to_its_path(pagerduty: PagerDutyServer) -> None:
    pagerduty.faults.server_error(1, status=503, path="/v2/change/enqueue")

    assert post(pagerduty).status_code == 202
    assert post(pagerduty, "/v2/change/enqueue").status_code == 503
    assert pagerduty.faults.pending() == []


def test_a_fault_without_a_count_lasts_until_cleared(pagerduty: PagerDutyServer) -> None:
    pagerduty.faults.server_error(None)

    assert [post(pagerduty).status_code for _ in range(3)] == [500, 500, 500]
    pagerduty.faults.clear()
    assert post(pagerduty).status_code == 202


def test_timeout_holds_the_request_until_the_client_gives_up(pagerduty: PagerDutyServer) -> None:
    pagerduty.faults.timeout(1)

    with pytest.raises(httpx.ReadTimeout):
        post(pagerduty, timeout=0.3)
    assert post(pagerduty).status_code == 202
    assert pagerduty.requests.count(ENQUEUE) == 2


def test_a_held_request_does_not_hold_up_stopping_the_server() -> None:
    server = PagerDutyServer().start()
    server.faults.timeout(1)
    with pytest.raises(httpx.ReadTimeout):
        post(server, timeout=0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5


def test_reset_drops_the_connection_without_an_answer(pagerduty: PagerDutyServer) -> None:
    pagerduty.faults.reset(1)

    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        post(pagerduty)
    assert post(pagerduty).status_code == 202
    assert pagerduty.events == [trigger()]


def test_slow_answers_after_the_delay(pagerduty: PagerDutyServer) -> None:
    pagerduty.faults.slow(0.5)

    started = time.monotonic()
    answer = post(pagerduty)

    assert answer.status_code == 202
    assert time.monotonic() - started >= 0.5
    pagerduty.faults.slow(2)
    with pytest.raises(httpx.ReadTimeout):
        post(pagerduty, timeout=0.2)


def test_https_is_trusted_with_the_servers_ca(secure: PagerDutyServer) -> None:
    assert secure.url.startswith("https://127.0.0.1:")
    assert post(secure, verify=secure.client_ssl_context()).status_code == 202


def test_untrusted_certificate_fails_the_handshake_for_the_next_connection(
    secure: PagerDutyServer,
) -> None:
    secure.faults.untrusted_tls(1)

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        post(secure, verify=secure.client_ssl_context())
    assert post(secure, verify=secure.client_ssl_context()).status_code == 202
    assert secure.requests.count(ENQUEUE) == 1  # the refused handshake never became a request
