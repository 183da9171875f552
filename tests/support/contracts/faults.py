"""Failures a contract server produces on demand, and the log of what it was asked.

A test arms a fault for the next N matching requests (or connections, for TLS)
from its own thread; the server's middleware takes one per request in its
loop thread. Every request is logged, faulted or not, so a test can assert
"retried N times" by counting what arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

# How long a "timeout" holds a request when the test gives no figure: longer
# than any client timeout worth testing, and released early when the server stops.
HOLD_SECONDS = 600.0


class FaultKind(enum.Enum):
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    RESET = "reset"
    SLOW = "slow"
    UNTRUSTED_TLS = "untrusted_tls"


@dataclass
class Fault:
    """One armed fault: what to do, to which requests, how many more times (None: until cleared)."""

    kind: FaultKind
    remaining: int | None
    path: str | None = None
    method: str | None = None
    status: int = 500
    retry_after: str | None = None
    seconds: float = HOLD_SECONDS

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return (
            self.path is None or path == self.path or path.startswith(self.path.rstrip("/") + "/")
        )


class Faults:
    """The faults armed on one server, set from a test, consumed by the server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Fault] = []

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self._armed.append(fault)
        return fault

    def rate_limit(
        self, times: int | None = 1, *, retry_after: float | str = 1, path: str | None = None
    ) -> Fault:
        """429 with `Retry-After` (seconds, or an HTTP date given as a string)."""
        return self.inject(
            Fault(FaultKind.RATE_LIMIT, times, path, status=429, retry_after=str(retry_after))
        )

    def server_error(
        self, times: int | None = 1, *, status: int = 500, path: str | None = None
    ) -> Fault:
        return self.inject(Fault(FaultKind.SERVER_ERROR, times, path, status=status))

    def timeout(
        self, times: int | None = 1, *, seconds: float = HOLD_SECONDS, path: str | None = None
    ) -> Fault:
        """Hold the request without answering, then drop the connection."""
        return self.inject(Fault(FaultKind.TIMEOUT, times, path, seconds=seconds))

    def reset(self, times: int | None = 1, *, path: str | None = None) -> Fault:
        """Close the connection with a TCP reset instead of answering."""
        return self.inject(Fault(FaultKind.RESET, times, path))

    def slow(self, seconds: float, times: int | None = 1, *, path: str | None = None) -> Fault:
        """Answer normally, but only after `seconds`."""
        return self.inject(Fault(FaultKind.SLOW, times, path, seconds=seconds))

    def untrusted_tls(self, times: int | None = 1) -> Fault:
        """Serve the next TLS handshakes with a certificate from a CA the client was not given."""
        return self.inject(Fault(FaultKind.UNTRUSTED_TLS, times))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._armed)

    def take(self, method: str, path: str) -> Fault | None:
        """The first armed request fault matching this request, counted down by one."""
        return self._take(
            lambda fault: fault.kind is not FaultKind.UNTRUSTED_TLS and fault.matches(method, path)
        )

    def take_tls(self) -> bool:
        return self._take(lambda fault: fault.kind is FaultKind.UNTRUSTED_TLS) is not None

    def _take(self, wanted: Callable[[Fault], bool]) -> Fault | None:
        with self._lock:
            for fault in self._armed:
                if not wanted(fault):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._armed.remove(fault)
                return fault
        return None


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived, with the fault it met (None: it was served)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    fault: FaultKind | None = None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RequestLog:
    """Every request a server received, in order; safe to read from the test's thread."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _entries: list[RecordedRequest] = field(default_factory=list)

    def append(self, entry: RecordedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def all(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            entries = list(self._entries)
        return [
            entry
            for entry in entries
            if (path is None or entry.path == path)
            and (method is None or entry.method == method.upper())
        ]

    def count(self, path: str | None = None, method: str | None = None) -> int:
        return len(self.all(path, method))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


ErrorBody = Callable[[int, str], Mapping[str, Any]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fault_middleware(
    faults: Faults, log: RequestLog, stopping: asyncio.Event, error_body: ErrorBody
) -> Middleware:
    """Log each request, then serve it, or meet it with the fault armed for it."""

    @web.middleware
    async def apply_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        fault = faults.take(request.method, request.path)
        log.append(
            RecordedRequest(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                body,
                fault.kind if fault else None,
            )
        )
        if fault is None:
            return await handler(request)
        return await _meet(fault, request, handler, stopping, error_body)

    return apply_faults


async def _meet(
    fault: Fault,
    request: web.Request,
    handler: Handler,
    stopping: asyncio.Event,
    error_body: ErrorBody,
) -> web.StreamResponse:
    if fault.kind is FaultKind.SLOW:
        await _hold(stopping, fault.seconds)
        return await handler(request)
    if fault.kind is FaultKind.RATE_LIMIT:
        headers = {"Retry-After": fault.retry_after or "1"}
        return web.json_response(error_body(429, "Too many requests"), status=429, headers=headers)
    if fault.kind is FaultKind.SERVER_ERROR:
        return web.json_response(
            error_body(fault.status, "Internal server error"), status=fault.status
        )
    if fault.kind is FaultKind.TIMEOUT:
        await _hold(stopping, fault.seconds)
    _reset_connection(request)
    # The connection is gone; aiohttp drops a response it cannot write.
    raise web.HTTPServiceUnavailable()


async def _hold(stopping: asyncio.Event, seconds: float) -> None:
    # Stopping the server releases every held request, so stop() never waits out a fault.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


def _reset_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0: closing sends RST rather than FIN, which is what a client sees
        # when a proxy or a crashed server drops it mid-request.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
