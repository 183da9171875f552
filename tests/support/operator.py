"""Install changegate into a cluster with its own chart and run its roles locally.

The chart is installed with `webhook.url` pointing at 127.0.0.1, so the API
server calls a webhook process started here. Each process runs under the
chart's service-account identity (a token kubeconfig), so a gap in the chart's
RBAC fails the tests instead of being hidden by an admin identity.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.support.localcluster import REPO, LocalCluster, free_port
from tests.support.polling import wait_for
from tests.support.tls import ServingCertificate, issue_serving_certificate

RELEASE = "changegate"
NAMESPACE = "changegate-system"
WEBHOOK_SA = "changegate-webhook"
CONTROLLER_SA = "changegate-controller"
# The Alertmanager intake (controller role): its token Secret, as the chart names it by default.
INTAKE_TOKEN_SECRET = "changegate-intake-token"
INTAKE_TOKEN = secrets.token_urlsafe(32)
INTAKE_FALLBACK_SERVICE = "unrouted-alerts"
# The chart's ClusterRole that lets the controller read paging Secrets where it is bound.
PAGE_SECRETS_ROLE = f"{CONTROLLER_SA}-page-secrets"

# What the personas may do, as a platform team would bind the chart's roles.
PERSONA_BINDINGS = (
    ("changegate-approver", "Group", "change-managers"),
    ("changegate-auditor", "Group", "auditors"),
    ("cluster-admin", "Group", "platform-admins"),
)


def token_kubeconfig(cluster: LocalCluster, service_account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as a service account of the release."""
    token = cluster.kubectl(
        "-n", NAMESPACE, "create", "token", service_account, "--duration=24h"
    ).stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server = admin["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": service_account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": service_account}}],
        "current-context": "sa",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def grant_page_secrets(api: client.ApiClient, namespace: str) -> None:
    """Let the controller read the paging Secrets of `namespace`'s ServiceOnCalls, as a
    platform team binds the chart's role in a team's namespace (it reads none elsewhere)."""
    binding: Any = {  # the client accepts the plain body, as kubectl would send it
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": PAGE_SECRETS_ROLE, "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": PAGE_SECRETS_ROLE,
        },
        "subjects": [{"kind": "ServiceAccount", "name": CONTROLLER_SA, "namespace": NAMESPACE}],
    }
    client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(namespace, binding)


def install_chart(cluster: LocalCluster, webhook_url: str, ca_pem: bytes, *extra: str) -> None:
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    subprocess.run(
        [
            str(cluster.bin_dir / "helm"),
            "upgrade",
            "--install",
            RELEASE,
            str(REPO / "charts" / "changegate"),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--namespace",
            NAMESPACE,
            "--set",
            "crds.enabled=false",
            "--set",
            f"webhook.url={webhook_url}",
            "--set",
            f"webhook.caBundle={base64.b64encode(ca_pem).decode()}",
            "--set",
            "webhook.replicas=1",
            "--set",
            "intake.enabled=true",
            "--set",
            "intake.tlsSecretName=changegate-intake-tls",
            *extra,
            "--wait=false",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    cluster.kubectl(
        "-n", NAMESPACE, "create", "secret", "generic", INTAKE_TOKEN_SECRET,
        f"--from-literal=token={INTAKE_TOKEN}", check=False,
    )  # fmt: skip
    for role, kind, name in PERSONA_BINDINGS:
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"test-{role}-{name}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}],
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(binding))


@dataclass
class RoleProcess:
    """One role of the operator (webhook or controller) running as a subprocess."""

    role: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = field(default_factory=free_port)

    def start(self) -> RoleProcess:
        env = {**self.env, "CHANGEGATE_METRICS_PORT": str(self.metrics_port)}
        env["CHANGEGATE_HEALTH_PORT"] = str(free_port())
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "changegate", self.role],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"{self.role} exited:\n{self.log()[-4000:]}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=1
            ) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2
        ) as r:
            text: str = r.read().decode()
            return text


