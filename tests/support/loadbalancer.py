"""A local TCP load balancer (haproxy) in front of several webhook processes.

It plays the part of the webhook's Service: TLS passes through untouched (the
API server still checks the webhook's own certificate), a backend joins only
once its readiness probe answers, and a backend that dies is skipped at once
(a refused connection is retried on another server) and marked down by its
health check shortly after. `hack/ensure-haproxy.sh` installs haproxy.
"""

from __future__ import annotations

import csv
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.localcluster import free_port
from tests.support.polling import wait_for


@dataclass(frozen=True)
class Backend:
    """One webhook process: where it serves admission and where it says it is ready."""

    name: str
    port: int
    ready_port: int


# Failover: a dead backend refuses connections on loopback, so `retries` with
# `option redispatch 1` moves every new connection to a live server at once, and
# `observe layer4` marks the server down on its first refusal; the health check
# (the readiness probe, as a kubelet would ask it) brings it back when it is ready.
CONFIG = """\
global
    maxconn 4096
    stats socket {socket} mode 600 level admin

defaults
    mode tcp
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout check 1s
    retries 3
    option redispatch 1

frontend admission
    bind 127.0.0.1:{port}
    default_backend webhooks

backend webhooks
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fastinter 100ms downinter 200ms fall 2 rise 1 observe layer4 error-limit 1 on-error mark-down
{servers}
"""


@dataclass
class TcpLoadBalancer:
    """haproxy on 127.0.0.1 in TCP mode, run in the foreground as a child process."""

    workdir: Path
    backends: tuple[Backend, ...]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def socket_path(self) -> Path:
        return self.workdir / "haproxy.sock"

    def config(self) -> str:
        servers = "\n".join(
            f"    server {b.name} 127.0.0.1:{b.port} check port {b.ready_port}"
            for b in self.backends
        )
        return CONFIG.format(socket=self.socket_path, port=self.port, servers=servers)

    def start(self) -> TcpLoadBalancer:
        binary = shutil.which("haproxy")
        if binary is None:
            raise AssertionError("haproxy is not installed: run hack/ensure-haproxy.sh")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "haproxy.cfg"
        config.write_text(self.config())
        checked = subprocess.run(
            [binary, "-c", "-q", "-f", str(config)], capture_output=True, text=True
        )
        if checked.returncode != 0:
            raise AssertionError(f"haproxy rejected its configuration:\n{checked.stderr}")
        with (self.workdir / "haproxy.log").open("ab") as log:
            # -db: stay in the foreground, so that this process owns it and can stop it.
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for(
            lambda: all(s == "UP" for s in self.server_status().values()),
            timeout=30,
            message="haproxy to see every backend ready",
        )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        path = self.workdir / "haproxy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _command(self, command: str) -> str:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"haproxy is not running:\n{self.log()[-2000:]}")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2)
            conn.connect(str(self.socket_path))
            conn.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_status(self) -> dict[str, str]:
        """Each backend's state as haproxy sees it: UP, DOWN, or a transition."""
        text = self._command("show stat").lstrip("# ")
        rows = csv.DictReader(line for line in text.splitlines() if line.strip())
        return {
            row["svname"]: row["status"].split()[0]
            for row in rows
            if row["pxname"] == "webhooks" and row["svname"] not in ("FRONTEND", "BACKEND")
        }
