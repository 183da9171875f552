"""A real local Kubernetes control plane for tests and the demo, driven by kwokctl.

kwokctl's binary runtime runs etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake nodes whose pods become Ready) from the binaries
that `make cluster-binaries` compiled, bound to 127.0.0.1 on free ports. This
module adds what the project needs on top: client-certificate identities for
the test personas, a kubectl wrapper, and clean-up of clusters left behind by
runs that died.

    python -m tests.support.localcluster up --name demo   # prints KUBECONFIG
    python -m tests.support.localcluster down --name demo
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kubernetes import config
from kubernetes.client import ApiClient

REPO = Path(__file__).resolve().parents[2]

# Test personas: user name -> groups. Client certificates carry them (CN, O), so
# the API server authenticates them exactly as it would real people.
PERSONAS: dict[str, tuple[str, ...]] = {
    "product-dev-1": ("team-payments",),
    "product-dev-2": ("team-payments",),
    "change-manager-1": ("change-managers",),
    "auditor-1": ("auditors",),
    "platform-admin-1": ("platform-admins",),
    "oncall-1": ("team-payments", "payments-emergency"),
    "outsider-1": ("team-search",),
    "incident-manager-1": ("incident-managers",),
}

# An owner.pid with this content marks a cluster started by `up`, kept until `down`.
KEEP = "keep"

KWOKCTL_CONFIG = """\
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  bindAddress: 127.0.0.1
# As kubeadm and kind run it: each controller under its own service account
# (system:serviceaccount:kube-system:replicaset-controller, ...), not the admin's.
componentsPatches:
- name: kube-controller-manager
  extraArgs:
  - key: use-service-account-credentials
    value: "true"
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def binaries_dir() -> Path:
    """Where `make cluster-binaries` put the binaries (building them if absent)."""
    script = REPO / "hack" / "build-binaries.sh"
    out = subprocess.run([str(script), "print-dir"], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def ensure_binaries() -> Path:
    script = REPO / "hack" / "build-binaries.sh"
    out = subprocess.run([str(script)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def clusters_root() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"changegate-clusters-{os.getuid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class LocalCluster:
    """One kwokctl cluster in its own work directory, owned by this process."""

    name: str
    bin_dir: Path
    nodes: int = 2
    workdir: Path = field(init=False)
    started_seconds: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.workdir = clusters_root() / self.name

    # -- lifecycle ---------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KWOK_WORKDIR"] = str(self.workdir / "kwok")
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env.pop("KUBECONFIG", None)
        return env

    def _kwokctl(self, *args: str, capture: bool = False) -> str:
        result = subprocess.run(
            [str(self.bin_dir / "kwokctl"), "--name", self.name, *args],
            env=self.env,
            check=False,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"kwokctl {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}"
            )
        return result.stdout if capture else ""

    def start(self) -> LocalCluster:
        sweep_abandoned_clusters()
        if self.workdir.exists():
            self.stop()
        self.workdir.mkdir(parents=True)
        (self.workdir / "owner.pid").write_text(str(os.getpid()))
        config = self.workdir / "kwokctl.yaml"
        config.write_text(KWOKCTL_CONFIG)
        began = time.monotonic()
        b = self.bin_dir
        try:
            self._kwokctl(
                "create",
                "cluster",
                "-c",
                str(config),
                "--runtime",
                "binary",
                "--kubeconfig",
                str(self.workdir / "kwokctl.kubeconfig"),
                "--etcd-binary",
                str(b / "etcd"),
                "--kube-apiserver-binary",
                str(b / "kube-apiserver"),
                "--kube-controller-manager-binary",
                str(b / "kube-controller-manager"),
                "--kube-scheduler-binary",
                str(b / "kube-scheduler"),
                "--kwok-controller-binary",
                str(b / "kwok"),
                "--wait",
                "120s",
            )
            self._kwokctl("scale", "node", "--replicas", str(self.nodes))
            self.kubeconfig.write_text(self._kwokctl("get", "kubeconfig", capture=True))
            for user, groups in PERSONAS.items():
                self._mint_persona(user, groups)
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop every process of the cluster and remove its files."""
        if not self.workdir.exists():
            return
        if (self.workdir / "kwok").exists():
            try:
                self._kwokctl("delete", "cluster")
            except RuntimeError:
                _kill_recorded_pids(self.workdir)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- identities ------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (group system:masters)."""
        return self.workdir / "admin.kubeconfig"

    def persona_kubeconfig(self, user: str) -> Path:
        path = self.workdir / f"{user}.kubeconfig"
        if not path.exists():
            raise KeyError(f"no persona {user!r}; known: {', '.join(PERSONAS)}")
        return path

    def _mint_persona(self, user: str, groups: tuple[str, ...]) -> None:
        args = ["get", "kubeconfig", "--user", user]
        for group in groups:
            args += ["--group", group]
        self.persona_path(user).write_text(self._kwokctl(*args, capture=True))

    def persona_path(self, user: str) -> Path:
        return self.workdir / f"{user}.kubeconfig"

    def add_persona(self, user: str, groups: tuple[str, ...]) -> Path:
        """Mint a client certificate for another user, signed by the cluster's CA."""
        self._mint_persona(user, groups)
        return self.persona_path(user)

    # -- tools -------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        user: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin, or as a persona when `user` is given."""
        kubeconfig = self.kubeconfig if user is None else self.persona_kubeconfig(user)
        return _run_kubectl(self.bin_dir, kubeconfig, list(args), input, check, timeout)

    def persona_client(self, user: str) -> ApiClient:
        return config.new_client_from_config(config_file=str(self.persona_kubeconfig(user)))

    @property
    def server(self) -> str:
        for line in self.kubeconfig.read_text().splitlines():
            if line.strip().startswith("server:"):
                return line.split(":", 1)[1].strip()
        raise RuntimeError("no server in kubeconfig")


class Cluster(Protocol):
    """What tests need of a cluster, local or external."""

    kubeconfig: Path

    def kubectl(
        self,
        *args: str,
        user: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]: ...

    def persona_client(self, user: str) -> ApiClient: ...


@dataclass
class ExternalCluster:
    """An existing cluster reached through a kubeconfig (kind, or any other).

    Personas are impersonated (`--as`, `Impersonate-User`), so the kubeconfig's
    identity needs the `impersonate` verb on users and groups.
    """

    kubeconfig: Path
    scratch: Path
    bin_dir: Path

    def kubectl(
        self,
        *args: str,
        user: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        identity: list[str] = []
        if user is not None:
            identity = [f"--as={user}", *(f"--as-group={g}" for g in PERSONAS[user])]
        return _run_kubectl(
            self.bin_dir, self.kubeconfig, [*identity, *args], input, check, timeout
        )

    def persona_client(self, user: str) -> ApiClient:
        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        api.set_default_header("Impersonate-User", user)
        # The generated client sends one header per name; several groups need
        # the raw header list, so personas impersonate their first group.
        api.set_default_header("Impersonate-Group", PERSONAS[user][0])
        return api


def _run_kubectl(
    bin_dir: Path,
    kubeconfig: Path,
    args: list[str],
    input: str | None,
    check: bool,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
        input=input,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, result.args, result.stdout, result.stderr
        )
    return result


def _kill_recorded_pids(workdir: Path) -> None:
    for pidfile in workdir.glob("kwok/clusters/*/pids/*.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


def sweep_abandoned_clusters() -> None:
    """Delete clusters whose owning process is gone (a test run that was killed)."""
    root = clusters_root()
    if not root.exists():
        return
    for workdir in root.iterdir():
        try:
            owner = (workdir / "owner.pid").read_text().strip()
        except OSError:
            owner = ""
        if owner == KEEP or (owner.isdigit() and _pid_alive(int(owner))):
            continue
        LocalCluster(workdir.name, binaries_dir()).stop()


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so that `finally` blocks stop the cluster."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.localcluster", description=__doc__
    )
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument("--name", default="changegate-dev")
    args = parser.parse_args(argv)
    if args.command == "down":
        LocalCluster(args.name, binaries_dir()).stop()
        return 0
    cluster = LocalCluster(args.name, ensure_binaries())
    cluster.start()
    # The cluster outlives this command: mark it so that no sweep removes it.
    (cluster.workdir / "owner.pid").write_text(KEEP)
    print(f"control plane up in {cluster.started_seconds:.1f}s", file=sys.stderr)
    print(cluster.kubeconfig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
