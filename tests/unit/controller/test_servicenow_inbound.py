"""The /servicenow callback route: signature, malformed hints, and the one object read back.

The read-back itself is servicenow.ReadBack's (tested with the poll); here it is a
recorder, so what is asserted is that a valid signed hint asks for exactly the object
whose UID is its correlation_id, and that nothing else ever does.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from changegate.adapters.notify.webhook import SIGNATURE_HEADER, signature
from changegate.adapters.servicenow import ServiceNowFailure
from changegate.handlers.controller.intake import Token
from changegate.handlers.controller.servicenow_inbound import (
    PATH,
    Malformed,
    ServiceNowCallback,
    parse_hint,
)

KEY = "shared-key"
UID = "0f8c2d3e-1111-4222-8333-944455556666"


@dataclass
class Secrets:
    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        return {"secret": KEY, "old": "rotated-out"}.get(key)


@dataclass
class Recorder:
    """The read-back: which (table, uid) it was asked for; which UIDs exist; a failure."""

    known: set[str] = field(default_factory=lambda: {UID})
    fail: bool = False
    asked: list[tuple[str, str]] = field(default_factory=list)

    async def read_one(self, table: str, uid: str) -> bool:
        self.asked.append((table, uid))
        if self.fail:
            raise ServiceNowFailure("503 from the instance", retryable=True)
        return uid in self.known


def hint(table: str = "incident", uid: str = UID) -> bytes:
    return json.dumps({"table": table, "sys_id": "a" * 32, "correlation_id": uid}).encode()


def post(recorder: Recorder, body: bytes, header: str | None) -> tuple[int, dict[str, Any]]:
    tokens = [Token(Secrets(), "changegate", "changegate-servicenow-callback", "secret")]  # type: ignore[arg-type]
    route = ServiceNowCallback(recorder.read_one, tokens)
    app = web.Application()
    for path, handler in route.routes():
        app.router.add_post(path, handler)

    async def run() -> tuple[int, dict[str, Any]]:
        headers = {SIGNATURE_HEADER: header} if header is not None else {}
        async with TestClient(TestServer(app)) as client:
            answer = await client.post(PATH, data=body, headers=headers)
            return answer.status, await answer.json()

    return asyncio.run(run())


def test_a_signed_hint_reads_back_exactly_the_object_it_names() -> None:
    recorder = Recorder()
    status, body = post(recorder, hint(), signature(hint(), KEY))
    assert (status, body["message"], body["uid"]) == (200, "read back", UID)
    assert recorder.asked == [("incident", UID)]


def test_a_change_request_hint_asks_for_the_change_table() -> None:
    recorder = Recorder()
    body = hint("change_request")
    assert post(recorder, body, signature(body, KEY))[0] == 200
    assert recorder.asked == [("change_request", UID)]


def test_a_hint_naming_no_object_of_ours_reads_nothing_back() -> None:
    recorder = Recorder(known=set())
    status, body = post(
        recorder, hint(uid="someone-elses"), signature(hint(uid="someone-elses"), KEY)
    )
    assert (status, body["message"]) == (
        200,
        "no object of changegate is read back from this ticket",
    )


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256=" + "0" * 64, signature(hint(), "rotated-out"), signature(b"{}", KEY)],
    ids=["absent", "empty", "zeros", "another-key", "another-body"],
)
def test_unsigned_or_wrongly_signed_is_401_and_reads_nothing(header: str | None) -> None:
    recorder = Recorder()
    status, body = post(recorder, hint(), header)
    assert status == 401
    assert "X-Changegate-Signature" in body["message"]
    assert recorder.asked == []


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        json.dumps({"table": "sys_user", "correlation_id": UID}).encode(),
        json.dumps({"table": "incident"}).encode(),
        json.dumps({"table": "incident", "correlation_id": 7}).encode(),
        json.dumps({"table": "incident", "correlation_id": "x" * 129}).encode(),
    ],
    ids=["not-json", "not-object", "other-table", "no-uid", "uid-not-string", "uid-too-long"],
)
def test_a_signed_malformed_body_is_400_and_reads_nothing(raw: bytes) -> None:
    recorder = Recorder()
    assert post(recorder, raw, signature(raw, KEY))[0] == 400
    assert recorder.asked == []
    with pytest.raises(Malformed):
        parse_hint(raw)


def test_a_failed_read_back_is_503_so_the_instance_may_retry() -> None:
    status, body = post(Recorder(fail=True), hint(), signature(hint(), KEY))
    assert (status, body["message"]) == (503, "not read back now; the next poll will")
