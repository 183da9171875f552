"""The chart on the real local control plane: install, upgrade and uninstall.

Each test installs its own release (`cg-chart-test`) into its own namespace,
next to the session's release that the other tests use, and uninstalls it at
the end whatever happens. Its webhook configurations are cluster-scoped and
its Service has no endpoints (there is no image to run), so the release
fails open (`failurePolicy=Ignore`) and governs a namespace label that nothing
carries. The CRDs belong to the session (the `crds` fixture applies them), so
the release leaves them out; the full rendering, CRDs included, goes to the
API server as a server-side dry run instead.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Governed
from tests.support.localcluster import REPO, LocalCluster
from tests.support.operator import CONTROLLER_SA
from tests.support.operator import NAMESPACE as OPERATOR_NAMESPACE
from tests.support.scenario import IMAGE_V2, change_request

CHART = REPO / "charts" / "changegate"
RELEASE = "cg-chart-test"
CONTROLLER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{CONTROLLER_SA}"
# Harmless next to the session's release: fails open, governs nothing, answers fast.
HARMLESS = (
    "crds.enabled=false",
    "webhook.failurePolicy=Ignore",
    "webhook.timeoutSeconds=2",
    "governance.governedLabel=chart-test.changegate.io/never",
    "metrics.dashboard.enabled=true",
)
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}


@dataclass
class Release:
    cluster: LocalCluster
    name: str
    namespace: str
    install_output: str

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return helm(self.cluster, *args, "--namespace", self.namespace, check=check)

    def manifest(self) -> list[dict[str, Any]]:
        text = self.helm("get", "manifest", self.name).stdout
        return [doc for doc in yaml.safe_load_all(text) if doc]

    def get(self, kind: str, name: str, namespaced: bool = True) -> dict[str, Any]:
        scope = ["-n", self.namespace] if namespaced else []
        found: dict[str, Any] = json.loads(
            self.cluster.kubectl(*scope, "get", kind, name, "-o", "json").stdout
        )
        return found

    def exists(self, kind: str, name: str, namespaced: bool = True) -> bool:
        scope = ["-n", self.namespace] if namespaced else []
        result = self.cluster.kubectl(
            *scope, "get", kind, name, "--ignore-not-found", "-o", "name", check=False
        )
        return bool(result.stdout.strip())


def helm(cluster: LocalCluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(cluster.bin_dir / "helm"), *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def sets(*values: str) -> list[str]:
    return [arg for value in values for arg in ("--set", value)]


@pytest.fixture
def release(cluster: LocalCluster, crds: list[str]) -> Iterator[Release]:
    """A second release of the chart in a namespace of its own, under restricted pod security."""
    namespace = f"cg-chart-{uuid.uuid4().hex[:6]}"
    labels = [f"{key}={value}" for key, value in RESTRICTED.items()]
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("label", "namespace", namespace, *labels)
    try:
        installed = helm(
            cluster,
            "install",
            RELEASE,
            str(CHART),
            "--namespace",
            namespace,
            *sets(*HARMLESS),
            "--wait",
            "--timeout=120s",
        )
        yield Release(cluster, RELEASE, namespace, installed.stdout + installed.stderr)
    finally:
        helm(cluster, "uninstall", RELEASE, "--namespace", namespace, "--ignore-not-found")
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_install_is_accepted_and_runs_under_restricted_pod_security(release: Release) -> None:
    # `--wait` returned: every object was accepted and both Deployments became
    # available in a namespace that enforces the restricted Pod Security Standard.
    assert "would violate PodSecurity" not in release.install_output
    objects = release.manifest()
    kinds = sorted(o["kind"] for o in objects)
    assert kinds.count("Deployment") == 2
    assert "ValidatingWebhookConfiguration" in kinds
    assert "MutatingWebhookConfiguration" in kinds
    for obj in objects:
        namespaced = "namespace" in obj["metadata"]
        assert release.exists(obj["kind"], obj["metadata"]["name"], namespaced), obj["kind"]
    for component, replicas in (("webhook", 2), ("controller", 1)):
        deployment = release.get("deployment", f"{RELEASE}-changegate-{component}")
        assert deployment["status"].get("availableReplicas") == replicas, component

    # Its cluster-scoped names do not collide with the session's release.
    roles = {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"}
    assert f"{RELEASE}-changegate-auditor" in roles
    assert not roles & {"changegate-requester", "changegate-approver", "changegate-auditor"}
    assert f"--clusterrole={RELEASE}-changegate-approver" in release.install_output  # NOTES


def test_the_full_rendering_with_crds_passes_a_server_side_dry_run(
    cluster: LocalCluster, crds: list[str]
) -> None:
    namespace = f"cg-chart-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.kubectl(
            "label", "namespace", namespace, *(f"{k}={v}" for k, v in RESTRICTED.items())
        )
        rendered = helm(
            cluster,
            "template",
            "cg-chart-dry",
            str(CHART),
            "--namespace",
            namespace,
            "--kube-version",
            "1.30.0",
            *sets("crds.enabled=true", "metrics.dashboard.enabled=true"),
        ).stdout
        applied = cluster.kubectl(
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=chart-dry-run",
            "--force-conflicts",
            "-f",
            "-",
            input=rendered,
        )
        lines = applied.stdout.splitlines()
        assert len(lines) == len([d for d in yaml.safe_load_all(rendered) if d])
        assert sum("customresourcedefinition" in line for line in lines) == 5
        assert "would violate PodSecurity" not in applied.stderr
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def evidence(cluster: LocalCluster, governed: Governed) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ChangeRequest raised by the product team, and a DeploymentRecord written as the controller."""
    name = f"chart-{uuid.uuid4().hex[:6]}"
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=change_request(governed.namespace, name, IMAGE_V2),
        user="product-dev-1",
    )
    record = yaml.safe_load((REPO / "samples" / "deploymentrecord.yaml").read_text())
    record["metadata"]["name"] = f"{governed.namespace}.{name}.1"
    record["spec"]["namespace"] = governed.namespace
    record["spec"]["changeRequest"].update(name=name, namespace=governed.namespace)
    cluster.kubectl("create", "-f", "-", f"--as={CONTROLLER}", input=json.dumps(record))
    change = json.loads(
        cluster.kubectl("-n", governed.namespace, "get", "changerequest", name, "-o", "json").stdout
    )
    written = json.loads(
        cluster.kubectl("get", "deploymentrecord", record["metadata"]["name"], "-o", "json").stdout
    )
    return change, written


