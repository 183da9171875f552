"""Real Prometheus and Alertmanager processes for the integration tests' alert chain.

A test serves a `MetricsEndpoint`, starts `Prometheus` to scrape it and
evaluate rules, and one `Alertmanager` (or an HA pair clustered over 127.0.0.1)
that posts webhook notifications to a receiver of the test's own. Binaries come
from hack/build-binaries.sh (built from Go modules, cached by version); every
process listens on a free 127.0.0.1 port and is ready once `/-/ready` answers.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.support.localcluster import REPO, free_port
from tests.support.polling import wait_for

BUILD_SCRIPT = REPO / "hack" / "build-binaries.sh"
# A cold build takes minutes; a warm run of the script returns at once.
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def binaries(component: str) -> Path:
    """The directory holding `component`'s binaries ("prometheus" or "alertmanager").

    The script builds only what its cache lacks, so this is instant once
    `make cluster-binaries` has run.
    """
    out = subprocess.run(
        [str(BUILD_SCRIPT), component], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


def _ready(url: str) -> bool:
    with urllib.request.urlopen(url + "/-/ready", timeout=2) as answer:
        return bool(answer.status == 200)


class MetricsEndpoint:
    """A /metrics page with one gauge, `changegate_test_up`, that the test flips.

    It stands for a service Prometheus scrapes: 1 while healthy, 0 once failing.
    """

    def __init__(self) -> None:
        self.healthy = True
        self.scrapes = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def target(self) -> str:
        """host:port, as a Prometheus static_config names it."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def page(self) -> bytes:
        value = 1 if self.healthy else 0
        return (
            "# HELP changegate_test_up Whether the test's service is healthy.\n"
            "# TYPE changegate_test_up gauge\n"
            f"changegate_test_up {value}\n"
        ).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = endpoint.page()
                endpoint.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> MetricsEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class Component:
    """One Prometheus or Alertmanager process: started, polled until ready, stopped."""

    def __init__(self, name: str, binary: Path, args: Sequence[str], workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log = workdir / f"{name}.log"
        self._command = [str(binary), *args, f"--web.listen-address=127.0.0.1:{self.port}"]
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Component:
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                self._command, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for(self._up, timeout=READY_TIMEOUT, message=f"{self.name} ready")
        except AssertionError as error:
            self.__exit__()
            raise AssertionError(f"{error}\n{self.name} log:\n{self.log_tail()}") from None
        return self

    def _up(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self._process.returncode}")
        return _ready(self.url)

    def __exit__(self, *exc: object) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def alertmanager_config(
    webhook_url: str, group_by: Sequence[str] = ("alertname",), send_resolved: bool = True
) -> dict[str, Any]:
    """One route to one webhook receiver, with waits short enough for a test."""
    return {
        "route": {
            "receiver": "test",
            "group_by": list(group_by),
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "test",
                "webhook_configs": [{"url": webhook_url, "send_resolved": send_resolved}],
            }
        ],
    }


def alertmanager(
    workdir: Path,
    config: dict[str, Any],
    cluster_port: int | None = None,
    peers: Sequence[int] = (),
) -> Component:
    """An Alertmanager; alone (no cluster_port) or a member gossiping with `peers`."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(yaml.safe_dump(config))
    args = ["--config.file=alertmanager.yml", "--storage.path=data", "--log.level=debug"]
    if cluster_port is None:
        args.append("--cluster.listen-address=")
    else:
        # The advertised address must be given: Alertmanager refuses to guess
        # one from a loopback listen address. A short peer timeout keeps the
        # second member's wait (before it sends what the first has not) brief.
        address = f"127.0.0.1:{cluster_port}"
        args += [
            f"--cluster.listen-address={address}",
            f"--cluster.advertise-address={address}",
            "--cluster.peer-timeout=2s",
            *(f"--cluster.peer=127.0.0.1:{peer}" for peer in peers),
        ]
    return Component(workdir.name, binaries("alertmanager") / "alertmanager", args, workdir)


@contextmanager
def alertmanager_pair(workdir: Path, config: dict[str, Any]) -> Iterator[list[Component]]:
    """Two Alertmanagers clustered over 127.0.0.1 (each names the other as peer)."""
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        members = [
            stack.enter_context(
                alertmanager(workdir / f"alertmanager-{i}", config, port, [ports[1 - i]])
            )
            for i, port in enumerate(ports)
        ]
        wait_for(
            lambda: all(len(cluster_peers(member)) == 2 for member in members),
            timeout=READY_TIMEOUT,
            message="both Alertmanagers see two cluster peers",
        )
        yield members


def cluster_peers(member: Component) -> list[dict[str, Any]]:
    """The peers an Alertmanager's cluster status lists (itself included)."""
    status = get_json(member.url + "/api/v2/status")
    peers: list[dict[str, Any]] = status["cluster"].get("peers") or []
    return peers


def prometheus_config(
    targets: Sequence[str], alertmanagers: Sequence[Component], rule_file: str
) -> dict[str, Any]:
    """Scrape `targets` every second, evaluate `rule_file`, alert every Alertmanager."""
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [rule_file],
        "scrape_configs": [{"job_name": "service", "static_configs": [{"targets": list(targets)}]}],
        "alerting": {
            "alertmanagers": [
                {
                    "static_configs": [
                        {"targets": [m.url.removeprefix("http://") for m in alertmanagers]}
                    ]
                }
            ]
        },
    }


def prometheus(workdir: Path, config: dict[str, Any], rules: dict[str, Any]) -> Component:
    """A Prometheus with `config` and one rule file (`rules`, the `groups:` document)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "rules.yml").write_text(yaml.safe_dump(rules))
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    args = ["--config.file=prometheus.yml", "--storage.tsdb.path=data"]
    return Component("prometheus", binaries("prometheus") / "prometheus", args, workdir)
