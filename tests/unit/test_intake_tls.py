"""The alert intake serves a rotated certificate without a restart.

The real intake server (start_intake) on 127.0.0.1 with certificate A; the mounted
files are swapped for certificate B, from another CA; a new connection that trusts
only B's CA then succeeds and one that trusts only A's fails, with nothing restarted.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import pytest

from changegate.adapters.tls import ServingCertificate
from changegate.core.incident.routing import RoutingConfig
from changegate.handlers.controller.intake import Intake, IntakeConfig, start_intake
from tests.support.tls import issue_serving_certificate
from tests.unit.incident.builders import DIRECTORY, T0
from tests.unit.test_intake_server import NAMESPACES, RELEASE, FakeApiServer, Services


class QuickCheck(ServingCertificate):
    """Looks at its files every 50 ms instead of every 10 s."""

    async def watch(self, interval: float = 0.05) -> None:
        await super().watch(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def handshake(port: int, ca_file: Path) -> bool:
    """Whether a TLS connection that trusts only `ca_file` completes."""
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    except ssl.SSLError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def rotate_and_connect(tmp_path: Path) -> tuple[bool, bool, bool]:
    first = issue_serving_certificate(tmp_path / "a")
    second = issue_serving_certificate(tmp_path / "b")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(first.cert_file.read_bytes())
    key.write_bytes(first.key_file.read_bytes())
    config = IntakeConfig(RoutingConfig("unrouted"), RELEASE, "token", "token", 1 << 20)
    intake = Intake(FakeApiServer(), config, lambda: Services(DIRECTORY, NAMESPACES), lambda: T0)
    port = free_port()
    task = await start_intake(intake, "127.0.0.1", port, QuickCheck(cert, key))
    try:
        before = await handshake(port, first.ca_file)
        key.write_bytes(second.key_file.read_bytes())  # a Secret volume swaps both files
        cert.write_bytes(second.cert_file.read_bytes())
        deadline = asyncio.get_running_loop().time() + 5
        while not await handshake(port, second.ca_file):
            assert asyncio.get_running_loop().time() < deadline, "rotated certificate not served"
            await asyncio.sleep(0.05)
        return before, await handshake(port, second.ca_file), await handshake(port, first.ca_file)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_the_intake_serves_the_rotated_certificate_without_a_restart(tmp_path: Path) -> None:
    before, rotated, old = asyncio.run(rotate_and_connect(tmp_path))
    assert before is True
    assert rotated is True
    assert old is False  # the old CA's certificate is no longer served
