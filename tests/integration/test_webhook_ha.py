"""Two webhook processes behind a TCP load balancer: killing one loses no admission.

The chart's webhook configurations are pointed at haproxy (TLS passes through
to the processes), personas send a stream of admission requests through the
API server, and one process is killed with SIGKILL in the middle of it. Every
request must still get its right answer, from the survivor.

The kill happens between two requests of every client, never while one is in
flight: the API server does not retry a webhook call, so no balancer working
at the TCP level can save the request a dying process was answering. What a
balancer can and must do is what this test checks: the API server's pooled
connections to the dead process break, new ones go to the live one before the
health check notices anything, and no request fails on the way.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.conftest import Governed
from tests.support.loadbalancer import Backend, TcpLoadBalancer
from tests.support.localcluster import LocalCluster, free_port
from tests.support.operator import Installation, RoleProcess, install_chart
from tests.support.polling import wait_for
from tests.support.scenario import IMAGE_V2, IMAGE_V3, change_request, deployment
from tests.support.webhooks import admission_decisions, webhook_process

pytestmark = pytest.mark.integration

WORKLOAD = "payments-api"

CLIENTS = 4
ROUNDS = 36
KILL_BEFORE_ROUND = 12


@dataclass(frozen=True)
class Request:
    """One admission request the stream sends, and the answer it must get."""

    what: str
    patch: list[dict[str, Any]]
    allowed: bool
    denial: str = ""


STREAM = (
    Request(
        "approved rollout",
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": IMAGE_V2}],
        allowed=True,
    ),
    Request(
        "rollout of an undeclared image",
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": IMAGE_V3}],
        allowed=False,
        denial=f"expected {IMAGE_V2}, actual {IMAGE_V3}",
    ),
    Request("scale", [{"op": "replace", "path": "/spec/replicas", "value": 3}], allowed=True),
)


def send(apps: client.AppsV1Api, namespace: str, request: Request) -> str | None:
    """Send one request through the API server (dry run); None if it got its right answer."""
    try:
        apps.patch_namespaced_deployment(WORKLOAD, namespace, request.patch, dry_run="All")
    except ApiException as error:
        body = str(error.body)
        if not request.allowed and error.status == 403 and request.denial in body:
            return None
        return f"{request.what}: HTTP {error.status}: {body[:400]}"
    except Exception as error:  # a dropped connection is a lost admission too
        return f"{request.what}: {error!r}"
    return None if request.allowed else f"{request.what}: allowed, expected a refusal"


@dataclass
class Balanced:
    """Two webhook replicas behind haproxy, which the webhook configurations now name."""

    namespace: str
    balancer: TcpLoadBalancer
    replicas: tuple[RoleProcess, ...]


def probe(cluster: LocalCluster, namespace: str) -> None:
    """One admission request through the API server, with no effect (dry run)."""
    cluster.kubectl(
        "-n",
        namespace,
        "set",
        "image",
        f"deployment/{WORKLOAD}",
        f"api={IMAGE_V3}",
        "--dry-run=server",
        user="product-dev-1",
        check=False,
    )


def serves(cluster: LocalCluster, namespace: str, processes: tuple[RoleProcess, ...]) -> bool:
    """Whether the API server now sends admission requests to one of `processes`."""
    before = sum(admission_decisions(p) for p in processes)
    probe(cluster, namespace)
    return sum(admission_decisions(p) for p in processes) > before


def burst(apps: list[client.AppsV1Api], namespace: str) -> list[str | None]:
    """A few requests at once, so that the API server opens several connections."""
    with ThreadPoolExecutor(len(apps)) as pool:
        return list(pool.map(lambda a: send(a, namespace, STREAM[2]), apps))


@pytest.fixture
def approved(cluster: LocalCluster, installation: Installation, namespace: str) -> str:
    """A Deployment, created before its namespace was governed, so no change was needed."""
    cluster.kubectl("apply", "-f", "-", input=deployment(namespace))
    return namespace


@pytest.fixture
def balanced(
    cluster: LocalCluster,
    installation: Installation,
    approved: str,
    governed: Governed,
    tmp_path: Path,
) -> Iterator[Balanced]:
    """Governed, with an approved change to IMAGE_V2; then two replicas behind haproxy."""
    ns = governed.namespace
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=change_request(ns, "api-1-1-0", IMAGE_V2),
        user="product-dev-1",
    )
    approval = json.dumps({"spec": {"approvals": [{"decision": "Approved"}]}})
    wait_for(
        lambda: (
            cluster.kubectl(
                "-n",
                ns,
                "patch",
                "changerequest",
                "api-1-1-0",
                "--type=merge",
                "-p",
                approval,
                user="change-manager-1",
                check=False,
            ).returncode
            == 0
        ),
        message="the change manager's approval to be accepted",
    )
    original_url = f"https://127.0.0.1:{installation.webhook_port}"
    session_webhook = (installation.webhook,)

    def restore() -> None:
        # Later tests rely on the session's webhook: give it back before anything stops.
        install_chart(cluster, original_url, installation.cert.ca_pem)
        wait_for(
            lambda: serves(cluster, ns, session_webhook),
            message="the API server to call the session's webhook again",
        )

    with contextlib.ExitStack() as stack:
        replicas = tuple(
            stack.enter_context(
                webhook_process(cluster, tmp_path, installation.cert, free_port(), name)
            )
            for name in ("webhook-a", "webhook-b")
        )
        balancer = TcpLoadBalancer(
            tmp_path / "haproxy",
            tuple(
                Backend(p.env["HOSTNAME"], int(p.env["CHANGEGATE_WEBHOOK_PORT"]), p.metrics_port)
                for p in replicas
            ),
        )
        stack.callback(balancer.stop)
        balancer.start()
        stack.callback(restore)
        install_chart(cluster, balancer.url, installation.cert.ca_pem)
        wait_for(
            lambda: serves(cluster, ns, replicas),
            message="the API server to call the replicas through haproxy",
        )
        yield Balanced(ns, balancer, replicas)


def test_killing_a_webhook_replica_loses_no_admission(
    cluster: LocalCluster, balanced: Balanced
) -> None:
    ns = balanced.namespace
    apps = [client.AppsV1Api(cluster.persona_client("product-dev-1")) for _ in range(CLIENTS)]

    # Both replicas take part before the kill: the balancer spreads connections.
    wait_for(
        lambda: not any(burst(apps, ns)) and all(admission_decisions(p) for p in balanced.replicas),
        message="both replicas to answer admission requests",
    )

    killed: list[RoleProcess] = []
    survivor_at_kill: list[float] = []

    def kill_busiest() -> None:
        counts = [admission_decisions(p) for p in balanced.replicas]
        victim = max(range(len(counts)), key=counts.__getitem__)
        balanced.replicas[victim].kill()
        killed.append(balanced.replicas[victim])
        survivor_at_kill.append(counts[1 - victim])

    all_paused = threading.Barrier(CLIENTS, action=kill_busiest, timeout=60)

    def client_stream(index: int) -> list[str | None]:
        answers = []
        for round_ in range(ROUNDS):
            if round_ == KILL_BEFORE_ROUND:
                all_paused.wait()
            answers.append(send(apps[index], ns, STREAM[(index + round_) % len(STREAM)]))
        return answers

    with ThreadPoolExecutor(CLIENTS) as pool:
        streams = list(pool.map(client_stream, range(CLIENTS)))

    answers = [a for stream in streams for a in stream]
    assert len(answers) == CLIENTS * ROUNDS
    lost = [a for a in answers if a is not None]
    assert not lost, f"{len(lost)} of {len(answers)} admissions lost or wrong:\n" + "\n".join(
        lost[:10]
    )

    (victim,) = killed
    (survivor,) = [p for p in balanced.replicas if p is not victim]
    assert victim.process is not None
    assert victim.process.returncode == -9
    after_kill = CLIENTS * (ROUNDS - KILL_BEFORE_ROUND)
    assert admission_decisions(survivor) - survivor_at_kill[0] >= after_kill
    victim_name = victim.env["HOSTNAME"]
    wait_for(
        lambda: balanced.balancer.server_status()[victim_name] == "DOWN",
        message=f"haproxy to mark {victim_name} down",
    )
