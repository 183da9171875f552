"""`make bench-lifecycle`: how fast the controller closes changes after their rollouts finish.

On a local control plane with changegate installed by its chart, 100 governed
Deployments are rolled out at once, each under its own approved ChangeRequest.
Two watches note, as events arrive, when each Deployment's status first shows
its rollout complete (the `kubectl rollout status` test) and when its change
first shows Completed with a DeploymentRecord written; the difference is the
close latency. Prints figures; it is not a test.
"""

from __future__ import annotations

import concurrent.futures
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from tests.integration.conftest import service_on_call
from tests.support.localcluster import LocalCluster, ensure_binaries
from tests.support.operator import Installation
from tests.support.polling import wait_for

COUNT = 100
NS = "bench-prod"
V1 = "registry.example.com/bench/app:1.0.0"
V2 = "registry.example.com/bench/app:2.0.0"


def deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": V1}]},
            },
        },
    }


def change(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ChangeRequest",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "service": "bench",
            "type": "Normal",
            "summary": f"Roll out {V2} to {name}",
            "targets": [
                {"kind": "Deployment", "name": name, "images": [{"container": "app", "image": V2}]}
            ],
            "source": {
                "repository": "https://git.example.com/bench/app",
                "commit": "0123456789abcdef",
                "commitTime": "2026-11-21T00:00:00Z",
            },
        },
    }


def complete(d: Any) -> bool:
    s = d.status
    want = d.spec.replicas
    return bool(
        (s.observed_generation or 0) >= d.metadata.generation
        and d.spec.template.spec.containers[0].image == V2
        and (s.updated_replicas or 0) == want
        and (s.replicas or 0) == want
        and (s.available_replicas or 0) == want
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    names = [f"app-{i:03d}" for i in range(COUNT)]
    with LocalCluster("bench-lifecycle", ensure_binaries()) as cluster:
        for path in sorted(Path("crds").glob("*.yaml")):
            cluster.kubectl("apply", "--server-side", "-f", str(path))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        installation = Installation.install(
            cluster, Path(tempfile.mkdtemp(prefix="bench-lifecycle-"))
        )
        try:
            run(cluster, installation, names)
        finally:
            installation.stop()


def run(cluster: LocalCluster, installation: Installation, names: list[str]) -> None:
    admin = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    dev = config.new_client_from_config(
        config_file=str(cluster.persona_kubeconfig("product-dev-1"))
    )
    manager = config.new_client_from_config(
        config_file=str(cluster.persona_kubeconfig("change-manager-1"))
    )
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    cluster.kubectl(
        "-n", NS, "create", "rolebinding", "edit", "--clusterrole=edit", "--group=team-payments"
    )
    pool = concurrent.futures.ThreadPoolExecutor(16)
    list(pool.map(lambda n: apps.create_namespaced_deployment(NS, deployment(n)), names))
    wait_for(
        lambda: (
            sum(
                1
                for d in apps.list_namespaced_deployment(NS).items
                if (d.status.available_replicas or 0) == 1
            )
            == COUNT
        ),
        timeout=300,
        message="100 deployments available",
    )
    soc = service_on_call(NS, "bench")
    cluster.kubectl("apply", "-f", "-", input=json.dumps(soc), user="platform-admin-1")
    cluster.kubectl("label", "namespace", NS, "changegate.io/governed=true")

    dev_crs = client.CustomObjectsApi(dev)
    list(
        pool.map(
            lambda n: dev_crs.create_namespaced_custom_object(
                "changegate.io", "v1alpha1", NS, "changerequests", change(n)
            ),
            names,
        )
    )
    approve = [{"op": "add", "path": "/spec/approvals/-", "value": {"decision": "Approved"}}]
    manager_crs = client.CustomObjectsApi(manager)
    list(
        pool.map(
            lambda n: manager_crs.patch_namespaced_custom_object(
                "changegate.io",
                "v1alpha1",
                NS,
                "changerequests",
                n,
                approve,
                _content_type="application/json-patch+json",
            ),
            names,
        )
    )
    crs = client.CustomObjectsApi(admin)

    def phases() -> dict[str, str]:
        items = crs.list_namespaced_custom_object(
            "changegate.io", "v1alpha1", NS, "changerequests"
        )["items"]
        return {i["metadata"]["name"]: (i.get("status") or {}).get("phase", "") for i in items}

    wait_for(
        lambda: list(phases().values()).count("Approved") == COUNT,
        timeout=300,
        message="100 changes approved",
    )

    rolled: dict[str, float] = {}
    closed: dict[str, float] = {}
    stop = threading.Event()

    def resilient(follow: Any) -> Any:
        """Re-open a watch the server cut, until the benchmark is over."""

        def run() -> None:
            while not stop.is_set():
                try:
                    follow()
                except Exception:
                    continue

        return run

    @resilient
    def watch_deployments() -> None:
        w = watch.Watch()
        for event in w.stream(apps.list_namespaced_deployment, NS, timeout_seconds=600):
            obj = event["object"]
            if complete(obj) and obj.metadata.name not in rolled:
                rolled[obj.metadata.name] = time.monotonic()
            if stop.is_set():
                w.stop()

    @resilient
    def watch_changes() -> None:
        w = watch.Watch()
        stream = w.stream(
            crs.list_namespaced_custom_object,
            "changegate.io",
            "v1alpha1",
            NS,
            "changerequests",
            timeout_seconds=600,
        )
        for event in stream:
            obj = event["object"]
            status = obj.get("status") or {}
            records = [r for r in status.get("rollouts", []) if r.get("deploymentRecord")]
            name = obj["metadata"]["name"]
            if status.get("phase") == "Completed" and records and name not in closed:
                closed[name] = time.monotonic()
            if stop.is_set():
                w.stop()

    watchers = [threading.Thread(target=f, daemon=True) for f in (watch_deployments, watch_changes)]
    for t in watchers:
        t.start()
    dev_apps = client.AppsV1Api(dev)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": V2}]}}}}
    started = time.monotonic()
    list(pool.map(lambda n: dev_apps.patch_namespaced_deployment(n, NS, patch), names))
    admitted = time.monotonic() - started
    wait_for(
        lambda: len(closed) == COUNT, timeout=600, interval=0.5, message="100 changes completed"
    )
    stop.set()
    records = json.loads(cluster.kubectl("get", "deploymentrecords", "-o", "json").stdout)["items"]
    latencies = sorted(closed[n] - rolled[n] for n in names if n in rolled)
    p50 = statistics.median(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    pid = installation.controller.process.pid  # type: ignore[union-attr]
    rss = rss_mib(pid)
    print(
        f"rollouts admitted: {COUNT} in {admitted:.1f}s; all closed {max(closed.values()) - started:.1f}s after the first update"
    )
    print(f"DeploymentRecords written: {len([r for r in records if r['spec']['namespace'] == NS])}")
    print(
        f"close latency (rollout complete -> change Completed with its record): p50 {p50:.2f}s, p95 {p95:.2f}s, max {latencies[-1]:.2f}s over {len(latencies)}"
    )
    print(
        f"lifecycle: p95 {p95:.2f} s close latency over {COUNT} rollouts, controller RSS {rss:.0f} MiB"
    )


if __name__ == "__main__":
    main()
