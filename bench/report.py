"""`make bench-report`: how fast, and in how much memory, the reports read a large cluster.

A local control plane with changegate's CRDs only: the reports need no operator,
so none runs (no controller, no webhook), and kube-controller-manager is stopped
too. N DeploymentRecords and N ChangeRequests over 200 services, spread over the
last year, are written straight into etcd exactly as the API server stores them
(uid, creation time, managedFields), 128 to a transaction with several in flight:
creating them through the API server ran at about 60 objects a second on this
machine, all of it the API server's CPU (validation, managed fields), none of it
what the benchmark measures. The API server's watch cache takes them from etcd's
watch; the benchmark waits until a list counts them all and the API server is
idle. Then `changegate report compliance` and `changegate report dora` run for
that year, each as its own process, as the admin. Prints figures; it is not a
test. The last line: `report: <X> s for <N> records, <M> MiB peak` (both reports
together; the peak is the larger of the two processes' maximum RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from tests.support.localcluster import LocalCluster, ensure_binaries

from bench.load import create_all, process_cpu

SERVICES = 200
YEAR = datetime.timedelta(days=365)
TXN_OPS = 128  # etcd's --max-txn-ops default
IN_FLIGHT = 8


def namespace_of(service: int) -> str:
    return f"report-svc-{service:03d}"


def namespace(service: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace_of(service)}}


def moment(start: datetime.datetime, serial: int, count: int) -> datetime.datetime:
    return start + YEAR * (serial / count)


def stamp(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def change_request(serial: int, count: int, start: datetime.datetime) -> dict[str, Any]:
    service = serial % SERVICES
    emergency = serial % 50 == 0
    spec: dict[str, Any] = {
        "service": f"svc-{service:03d}",
        "type": "Emergency" if emergency else "Normal",
        "summary": f"Roll out api 1.{serial}.0",
        "targets": [
            {
                "kind": "Deployment",
                "name": "api",
                "images": [{"container": "api", "image": f"registry.example.com/api:1.{serial}.0"}],
            }
        ],
        "source": {
            "repository": f"https://git.example.com/svc-{service:03d}/api",
            "commit": f"{serial:040x}",
            "commitTime": stamp(moment(start, serial, count) - datetime.timedelta(hours=3)),
        },
        "requester": "product-dev-1",
        "approvals": [
            {"approver": "change-manager-1", "decision": "Approved",
             "time": stamp(moment(start, serial, count) - datetime.timedelta(hours=1))}
        ],
    }  # fmt: skip
    if emergency:
        spec["emergencyReason"] = "payments failing"
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ChangeRequest",
        "metadata": {"name": f"chg-{serial}", "namespace": namespace_of(service)},
        "spec": spec,
    }


def deployment_record(serial: int, count: int, start: datetime.datetime) -> dict[str, Any]:
    service = serial % SERVICES
    finish = moment(start, serial, count)
    rollback = serial % 40 == 7
    spec: dict[str, Any] = {
        "service": f"svc-{service:03d}",
        "environment": "production",
        "namespace": namespace_of(service),
        "production": True,
        "workload": {"kind": "Deployment", "name": "api"},
        "revision": serial + 1,
        "images": [{"container": "api", "image": f"registry.example.com/api:1.{serial}.0",
                    "digest": f"sha256:{serial:064x}"}],
        "admission": "Rollback" if rollback else "Change",
        "deployer": "product-dev-1",
        "startTime": stamp(finish - datetime.timedelta(minutes=5)),
        "finishTime": stamp(finish),
        "result": "Failed" if serial % 30 == 11 else "Succeeded",
        "leadTimeSeconds": 3 * 3600,
    }  # fmt: skip
    if not rollback:
        spec |= {
            "changeRequest": {"name": f"chg-{serial}", "namespace": namespace_of(service)},
            "changeType": "Emergency" if serial % 50 == 0 else "Normal",
            "requester": "product-dev-1",
            "approvers": ["change-manager-1"],
            "source": {
                "repository": f"https://git.example.com/svc-{service:03d}/api",
                "commit": f"{serial:040x}",
            },
        }
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "DeploymentRecord",
        "metadata": {"name": f"rec-{serial}"},
        "spec": spec,
    }


def managed(fields: dict[str, Any]) -> dict[str, Any]:
    return {f"f:{k}": managed(v) if isinstance(v, dict) else {} for k, v in fields.items()}


def served(body: dict[str, Any], serial: int, created: datetime.datetime) -> dict[str, Any]:
    """The object as the API server stores and returns it."""
    when = stamp(created)
    body["metadata"] |= {
        "uid": str(uuid.UUID(int=serial + 1)),
        "generation": 1,
        "creationTimestamp": when,
        "managedFields": [
            {"manager": "changegate", "operation": "Update", "apiVersion": body["apiVersion"],
             "time": when, "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": managed(body["spec"])}}
        ],
    }  # fmt: skip
    return body


def etcd_key(body: dict[str, Any]) -> str:
    plural = body["kind"].lower() + "s"
    namespace = body["metadata"].get("namespace")
    where = f"{namespace}/" if namespace else ""
    return f"/registry/changegate.io/{plural}/{where}{body['metadata']['name']}"


def etcd_url(cluster: LocalCluster) -> str:
    config = cluster.workdir / "kwok" / "clusters" / cluster.name / "kwok.yaml"
    found = re.search(r"--etcd-servers=(\S+)", config.read_text())
    if found is None:
        raise SystemExit(f"no --etcd-servers in {config}")
    return found.group(1).split(",")[0]


def put(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestPut": {
            "key": base64.b64encode(etcd_key(body).encode()).decode(),
            "value": base64.b64encode(json.dumps(body, separators=(",", ":")).encode()).decode(),
        }
    }


async def _write(url: str, bodies: Iterator[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession(url) as session:

        async def writer() -> None:
            while batch := list(itertools.islice(bodies, TXN_OPS)):
                transaction = {"success": [put(b) for b in batch]}
                async with session.post("/v3/kv/txn", json=transaction) as response:
                    if response.status != 200:
                        raise RuntimeError(f"etcd txn: {response.status} {await response.text()}")

        await asyncio.gather(*(writer() for _ in range(IN_FLIGHT)))


def objects(count: int, start: datetime.datetime) -> Iterator[dict[str, Any]]:
    for serial in range(count):
        created = moment(start, serial, count) - datetime.timedelta(hours=2)
        yield served(change_request(serial, count, start), serial, created)
        yield served(deployment_record(serial, count, start), count + serial, created)


def listed(cluster: LocalCluster, plural: str) -> int:
    """How many objects of a kind a list from the API server counts now."""
    out = cluster.kubectl("get", "--raw", f"/apis/changegate.io/v1alpha1/{plural}?limit=1")
    page = json.loads(out.stdout)
    return len(page["items"]) + int(page["metadata"].get("remainingItemCount") or 0)


def component_pids(cluster: LocalCluster) -> dict[str, int]:
    pids = cluster.workdir / "kwok" / "clusters" / cluster.name / "pids"
    return {path.stem: int(path.read_text().strip()) for path in pids.glob("*.pid")}


def stop_controller_manager(cluster: LocalCluster) -> None:
    """The reports need no controller; kube-controller-manager's garbage collector and
    quota controllers watch every kind, and would spend the CPU the reports are measured
    on building their own graphs of 200,000 objects."""
    pid = component_pids(cluster).get("kube-controller-manager")
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def settle(cluster: LocalCluster, deadline: float) -> None:
    """Wait until the API server and etcd use less than a fifth of a core (over 2 s):
    the watch cache has taken in every object and nothing else is still at work."""
    pids = [p for name, p in component_pids(cluster).items() if name in ("kube-apiserver", "etcd")]
    while time.monotonic() < deadline:
        before = sum(process_cpu(p) for p in pids)
        time.sleep(2)
        if sum(process_cpu(p) for p in pids) - before < 0.4:
            return
    print("the control plane was still busy when the reports started", flush=True)


def load(cluster: LocalCluster, count: int, start: datetime.datetime) -> float:
    began = time.monotonic()
    stop_controller_manager(cluster)
    create_all(
        cluster.kubeconfig,
        Path(tempfile.mkdtemp(prefix="bench-report-")),
        [namespace(s) for s in range(SERVICES)],
    )
    asyncio.run(_write(etcd_url(cluster), objects(count, start)))
    deadline = time.monotonic() + 600
    for plural in ("changerequests", "deploymentrecords"):
        while (seen := listed(cluster, plural)) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"the API server lists {seen} {plural} of {count}")
            time.sleep(1)
    settle(cluster, deadline)
    return time.monotonic() - began


@dataclass(frozen=True)
class Run:
    """One report's figures: wall time, its process's maximum RSS and CPU, and the CPU
    the API server spent meanwhile (on this 2-core machine the two share the cores)."""

    seconds: float
    rss_mib: float
    own_cpu: float
    server_cpu: float


def run_report(cluster: LocalCluster, action: str, since: str, until: str) -> Run:
    """One report as its own process, as the admin, its JSON written to a file."""
    server = component_pids(cluster)["kube-apiserver"]
    server_before, began = process_cpu(server), time.monotonic()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from changegate.cli import main; sys.exit(main())",
             "--kubeconfig", str(cluster.kubeconfig), "report", action, "--since", since,
             "--until", until, "-o", "json"],
            stdout=out,
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise SystemExit(f"report {action} failed: exit {process.returncode}")
    return Run(
        time.monotonic() - began,
        usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
        process_cpu(server) - server_before,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000, help="of each kind")
    count = parser.parse_args().records
    until = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    start = until - YEAR
    with LocalCluster("bench-report", ensure_binaries()) as cluster:
        for path in sorted(Path("crds").glob("*.yaml")):
            cluster.kubectl("apply", "--server-side", "-f", str(path))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        print(f"loaded {2 * count} objects in {load(cluster, count, start):.0f} s", flush=True)
        total, peak = 0.0, 0.0
        for action in ("compliance", "dora"):
            run = run_report(cluster, action, stamp(start), stamp(until))
            total, peak = total + run.seconds, max(peak, run.rss_mib)
            print(
                f"report {action}: {run.seconds:.2f} s, {run.rss_mib:.0f} MiB (its CPU"
                f" {run.own_cpu:.1f} s, the API server's {run.server_cpu:.1f} s)",
                flush=True,
            )
        print(f"report: {total:.1f} s for {2 * count} records, {peak:.0f} MiB peak")


if __name__ == "__main__":
    main()
