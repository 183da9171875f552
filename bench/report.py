"""`make bench-report`: how fast, and in how much memory, the reports read a large cluster.

A local control plane with changegate's CRDs only (the reports need no
operator): N DeploymentRecords and N ChangeRequests over 200 services, spread
over the last year, created as the admin with many requests in flight. Then
`changegate report compliance` and `changegate report dora` run for that year,
each as its own process, as the admin. Prints figures; it is not a test. The
last line: `report: <X> s for <N> records, <M> MiB peak` (both reports
together; the peak is the larger of the two processes' maximum RSS).
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support.localcluster import LocalCluster, ensure_binaries

from bench.load import create_all

SERVICES = 200
YEAR = datetime.timedelta(days=365)


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


def load(cluster: LocalCluster, count: int, start: datetime.datetime) -> float:
    began = time.monotonic()
    create_all(
        cluster.kubeconfig,
        Path(tempfile.mkdtemp(prefix="bench-report-")),
        [namespace(s) for s in range(SERVICES)],
    )
    objects = [change_request(i, count, start) for i in range(count)]
    objects += [deployment_record(i, count, start) for i in range(count)]
    create_all(cluster.kubeconfig, Path(tempfile.mkdtemp(prefix="bench-report-")), objects)
    return time.monotonic() - began


def run_report(kubeconfig: Path, action: str, since: str, until: str) -> tuple[float, float]:
    """One report as its own process: its wall time and maximum RSS in MiB."""
    began = time.monotonic()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from changegate.cli import main; sys.exit(main())",
             "--kubeconfig", str(kubeconfig), "report", action, "--since", since, "--until",
             until, "-o", "json"],
            stdout=out,
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise SystemExit(f"report {action} failed: exit {process.returncode}")
    return time.monotonic() - began, usage.ru_maxrss / 1024


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
            seconds, rss = run_report(cluster.kubeconfig, action, stamp(start), stamp(until))
            total, peak = total + seconds, max(peak, rss)
            print(f"report {action}: {seconds:.2f} s, {rss:.0f} MiB", flush=True)
        print(f"report: {total:.1f} s for {2 * count} records, {peak:.0f} MiB peak")


if __name__ == "__main__":
    main()