def role_env(kubeconfig: Path) -> dict[str, str]:
    """The environment the chart gives both roles, plus the local kubeconfig."""
    env = dict(os.environ)
    env.update(
        {
            "KUBECONFIG": str(kubeconfig),
            "CHANGEGATE_NAMESPACE": NAMESPACE,
            "CHANGEGATE_CHANGE_MANAGER_GROUPS": "change-managers",
            "CHANGEGATE_PLATFORM_ADMIN_GROUPS": "platform-admins",
            "CHANGEGATE_OPERATOR_USERS": f"system:serviceaccount:{NAMESPACE}:{CONTROLLER_SA}",
            "CHANGEGATE_HEALTH_ADDRESS": "127.0.0.1",
        }
    )
    return env


def start_webhook(
    cluster: LocalCluster, workdir: Path, cert: ServingCertificate, port: int, name: str = "webhook"
) -> RoleProcess:
    kubeconfig = token_kubeconfig(cluster, WEBHOOK_SA, workdir / f"{name}.kubeconfig")
    env = role_env(kubeconfig)
    env.update(
        {
            "CHANGEGATE_WEBHOOK_ADDRESS": "127.0.0.1",
            "CHANGEGATE_WEBHOOK_PORT": str(port),
            "CHANGEGATE_WEBHOOK_CERT_FILE": str(cert.cert_file),
            "CHANGEGATE_WEBHOOK_KEY_FILE": str(cert.key_file),
            "HOSTNAME": name,
        }
    )
    process = RoleProcess("webhook", env, workdir / f"{name}.log").start()
    wait_for(process.ready, timeout=60, message=f"{name} ready (indexes warm)")
    return process


def intake_env(cert: ServingCertificate, port: int) -> dict[str, str]:
    """The chart's intake settings, served on 127.0.0.1 with the test certificate."""
    return {
        "CHANGEGATE_INTAKE_ENABLED": "true",
        "CHANGEGATE_INTAKE_ADDRESS": "127.0.0.1",
        "CHANGEGATE_INTAKE_PORT": str(port),
        "CHANGEGATE_INTAKE_CERT_FILE": str(cert.cert_file),
        "CHANGEGATE_INTAKE_KEY_FILE": str(cert.key_file),
        "CHANGEGATE_INTAKE_TOKEN_SECRET": INTAKE_TOKEN_SECRET,
        "CHANGEGATE_INTAKE_FALLBACK_SERVICE": INTAKE_FALLBACK_SERVICE,
    }


def start_controller(
    cluster: LocalCluster,
    workdir: Path,
    name: str = "controller",
    intake: tuple[ServingCertificate, int] | None = None,
) -> RoleProcess:
    kubeconfig = token_kubeconfig(cluster, CONTROLLER_SA, workdir / f"{name}.kubeconfig")
    env = role_env(kubeconfig)
    env["HOSTNAME"] = name
    if intake is not None:
        env.update(intake_env(*intake))
    process = RoleProcess("controller", env, workdir / f"{name}.log").start()
    wait_for(process.ready, timeout=60, message=f"{name} started")
    return process


@dataclass
class Installation:
    """changegate installed by its chart, with its webhook and controller running on 127.0.0.1."""

    cluster: LocalCluster
    workdir: Path
    cert: ServingCertificate
    webhook_port: int
    webhook: RoleProcess
    controller: RoleProcess
    intake_port: int = 0

    @classmethod
    def install(cls, cluster: LocalCluster, workdir: Path) -> Installation:
        cert = issue_serving_certificate(workdir / "tls")
        port = free_port()
        install_chart(cluster, f"https://127.0.0.1:{port}", cert.ca_pem)
        webhook = start_webhook(cluster, workdir, cert, port)
        intake_port = free_port()
        controller = start_controller(cluster, workdir, intake=(cert, intake_port))
        return cls(cluster, workdir, cert, port, webhook, controller, intake_port)

    def restart_controller(self) -> RoleProcess:
        self.controller.stop()
        self.controller = start_controller(
            self.cluster, self.workdir, "controller", intake=(self.cert, self.intake_port)
        )
        return self.controller

    def stop(self) -> None:
        self.controller.stop()
        self.webhook.stop()


def trust_store(cert: ServingCertificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert.ca_file))
