"""changegate's ServiceNow adapter against the ServiceNow contract server.

Idempotent creates (correlation_id), work-note markers, the Change Management
API, both kinds of authentication, and how each failure is classified.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import pytest

from changegate.adapters.servicenow import (
    INCIDENT_READ,
    Credentials,
    ServiceNowClient,
    ServiceNowFailure,
    TokenCache,
)
from changegate.core.ports import SecretValue
from tests.support.contracts.faults import Fault, FaultKind
from tests.support.contracts.servicenow import ServiceNowServer
from tests.support.polling import wait_for

T = TypeVar("T")
INCIDENTS = "/api/now/table/incident"
FIELDS = {"short_description": "checkout down", "impact": "1", "urgency": "2"}


def run(call: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(call)


def basic(server: ServiceNowServer) -> SecretValue:
    return SecretValue({"username": server.username, "password": server.password})


def with_client(
    server: ServiceNowServer, secret: SecretValue, seconds: float = 5.0
) -> ServiceNowClient:
    http = httpx.AsyncClient(timeout=httpx.Timeout(seconds))
    return ServiceNowClient(http, server.url, Credentials(secret), TokenCache())


def test_a_repeated_create_finds_the_ticket_by_correlation_id(
    servicenow: ServiceNowServer,
) -> None:
    async def twice() -> tuple[str, str]:
        client = with_client(servicenow, basic(servicenow))
        first = await client.create_incident("uid-1", FIELDS)
        second = await client.create_incident("uid-1", FIELDS)
        return first.number, second.number

    first, second = run(twice())

    assert first == second == "INC0010001"
    assert len(servicenow.records("incident", correlation_id="uid-1")) == 1
    assert servicenow.requests.count(INCIDENTS, "POST") == 1


def test_a_work_note_under_a_marker_is_added_once(servicenow: ServiceNowServer) -> None:
    async def note_twice() -> tuple[bool, bool, str]:
        client = with_client(servicenow, basic(servicenow))
        ticket = await client.create_incident("uid-2", FIELDS)
        return (
            await client.add_work_note(ticket, "[changegate ns/inc/note/0]", "alice: looking"),
            await client.add_work_note(ticket, "[changegate ns/inc/note/0]", "alice: looking"),
            ticket.sys_id,
        )

    added, again, sys_id = run(note_twice())

    assert (added, again) == (True, False)
    assert servicenow.journal(sys_id) == ["[changegate ns/inc/note/0] alice: looking"]


def failure_of(
    server: ServiceNowServer, secret: SecretValue, seconds: float = 5.0
) -> ServiceNowFailure:
    async def create() -> None:
        client = with_client(server, secret, seconds)
        await client.create_incident("uid-3", FIELDS)

    with pytest.raises(ServiceNowFailure) as caught:
        run(create())
    return caught.value


def test_429_is_retried_after_the_time_servicenow_asks(servicenow: ServiceNowServer) -> None:
    servicenow.faults.rate_limit(retry_after=7)

    failure = failure_of(servicenow, basic(servicenow))

    assert failure.retryable
    assert failure.status == 429
    assert failure.retry_after == 7.0


def test_500_is_retried(servicenow: ServiceNowServer) -> None:
    servicenow.faults.server_error()

    failure = failure_of(servicenow, basic(servicenow))

    assert failure.retryable
    assert failure.status == 500
    assert failure.retry_after is None


def test_a_refused_field_is_given_up(servicenow: ServiceNowServer) -> None:
    async def bad() -> None:
        client = with_client(servicenow, basic(servicenow))
        await client.create_incident("uid-4", {"no_such_field": "x"})

    with pytest.raises(ServiceNowFailure) as caught:
        run(bad())

    assert not caught.value.retryable
    assert caught.value.status == 400


def test_wrong_credentials_are_given_up_without_naming_them(servicenow: ServiceNowServer) -> None:
    secret = SecretValue({"username": "changegate", "password": "wrong-password-123"})

    failure = failure_of(servicenow, secret)

    assert not failure.retryable
    assert failure.status == 401
    assert "wrong-password-123" not in failure.message


def test_a_timed_out_create_is_retried_and_finds_what_the_first_made(
    servicenow: ServiceNowServer,
) -> None:
    # The first POST is answered only after the client gave up: the ticket exists anyway.
    servicenow.faults.inject(Fault(FaultKind.SLOW, 1, INCIDENTS, method="POST", seconds=1.0))

    failure = failure_of(servicenow, basic(servicenow), seconds=0.3)
    assert failure.retryable
    assert "timed out" in failure.message
    wait_for(lambda: servicenow.records("incident", correlation_id="uid-3"), timeout=10)

    async def retry() -> str:
        client = with_client(servicenow, basic(servicenow))
        return (await client.create_incident("uid-3", FIELDS)).number

    assert run(retry()) == "INC0010001"
    assert len(servicenow.records("incident", correlation_id="uid-3")) == 1
    assert servicenow.requests.count(INCIDENTS, "POST") == 1


def test_oauth_client_credentials_and_a_renewed_token(servicenow: ServiceNowServer) -> None:
    secret = SecretValue(
        {"clientId": servicenow.client_id, "clientSecret": servicenow.client_secret}
    )

    async def calls() -> str:
        client = with_client(servicenow, secret)
        await client.create_incident("uid-5", FIELDS)
        servicenow.expire_tokens()
        found = await client.find("incident", "uid-5", INCIDENT_READ)
        assert found is not None
        return found.number

    assert run(calls()) == "INC0010001"
    assert servicenow.requests.count("/oauth_token.do", "POST") == 2


def test_changes_of_each_model_are_created_once_and_move(servicenow: ServiceNowServer) -> None:
    template = servicenow.add_standard_template("api image update")

    async def changes() -> tuple[str, str, str]:
        client = with_client(servicenow, basic(servicenow))
        normal = await client.create_change("uid-n", "normal", {"short_description": "n"})
        again = await client.create_change("uid-n", "normal", {"short_description": "n"})
        standard = await client.create_change(
            "uid-s", "standard", {"short_description": "s"}, template
        )
        await client.create_change("uid-e", "emergency", {"short_description": "e"})
        moved = await client.update(normal, {"state": "-1"})
        assert again.sys_id == normal.sys_id
        return moved.state, standard.sys_id, normal.sys_id

    state, standard, normal = run(changes())

    assert state == "-1"
    assert servicenow.record("change_request", standard)["type"] == "standard"
    assert servicenow.record("change_request", standard)["std_change_producer_version"] == template
    assert len(servicenow.records("change_request")) == 3
    assert servicenow.record("change_request", normal)["correlation_id"] == "uid-n"


def test_approvers_and_work_notes_read_back(servicenow: ServiceNowServer) -> None:
    async def create() -> tuple[str, str]:
        client = with_client(servicenow, basic(servicenow))
        change = await client.create_change("uid-a", "normal", {"short_description": "a"})
        incident = await client.create_incident("uid-i", FIELDS)
        return change.sys_id, incident.sys_id

    change, incident = run(create())
    servicenow.request_approval(change, ["bob", "carol"])
    servicenow.approve(change, "bob", "fine")
    servicenow.update_as("dave", "incident", incident, work_notes="checking", state="2")

    async def read() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        client = with_client(servicenow, basic(servicenow))
        approvers = await client.approvers(change)
        notes = await client.work_notes(incident)
        return [(a.approver, a.state) for a in approvers], [(n.author, n.text) for n in notes]

    approvers, notes = run(read())

    assert sorted(approvers) == [("bob", "approved"), ("carol", "requested")]
    assert notes == [("dave", "checking")]