def still_there(cluster: LocalCluster, obj: dict[str, Any]) -> bool:
    meta = obj["metadata"]
    scope = ["-n", meta["namespace"]] if "namespace" in meta else []
    found = cluster.kubectl(
        *scope, "get", obj["kind"].lower(), meta["name"], "-o", "jsonpath={.metadata.uid}"
    )
    return found.stdout == meta["uid"]


def forget(cluster: LocalCluster, record: dict[str, Any]) -> None:
    """Evidence is deleted only by the controller's identity (the retention sweep)."""
    cluster.kubectl(
        "delete", "deploymentrecord", record["metadata"]["name"], f"--as={CONTROLLER}", check=False
    )


def test_upgrade_keeps_the_certificate_the_changes_and_the_evidence(
    release: Release, cluster: LocalCluster, governed: Governed
) -> None:
    secret_name = f"{RELEASE}-changegate-webhook-tls"
    config_name = f"{RELEASE}-changegate"
    before = release.get("secret", secret_name)["data"]
    ca_bundle = release.get("validatingwebhookconfiguration", config_name, False)["webhooks"][0][
        "clientConfig"
    ]["caBundle"]
    assert ca_bundle == before["ca.crt"]
    change, record = evidence(cluster, governed)
    try:
        release.helm(
            "upgrade",
            RELEASE,
            str(CHART),
            "--reuse-values",
            *sets("webhook.timeoutSeconds=3"),
            "--wait",
            "--timeout=120s",
        )
        config = release.get("validatingwebhookconfiguration", config_name, False)
        assert {h["timeoutSeconds"] for h in config["webhooks"]} == {3}, "the upgrade applied"
        after = release.get("secret", secret_name)["data"]
        assert after == before, "the CA and serving certificate survive an upgrade"
        assert {h["clientConfig"]["caBundle"] for h in config["webhooks"]} == {ca_bundle}
        assert still_there(cluster, change)
        assert still_there(cluster, record)
    finally:
        forget(cluster, record)


def test_uninstall_leaves_the_crds_the_changes_and_the_evidence(
    release: Release, cluster: LocalCluster, governed: Governed
) -> None:
    objects = release.manifest()
    change, record = evidence(cluster, governed)
    try:
        release.helm("uninstall", RELEASE, "--wait", "--timeout=120s")
        for obj in objects:
            namespaced = "namespace" in obj["metadata"]
            assert not release.exists(obj["kind"], obj["metadata"]["name"], namespaced), obj
        for crd in crds_of(cluster):
            assert crd_established(cluster, crd), crd
        assert still_there(cluster, change)
        assert still_there(cluster, record)
    finally:
        forget(cluster, record)


def crds_of(cluster: LocalCluster) -> list[str]:
    names = cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    found = [n for n in names if n.endswith(".changegate.io")]
    assert len(found) == 5, names
    return found


def crd_established(cluster: LocalCluster, crd: str) -> bool:
    conditions = json.loads(cluster.kubectl("get", crd, "-o", "json").stdout)["status"][
        "conditions"
    ]
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
