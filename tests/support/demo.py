"""`make demo`: a local control plane, changegate installed by its chart, and changes going through.

Starts the control plane from the cached binaries, installs the chart with its
webhook pointed at this machine, runs the webhook and the controller under the
chart's service accounts, and walks a service through: a standard change
approved at once, a normal change refused, approved by a change manager and
closed, and the evidence. Then it keeps the operator running, with its logs,
until Ctrl-C, which stops everything.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.localcluster import PERSONAS, REPO, LocalCluster, ensure_binaries
from tests.support.operator import Installation
from tests.support.polling import wait_for
from tests.support.scenario import change_template

NS = "payments-prod"
IMAGE = "registry.example.com/payments/payments-api"


def banner(text: str) -> None:
    print(f"\n\033[1;36m==> {text}\033[0m", flush=True)


def say(text: str) -> None:
    print(f"    {text}", flush=True)


def shell(
    cluster: LocalCluster, command: str, user: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command as a persona would type it, and show it with its output."""
    kubeconfig = cluster.kubeconfig if user is None else cluster.persona_kubeconfig(user)
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    env["PATH"] = (
        f"{cluster.bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    )
    print(f"\033[2m[{user or 'admin'}]$\033[0m {command}", flush=True)
    result = subprocess.run(command, shell=True, env=env, capture_output=True, text=True, cwd=REPO)
    for line in (result.stdout + result.stderr).rstrip().splitlines():
        print(f"    {line}")
    if check and result.returncode != 0:
        raise SystemExit(f"demo step failed: {command}")
    return result


def apply_crds(cluster: LocalCluster) -> None:
    files = sorted((REPO / "crds").glob("*.yaml"))
    for path in files:
        cluster.kubectl("apply", "--server-side", "-f", str(path))
    for path in files:
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(path))
    say(f"{len(files)} CRDs established")


def phase(cluster: LocalCluster, name: str) -> str:
    out = cluster.kubectl(
        "-n", NS, "get", "changerequest", name, "-o", "jsonpath={.status.phase}", check=False
    )
    return out.stdout


