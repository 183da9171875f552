"""`make bench-admission`: what one webhook process costs per admission, against a floor.

A local control plane, the CRDs, 1,000 governed namespaces with a ServiceOnCall
each and 10,000 ChangeRequests; the chart installed as the tests install it;
one `python -m changegate webhook` with those in its indexes. AdmissionReview
v1 requests go over TLS on loopback straight to it (no API server in between):
throughput at saturation (wrk), p50/p99 latency at a steady 200 requests a
second (asyncio), CPU per request and resident memory from /proc. Then the same
against the floor, an allow-all server on the webhook's own stack (aiohttp, TLS,
the same review decoding; bench/floor.py), and against the allow-all Kopf
webhook the role ran on before (bench/floor_kopf.py) as a second reference.
The webhook runs on CPU 0 and the load generators on CPU 1. It prints figures;
it is not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.localcluster import (
    REPO,
    LocalCluster,
    ensure_binaries,
    free_port,
    interrupt_on_sigterm,
)
from tests.support.operator import (
    WEBHOOK_SA,
    RoleProcess,
    install_chart,
    role_env,
    token_kubeconfig,
)
from tests.support.polling import wait_for
from tests.support.tls import ServingCertificate, issue_serving_certificate
from tests.support.webhooks import webhook_process

from bench import objects
from bench.load import (
    create_all,
    paced,
    pin,
    process_cpu,
    process_rss,
    saturate,
    trust,
    wrong_answers,
)
from bench.objects import Review

SERVER_CPU, LOAD_CPU = 0, 1


@dataclass(frozen=True)
class Figures:
    """What one server did under the two loads."""

    name: str
    saturated_rate: float
    saturated_cpu_per_request: float  # CPU seconds of the server per request
    saturation_server_cpu: float  # share of its core the server used
    saturation_generator_cpu: float  # share of its core the load generator used
    p50: float
    p99: float
    paced_rate: float
    paced_cpu_per_request: float
    paced_generator_cpu: float
    errors: int
    rss: float
    peak_rss: float


def measure(
    name: str,
    pid: int,
    url: str,
    cert: ServingCertificate,
    reviews: list[Review],
    args: argparse.Namespace,
) -> Figures:
    context = trust(cert.ca_file)
    pin(pid, SERVER_CPU)
    workdir = Path(args.workdir)
    # Warm-up: imports, caches and connections, then the clock starts.
    saturate(url, reviews, workdir, 3, args.connections, LOAD_CPU)
    cpu = process_cpu(pid)
    saturated = saturate(url, reviews, workdir, args.seconds, args.connections, LOAD_CPU)
    saturated_cpu = process_cpu(pid) - cpu
    cpu = process_cpu(pid)
    steady = paced(url, context, reviews, args.rate, args.seconds * 2, LOAD_CPU)
    steady_cpu = process_cpu(pid) - cpu
    rss, peak = process_rss(pid)
    return Figures(
        name=name,
        saturated_rate=saturated.rate,
        saturated_cpu_per_request=saturated_cpu / saturated.requests,
        saturation_server_cpu=saturated_cpu / saturated.seconds,
        saturation_generator_cpu=saturated.generator_cpu / saturated.seconds,
        p50=steady.percentile(50),
        p99=steady.percentile(99),
        paced_rate=len(steady.latencies) / steady.seconds,
        paced_cpu_per_request=steady_cpu / len(steady.latencies),
        paced_generator_cpu=steady.generator_cpu / steady.seconds,
        errors=saturated.errors + steady.errors,
        rss=rss,
        peak_rss=peak,
    )


def report(figures: Figures) -> None:
    f = figures
    print(
        f"  {f.name}: saturation {f.saturated_rate:,.0f} req/s"
        f" ({f.saturated_cpu_per_request * 1e6:,.0f} us CPU/request,"
        f" server used {f.saturation_server_cpu:.0%} of its core,"
        f" wrk {f.saturation_generator_cpu:.0%} of its own);"
        f" at {f.paced_rate:,.0f} req/s p50 {f.p50 * 1e3:.2f} ms, p99 {f.p99 * 1e3:.2f} ms"
        f" ({f.paced_cpu_per_request * 1e6:,.0f} us CPU/request,"
        f" client used {f.paced_generator_cpu:.0%} of its core);"
        f" RSS {f.rss:.0f} MiB (peak {f.peak_rss:.0f}); errors {f.errors}"
    )


@contextlib.contextmanager
def floor_process(
    cluster: LocalCluster, workdir: Path, cert: ServingCertificate, port: int, module: str
) -> Iterator[subprocess.Popen[bytes]]:
    """An allow-all floor (`bench.floor`, `bench.floor_kopf`) as the webhook, once it answers."""
    name = module.rsplit(".", 1)[-1]
    env = role_env(token_kubeconfig(cluster, WEBHOOK_SA, workdir / f"{name}.kubeconfig"))
    env.update(
        {
            "CHANGEGATE_WEBHOOK_PORT": str(port),
            "CHANGEGATE_WEBHOOK_CERT_FILE": str(cert.cert_file),
            "CHANGEGATE_WEBHOOK_KEY_FILE": str(cert.key_file),
            "PYTHONPATH": str(REPO),
        }
    )
    with (workdir / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module], env=env, stdout=log, stderr=log, cwd=REPO
        )
    try:
        probe = objects.reviews(1, 1)
        url = f"https://127.0.0.1:{port}"

        # The probe is a request to allow, so the floor answers it rightly once it serves.
        def serving() -> bool:
            if process.poll() is not None:
                log = (workdir / f"{name}.log").read_text(errors="replace")
                raise SystemExit(f"the floor {module} exited:\n{log[-3000:]}")
            return not wrong_answers(url, trust(cert.ca_file), probe)

        wait_for(serving, timeout=60, message=f"the allow-all floor {module} to answer")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def populate(
    cluster: LocalCluster, workdir: Path, services: int, changes: int, finished: int = 0
) -> None:
    """`changes` ChangeRequests, of which `finished` are cancelled or rejected."""
    now = datetime.datetime.now(datetime.UTC)
    started = time.monotonic()
    create_all(cluster.kubeconfig, workdir, [objects.namespace(s) for s in range(services)])
    per_service = max(1, (changes - finished) // services)
    kinds = [objects.service_on_call(s) for s in range(services)]
    kinds += [
        objects.change_request(s, minor % objects.CHANGES_PER_SERVICE, now)
        for minor in range(per_service)
        for s in range(services)
    ]
    kinds += [objects.finished_change(i % services, i, now) for i in range(finished)]
    create_all(cluster.kubeconfig, workdir, kinds)
    elapsed = time.monotonic() - started
    print(
        f"created {services:,} namespaces, {services:,} ServiceOnCalls and"
        f" {services * per_service + finished:,} ChangeRequests ({finished:,} finished)"
        f" in {elapsed:.1f}s ({(2 * services + services * per_service + finished) / elapsed:,.0f}"
        " objects/s)"
    )


def apply_crds(cluster: LocalCluster) -> None:
    files = sorted((REPO / "crds").glob("*.yaml"))
    for path in files:
        cluster.kubectl("apply", "--server-side", "-f", str(path))
    for path in files:
        name = cluster.kubectl("get", "-f", str(path), "-o", "jsonpath={.metadata.name}").stdout
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="changegate-bench-") as scratch:
        args.workdir = scratch
        return bench(args)


def bench(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    interrupt_on_sigterm()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    reviews = objects.reviews(args.services, 200)
    with LocalCluster(f"bench-{os.getpid()}", ensure_binaries()) as cluster:
        print(f"local control plane started in {cluster.started_seconds:.1f}s")
        apply_crds(cluster)
        populate(cluster, workdir, args.services, args.changes, args.finished)
        cert = issue_serving_certificate(workdir / "tls")
        port = free_port()
        install_chart(cluster, f"https://127.0.0.1:{port}", cert.ca_pem)
        url = f"https://127.0.0.1:{port}"

        started = time.monotonic()
        ready = False
        try:
            with webhook_process(
                cluster, workdir, cert, port, "webhook", ready_timeout=args.ready_timeout
            ) as hook:
                ready = True
                warm = time.monotonic() - started
                pid = pid_of(hook)
                print(
                    f"webhook ready with warm indexes in {warm:.1f}s,"
                    f" RSS {process_rss(pid)[0]:.0f} MiB"
                )
                wrong = wrong_answers(url, trust(cert.ca_file), reviews)
                if wrong:
                    print(f"{len(wrong)} of {len(reviews)} wrong answers, e.g. {wrong[:3]}")
                    return 1
                print(f"all {len(reviews)} distinct requests answered as expected")
                webhook = measure("changegate", pid, url, cert, reviews, args)
                report(webhook)
        except AssertionError:
            if ready:
                raise
            print(
                f"admission: webhook not ready {time.monotonic() - started:.0f}s after start"
                f" with {args.services:,} ServiceOnCalls and {args.changes:,} ChangeRequests"
                "; no figures"
            )
            return 1

        with floor_process(cluster, workdir, cert, port, "bench.floor") as floor:
            base = measure("allow-all floor (aiohttp)", floor.pid, url, cert, reviews, args)
            report(base)
        with floor_process(cluster, workdir, cert, port, "bench.floor_kopf") as floor:
            kopf_floor = measure("allow-all Kopf floor", floor.pid, url, cert, reviews, args)
            report(kopf_floor)

    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ratio = webhook.saturated_cpu_per_request / base.saturated_cpu_per_request
    paced_ratio = webhook.paced_cpu_per_request / base.paced_cpu_per_request
    print(
        f"CPU per request: {ratio:.2f}x the floor at saturation, {paced_ratio:.2f}x at"
        f" {args.rate:.0f} req/s; latency at {args.rate:.0f} req/s is measured from when"
        " each request was due, by a Python client (it adds its own few hundred us)"
    )
    kopf_ratio = webhook.saturated_cpu_per_request / kopf_floor.saturated_cpu_per_request
    print(f"CPU per request: {kopf_ratio:.2f}x the Kopf floor at saturation")
    print(
        f"admission: {webhook.saturated_rate:,.0f} req/s, p99 {webhook.p99 * 1e3:.1f} ms at"
        f" {args.rate:.0f} req/s, {ratio:.2f}x floor CPU per request, RSS {webhook.rss:.0f} MiB"
    )
    return 0


def pid_of(process: RoleProcess) -> int:
    assert process.process is not None
    return process.process.pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.admission", description=__doc__)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=10000)
    parser.add_argument(
        "--finished",
        type=int,
        default=0,
        help="of --changes, how many are finished (the memory scenario: 100000 with 90000)",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="steady rate, req/s")
    parser.add_argument("--seconds", type=int, default=10, help="length of the saturation run")
    parser.add_argument("--connections", type=int, default=16, help="wrk's connections")
    parser.add_argument(
        "--ready-timeout", type=float, default=1800, help="seconds to wait for warm indexes"
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
