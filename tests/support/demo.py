"""`make demo`: a local control plane, the operator, and a change going through.

Starts the control plane from the cached binaries, applies the CRDs, runs the
operator's controller in the foreground with readable logs, and tells you how
to talk to the cluster. Ctrl-C stops the operator and the control plane.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.localcluster import PERSONAS, REPO, LocalCluster, ensure_binaries, free_port


def banner(text: str) -> None:
    print(f"\n\033[1;36m==> {text}\033[0m", flush=True)


def apply_crds(cluster: LocalCluster) -> None:
    files = sorted((REPO / "crds").glob("*.yaml"))
    for path in files:
        cluster.kubectl("apply", "--server-side", "-f", str(path))
    for path in files:
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(path))
    print(f"{len(files)} CRDs established")


def run_operator(cluster: LocalCluster) -> int:
    env = dict(
        os.environ, KUBECONFIG=str(cluster.kubeconfig), CHANGEGATE_HEALTH_PORT=str(free_port())
    )
    operator = subprocess.Popen([sys.executable, "-m", "changegate", "controller"], env=env)
    try:
        return operator.wait()
    except KeyboardInterrupt:
        operator.send_signal(signal.SIGINT)
        try:
            operator.wait(timeout=15)
        except subprocess.TimeoutExpired:
            operator.kill()
            operator.wait()
        return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    # A SIGTERM (a closed terminal, a CI timeout) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    banner(
        "Starting a local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)"
    )
    cluster = LocalCluster("demo", ensure_binaries())
    try:
        cluster.start()
        print(f"up in {cluster.started_seconds:.1f}s at {cluster.server}")
        banner("Applying changegate's CRDs")
        apply_crds(cluster)
        kubeconfig: Path = cluster.kubeconfig
        banner("Talk to it from another terminal")
        print(f"  export KUBECONFIG={kubeconfig}")
        print(f"  export PATH={cluster.bin_dir}:$PATH")
        print("  kubectl get changegate -A")
        print(f"  personas ({', '.join(PERSONAS)}) have kubeconfigs beside it, e.g.")
        print(f"  kubectl --kubeconfig {cluster.persona_kubeconfig('auditor-1')} auth whoami")
        banner("Running the changegate controller (Ctrl-C stops it and the control plane)")
        return run_operator(cluster)
    except KeyboardInterrupt:
        return 0
    finally:
        banner("Stopping the control plane")
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
