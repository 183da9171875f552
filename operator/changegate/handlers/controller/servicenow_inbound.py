"""The ServiceNow callback: POST /servicenow on the intake's HTTPS server.

An instance's business rule posts {"table", "sys_id", "correlation_id"} signed like our
generic webhook (X-Changegate-Signature: sha256=<hex HMAC-SHA256 of the raw body>) with a
key of one Secret. The body is only a hint: the ticket of the object whose UID is the
correlation_id is read back at once through the poll's own code (servicenow.ReadBack), so
what is applied always comes from the Table API. Answers: 401 unsigned or wrongly signed,
400 malformed, 503 when ServiceNow or the API server could not be read (the poll catches
up), 200 otherwise.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from changegate.adapters.kube import KubeError
from changegate.adapters.notify.secrets import SecretUnavailable
from changegate.adapters.notify.webhook import SIGNATURE_HEADER, signature
from changegate.adapters.servicenow import ServiceNowFailure
from changegate.handlers.controller.intake import Route, Token
from changegate.handlers.controller.state import ControllerState

log = logging.getLogger(__name__)

PATH = "/servicenow"
TABLES = ("incident", "change_request")
MAX_BODY_BYTES = 16 * 1024  # three short strings
MAX_FIELD = 128  # a UID is 36 characters, a sys_id 32

# Reads one ticket back: (table, our object's UID) -> whether an object of ours has it.
ReadOne = Callable[[str, str], Awaitable[bool]]


class Malformed(ValueError):
    """The body is not the hint a callback posts."""


@dataclass(frozen=True, slots=True)
class Hint:
    """Which ticket changed; nothing else in it is trusted."""

    table: str
    uid: str
    sys_id: str


def parse_hint(body: bytes) -> Hint:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Malformed("the body is not JSON") from error
    if not isinstance(document, dict):
        raise Malformed("the body is not a JSON object")
    table, uid, sys_id = (document.get(k, "") for k in ("table", "correlation_id", "sys_id"))
    if table not in TABLES:
        raise Malformed(f"table must be one of {', '.join(TABLES)}")
    for name, value in (("correlation_id", uid), ("sys_id", sys_id)):
        if not isinstance(value, str) or len(value) > MAX_FIELD:
            raise Malformed(f"{name} must be a string of at most {MAX_FIELD} characters")
    if not uid:
        raise Malformed("correlation_id is missing")
    return Hint(table, uid, sys_id)


def signed(body: bytes, header: str, keys: Sequence[str]) -> bool:
    """Whether the header is the body's signature with one of the keys (constant time)."""
    given = header.strip().encode()
    return any(hmac.compare_digest(given, signature(body, key).encode()) for key in keys)


def answer(status: int, message: str, **extra: Any) -> web.Response:
    body = json.dumps({"message": message, **extra})
    return web.Response(status=status, text=body, content_type="application/json")


@dataclass
class ServiceNowCallback:
    """The route's state: the read-back of one ticket and the Secret's keys."""

    read_one: ReadOne
    keys: Sequence[Token]

    @classmethod
    def of(cls, state: ControllerState, read_one: ReadOne) -> ServiceNowCallback:
        settings = state.settings
        tokens = [
            Token(state.kube, settings.namespace, settings.servicenow_callback_secret, key)
            for key in settings.servicenow_callback_secret_keys
        ]
        return cls(read_one, tokens)

    def routes(self) -> list[Route]:
        return [(PATH, self.receive)]

    def current_keys(self) -> tuple[str, ...]:
        return tuple(k for k in (token.current() for token in self.keys) if k)

    async def receive(self, request: web.Request) -> web.Response:
        try:
            keys = await asyncio.to_thread(self.current_keys)
        except KubeError as error:
            log.warning("ServiceNow callback: cannot read the signing Secret: %s", error)
            return answer(503, "cannot check signatures right now")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return answer(413, f"body over {MAX_BODY_BYTES} bytes")
        body = await request.read()
        if not signed(body, request.headers.get(SIGNATURE_HEADER, ""), keys):
            return answer(401, f"missing or wrong {SIGNATURE_HEADER}")
        try:
            hint = parse_hint(body)
        except Malformed as error:
            return answer(400, str(error))
        return await self.read(hint)

    async def read(self, hint: Hint) -> web.Response:
        try:
            found = await self.read_one(hint.table, hint.uid)
        except (ServiceNowFailure, SecretUnavailable, KubeError) as error:
            log.info("ServiceNow callback for %s %s: %s", hint.table, hint.uid, error)
            return answer(503, "not read back now; the next poll will")
        if not found:
            return answer(200, "no object of changegate is read back from this ticket")
        log.info("ServiceNow callback: %s %s read back", hint.table, hint.uid)
        return answer(200, "read back", uid=hint.uid)
