"""A contract server's life: an aiohttp app on 127.0.0.1 in a background thread.

Each vendor server (pagerduty.py, servicenow.py) subclasses `ContractServer`
with its routes and error shape; this module binds a free port, serves HTTP or
HTTPS with a throwaway CA (tests/support/tls.py), applies faults and logs
requests, and stops cleanly from a with-block or a pytest fixture.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from tests.support.contracts.faults import Faults, RequestLog, fault_middleware
from tests.support.tls import ServingCertificate, issue_serving_certificate

START_TIMEOUT = 10.0


class ContractServer:
    """Base of the vendor servers: subclasses add routes and say how errors look."""

    name = "contract"

    def __init__(self, *, tls: bool = False, workdir: Path | None = None) -> None:
        self.tls = tls
        self.faults = Faults()
        self.requests = RequestLog()
        self._workdir = workdir
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._certificate: ServingCertificate | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._port = 0

    # What subclasses provide.

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Mapping[str, Any]:
        return {"error": message}

    # Where clients connect.

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        if not self._port:
            raise RuntimeError(f"{self.name} contract server is not running")
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self._port}"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the server's certificate: what a client should trust."""
        if self._certificate is None:
            raise RuntimeError(f"{self.name} contract server has no TLS")
        return self._certificate.ca_file

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    # Life cycle.

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._serve, name=f"{self.name}-contract", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"{self.name} contract server did not start in {START_TIMEOUT}s")
        if self._error is not None:
            raise RuntimeError(f"{self.name} contract server failed to start") from self._error
        return self

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(START_TIMEOUT * 3)
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None
        self._port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Inside the server's thread.

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._run())
        except BaseException as error:
            self._error = error
            self._ready.set()
        finally:
            loop.close()

    async def _run(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(
            middlewares=[
                fault_middleware(self.faults, self.requests, self._stopping, self.error_body)
            ]
        )
        self.add_routes(app)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self._server_ssl_context())
            await site.start()
            self._port = runner.addresses[0][1]
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def _server_ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        directory = self._directory()
        self._certificate = issue_serving_certificate(directory / "trusted")
        # Same hosts, another CA: what a client meets behind a misconfigured proxy.
        untrusted = issue_serving_certificate(directory / "untrusted")
        trusted_context = _serving_context(self._certificate)
        untrusted_context = _serving_context(untrusted)

        def choose_certificate(
            connection: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
        ) -> None:
            # Called for every handshake, with or without SNI (127.0.0.1 sends none).
            if self.faults.take_tls():
                connection.context = untrusted_context

        trusted_context.sni_callback = choose_certificate
        return trusted_context

    def _directory(self) -> Path:
        if self._workdir is not None:
            return self._workdir / self.name
        self._tempdir = tempfile.TemporaryDirectory(prefix=f"{self.name}-contract-")
        return Path(self._tempdir.name)


def _serving_context(certificate: ServingCertificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert_file, certificate.key_file)
    return context