def walk_through(cluster: LocalCluster) -> None:
    banner("A product team's service: payments-api in namespace payments-prod")
    cluster.kubectl("create", "namespace", NS)
    for group in ("team-payments",):
        cluster.kubectl(
            "-n",
            NS,
            "create",
            "rolebinding",
            f"edit-{group}",
            "--clusterrole=edit",
            f"--group={group}",
        )
    shell(
        cluster,
        f"kubectl -n {NS} create deployment payments-api --image={IMAGE}:1.41.0 --replicas=2",
        "product-dev-1",
    )
    shell(
        cluster,
        f"kubectl -n {NS} rollout status deployment/payments-api --timeout=60s",
        "product-dev-1",
    )
    soc = json.loads(
        cluster.kubectl(
            "create", "--dry-run=client", "-o", "json", "-f", "samples/serviceoncall.yaml"
        ).stdout
    )
    soc["metadata"]["namespace"] = NS
    soc["spec"]["environments"] = [{"name": "production", "namespace": NS, "production": True}]
    soc["spec"]["changePolicy"]["freezes"] = []
    cluster.kubectl("apply", "-f", "-", input=json.dumps(soc), user="platform-admin-1")
    say("ServiceOnCall payments-api declared by the platform team (approvers: change-managers)")
    shell(cluster, f"kubectl label namespace {NS} changegate.io/governed=true")
    wait_for(
        lambda: (
            "denied"
            in shell(
                cluster,
                f"kubectl -n {NS} set image deployment/payments-api payments-api={IMAGE}:9.9.9 --dry-run=server",
                "product-dev-1",
                check=False,
            ).stderr
        ),
        message="the webhook to govern the namespace",
        timeout=30,
    )

    banner("A standard change: a template activated by a change manager")
    template = change_template(NS, name="image-update")
    cluster.kubectl("apply", "-f", "-", input=json.dumps(template), user="product-dev-1")
    say("ChangeTemplate image-update created by the product team (inactive)")
    shell(
        cluster,
        f'kubectl -n {NS} patch changetemplate image-update --type=merge -p \'{{"spec":{{"active":true}}}}\'',
        "change-manager-1",
    )
    shell(
        cluster,
        f"changegate request -n {NS} --name std-1-42-0 --service payments-api --type Standard --template image-update "
        f"--target deployment/payments-api --image payments-api={IMAGE}:1.42.0 "
        "--repository https://git.example.com/payments/api --commit 4f2c9a1e0b7d --commit-time 2026-11-21T08:00:00Z "
        "--wait --until Approved --timeout 60",
        "product-dev-1",
    )
    shell(
        cluster,
        f"kubectl -n {NS} set image deployment/payments-api payments-api={IMAGE}:1.42.0",
        "product-dev-1",
    )
    shell(
        cluster,
        f"changegate status -n {NS} std-1-42-0 --wait --timeout 60",
        "product-dev-1",
        check=False,
    )

    banner("A normal change: refused at admission until a change manager approves")
    shell(
        cluster,
        f"kubectl -n {NS} set image deployment/payments-api payments-api={IMAGE}:2.0.0",
        "product-dev-1",
        check=False,
    )
    shell(
        cluster,
        f"changegate request -n {NS} --name api-2-0-0 --service payments-api --target deployment/payments-api "
        f"--image payments-api={IMAGE}:2.0.0 --summary 'Payments API 2.0: new card vault' "
        "--repository https://git.example.com/payments/api --commit 9b1d2e3f4a5c --commit-time 2026-11-21T07:30:00Z",
        "product-dev-1",
    )
    shell(cluster, f"changegate approve -n {NS} api-2-0-0", "product-dev-1", check=False)
    shell(
        cluster,
        f"changegate approve -n {NS} api-2-0-0 --comment 'CAB: go for 2.0' --wait --until Approved --timeout 60",
        "change-manager-1",
    )
    shell(
        cluster,
        f"kubectl -n {NS} set image deployment/payments-api payments-api={IMAGE}:2.0.0",
        "product-dev-1",
    )
    shell(
        cluster,
        f"changegate status -n {NS} api-2-0-0 --wait --timeout 60",
        "auditor-1",
        check=False,
    )

    banner("What an auditor sees")
    shell(cluster, "kubectl get changegate -A", "auditor-1")
    shell(cluster, "kubectl get deploymentrecords", "auditor-1")


def run(cluster: LocalCluster) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="changegate-demo-"))
    banner("Installing changegate with its Helm chart; webhook and controller run here")
    installation = Installation.install(cluster, workdir)
    say(f"webhook on https://127.0.0.1:{installation.webhook_port}, logs in {workdir}")
    try:
        walk_through(cluster)
        banner("Talk to it from another terminal")
        say(f"export KUBECONFIG={cluster.kubeconfig}")
        say(f"export PATH={cluster.bin_dir}:{Path(sys.executable).parent}:$PATH")
        say("kubectl get changegate -A")
        say(f"personas ({', '.join(PERSONAS)}) have kubeconfigs beside it, e.g.")
        say(f"kubectl --kubeconfig {cluster.persona_kubeconfig('auditor-1')} changegate list -A")
        banner(
            "The operator keeps running; its logs follow (Ctrl-C stops it and the control plane)"
        )
        logs = subprocess.Popen(
            [
                "tail",
                "-n",
                "20",
                "-F",
                str(installation.controller.log_path),
                str(installation.webhook.log_path),
            ]
        )
        try:
            installation.controller.process.wait()  # type: ignore[union-attr]
        finally:
            logs.terminate()
    finally:
        installation.stop()


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
        say(f"up in {cluster.started_seconds:.1f}s at {cluster.server}")
        banner("Applying changegate's CRDs")
        apply_crds(cluster)
        run(cluster)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        banner("Stopping the operator and the control plane")
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
