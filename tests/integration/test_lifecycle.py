"""A change all the way through, on the real control plane with real (kwok) rollouts.

The controller runs under the chart's service account: it moves changes along
their lifecycle, closes them when the rollout finishes, and writes the
evidence an auditor reads.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest

from changegate.core.change.workloads import pod_template_hash
from tests.integration.conftest import Governed
from tests.support.localcluster import LocalCluster
from tests.support.operator import Installation
from tests.support.polling import wait_for
from tests.support.scenario import (
    IMAGE_V2,
    IMAGE_V3,
    change_request,
    change_template,
    decide,
    deployment,
    events_for,
    get,
    set_image,
)

pytestmark = pytest.mark.integration

COMMIT_TIME = "2026-11-20T10:00:00Z"


def phase(cluster: LocalCluster, ns: str, name: str) -> str | None:
    status: dict[str, Any] = get(cluster, ns, f"changerequest/{name}").get("status") or {}
    return status.get("phase")


def wait_phase(
    cluster: LocalCluster, ns: str, name: str, want: str, timeout: float = 60
) -> dict[str, Any]:
    wait_for(
        lambda: phase(cluster, ns, name) == want, timeout=timeout, message=f"{name} to be {want}"
    )
    return get(cluster, ns, f"changerequest/{name}")


def records(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    items = json.loads(cluster.kubectl("get", "deploymentrecords", "-o", "json").stdout)["items"]
    return [r for r in items if r["spec"]["namespace"] == namespace]


def approved_change(
    cluster: LocalCluster, ns: str, name: str, image: str, **spec: Any
) -> dict[str, Any]:
    source = {
        "repository": "https://git.example.com/payments/api",
        "commit": "4f2c9a1e0b7d3c58",
        "commitTime": COMMIT_TIME,
    }
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=change_request(ns, name, image, source=source, **spec),
        user="product-dev-1",
    )
    result = decide(cluster, ns, name, "change-manager-1", comment="looks good")
    assert result.returncode == 0, result.stderr
    return wait_phase(cluster, ns, name, "Approved")


def test_a_normal_change_closes_with_a_deployment_record(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    change = approved_change(cluster, ns, "api-1-1-0", IMAGE_V2)
    assert change["status"]["approvalCount"] == 1
    assert change["status"]["approvedBy"] == ["change-manager-1"]

    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    closed = wait_phase(cluster, ns, "api-1-1-0", "Completed")

    [record] = wait_for(lambda: records(cluster, ns), message="the DeploymentRecord")
    spec = record["spec"]
    assert spec["service"] == "payments-api"
    assert spec["environment"] == "production"
    assert spec["production"] is True
    assert spec["workload"] == {"kind": "Deployment", "name": "payments-api"}
    assert spec["revision"] == 2
    assert spec["images"] == [{"container": "api", "image": IMAGE_V2}]
    assert spec["admission"] == "Change"
    assert spec["changeRequest"]["name"] == "api-1-1-0"
    assert spec["changeRequest"]["uid"] == closed["metadata"]["uid"]
    assert spec["changeType"] == "Normal"
    assert spec["requester"] == "product-dev-1"
    assert spec["approvers"] == ["change-manager-1"]
    assert spec["deployer"] == "product-dev-1"
    assert spec["result"] == "Succeeded"
    assert spec["finishTime"] >= spec["startTime"]
    assert spec["leadTimeSeconds"] > 0

    [rollout] = closed["status"]["rollouts"]
    assert rollout["result"] == "Succeeded"
    assert rollout["deploymentRecord"] == record["metadata"]["name"]
    assert closed["status"]["leadTimeSeconds"] == spec["leadTimeSeconds"]
    trail = [entry["action"] for entry in closed["status"]["auditTrail"]]
    assert trail == ["Pending", "Approved", "InProgress", "Completed"]

    reasons = wait_for(
        lambda: (
            {"Approved", "Completed"} <= {e["reason"] for e in events_for(cluster, ns, "api-1-1-0")}
            and {e["reason"] for e in events_for(cluster, ns, "payments-api")}
        ),
        message="events on the change",
    )
    assert "RolloutSucceeded" in reasons

    soc = wait_for(
        lambda: (
            (s := get(cluster, ns, "serviceoncall/payments-api"))
            .get("status", {})
            .get("environments")
            and s
        ),
        message="the version running in production",
    )
    [production] = soc["status"]["environments"]
    assert production["images"] == [{"container": "api", "image": IMAGE_V2}]
    assert production["changeRequest"] == "api-1-1-0"


def test_a_rollback_to_an_approved_revision_passes_and_is_recorded(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    approved_change(cluster, ns, "api-1-1-0", IMAGE_V2)
    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    wait_phase(cluster, ns, "api-1-1-0", "Completed")
    approved_change(cluster, ns, "api-1-2-0", IMAGE_V3)
    assert set_image(cluster, ns, IMAGE_V3).returncode == 0
    wait_phase(cluster, ns, "api-1-2-0", "Completed")

    undo = cluster.kubectl(
        "-n", ns, "rollout", "undo", "deployment/payments-api", user="product-dev-1", check=False
    )
    assert undo.returncode == 0, undo.stderr
    annotations = get(cluster, ns, "deployment/payments-api")["metadata"]["annotations"]
    assert annotations["changegate.io/admission"] == "Rollback"
    assert annotations["changegate.io/change-request"] == "api-1-1-0"
    rollback = wait_for(
        lambda: [r for r in records(cluster, ns) if r["spec"]["admission"] == "Rollback"],
        message="the rollback's record",
    )
    assert rollback[0]["spec"]["images"] == [{"container": "api", "image": IMAGE_V2}]


def test_a_standard_change_fitting_an_active_template_is_approved_at_once(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    template = change_template(ns)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(template), user="product-dev-1")
    standard = {"type": "Standard", "templateRef": {"name": "image-bump"}}
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=change_request(ns, "std-1", IMAGE_V2, **standard),
        user="product-dev-1",
    )
    pending = wait_for(
        lambda: (
            (c := get(cluster, ns, "changerequest/std-1")).get("status", {}).get("phase")
            == "Pending"
            and c
        ),
        message="the change to wait for its template",
    )
    approved = next(c for c in pending["status"]["conditions"] if c["type"] == "Approved")
    assert "template image-bump is not active" in approved["message"]

    activate = json.dumps({"spec": {"active": True}})
    cluster.kubectl(
        "-n",
        ns,
        "patch",
        "changetemplate",
        "image-bump",
        "--type=merge",
        "-p",
        activate,
        user="change-manager-1",
    )
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=change_request(ns, "std-2", IMAGE_V2, **standard),
        user="product-dev-1",
    )
    done = wait_phase(cluster, ns, "std-2", "Approved")
    reason = next(c for c in done["status"]["conditions"] if c["type"] == "Approved")["message"]
    assert reason.startswith("fits template image-bump")
    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    wait_phase(cluster, ns, "std-2", "Completed")
    used = wait_for(
        lambda: get(cluster, ns, "changetemplate/image-bump").get("status", {}).get("usedCount"),
        message="the template's use to be counted",
    )
    assert used == 1


def test_a_failed_rollout_fails_the_change_with_a_failed_record(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    deadline = json.dumps({"spec": {"progressDeadlineSeconds": 3}})
    cluster.kubectl(
        "-n", ns, "patch", "deployment/payments-api", "-p", deadline, user="product-dev-1"
    )
    template_patch = {
        "spec": {
            "nodeSelector": {"changegate.io/no-such-node": "true"},
            "containers": [{"name": "api", "image": IMAGE_V2}],
        }
    }
    # More than the image changes, so the change declares the whole new pod template.
    template = get(cluster, ns, "deployment/payments-api")["spec"]["template"]
    template["spec"]["nodeSelector"] = template_patch["spec"]["nodeSelector"]
    target = {
        "kind": "Deployment",
        "name": "payments-api",
        "images": [{"container": "api", "image": IMAGE_V2}],
        "podTemplateHash": pod_template_hash(template),
    }
    approved_change(cluster, ns, "api-broken", IMAGE_V2, targets=[target])
    unschedulable = json.dumps({"spec": {"template": template_patch}})
    patched = cluster.kubectl(
        "-n",
        ns,
        "patch",
        "deployment/payments-api",
        "-p",
        unschedulable,
        user="product-dev-1",
        check=False,
    )
    assert patched.returncode == 0, patched.stderr
    failed = wait_phase(cluster, ns, "api-broken", "Failed", timeout=90)
    assert failed["status"]["rollouts"][0]["result"] == "Failed"
    [record] = records(cluster, ns)
    assert record["spec"]["result"] == "Failed"


def test_the_controller_killed_mid_rollout_closes_the_change_once(
    cluster: LocalCluster, installation: Installation, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    approved_change(cluster, ns, "api-kill", IMAGE_V2)
    installation.controller.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    installation.controller.process.wait()  # type: ignore[union-attr]
    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/payments-api", "--timeout=60s")
    assert phase(cluster, ns, "api-kill") == "Approved"

    installation.restart_controller()
    wait_phase(cluster, ns, "api-kill", "Completed")
    installation.controller.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    installation.controller.process.wait()  # type: ignore[union-attr]
    installation.restart_controller()
    # A restarted controller re-lists everything: still exactly one record, one rollout.
    wait_for(
        lambda: "Handler" in installation.controller.log() or installation.controller.ready(),
        message="the controller to come back",
    )
    assert len(records(cluster, ns)) == 1
    assert len(get(cluster, ns, "changerequest/api-kill")["status"]["rollouts"]) == 1


def test_evidence_outlives_its_change_and_namespaces_delete_cleanly(
    cluster: LocalCluster, api: Any, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    approved_change(cluster, ns, "api-gone", IMAGE_V2)
    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    wait_phase(cluster, ns, "api-gone", "Completed")
    [record] = records(cluster, ns)

    cluster.kubectl("-n", ns, "delete", "changerequest", "api-gone", "--wait=true", "--timeout=30s")
    deleted = cluster.kubectl(
        "delete", "namespace", ns, "--wait=true", "--timeout=60s", check=False
    )
    assert deleted.returncode == 0, deleted.stderr + json.dumps(
        get(cluster, "default", f"namespace/{ns}").get("status")
    )
    assert cluster.kubectl("get", "namespace", ns, check=False).returncode != 0
    kept = json.loads(
        cluster.kubectl("get", "deploymentrecord", record["metadata"]["name"], "-o", "json").stdout
    )
    assert kept["spec"]["changeRequest"]["name"] == "api-gone"


def test_a_break_glass_rollout_raises_an_emergency_change_for_review(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    patch = json.dumps(
        {
            "metadata": {
                "annotations": {"changegate.io/break-glass": "INC-4711 card payments failing"}
            },
            "spec": {"template": {"spec": {"containers": [{"name": "api", "image": IMAGE_V3}]}}},
        }
    )
    assert (
        cluster.kubectl(
            "-n", ns, "patch", "deployment/payments-api", "-p", patch, user="oncall-1"
        ).returncode
        == 0
    )
    emergency = wait_for(
        lambda: json.loads(
            cluster.kubectl(
                "-n",
                ns,
                "get",
                "changerequests",
                "-l",
                "changegate.io/review=required",
                "-o",
                "json",
            ).stdout
        )["items"],
        message="the emergency change raised after the fact",
    )
    [change] = emergency
    assert change["spec"]["type"] == "Emergency"
    assert change["spec"]["requester"] == "oncall-1"
    assert change["spec"]["emergencyReason"] == "INC-4711 card payments failing"
    done = wait_phase(cluster, ns, change["metadata"]["name"], "Completed", timeout=120)
    assert (
        done["status"]["rollouts"][0]["deploymentRecord"]
        == records(cluster, ns)[0]["metadata"]["name"]
    )


def test_an_approved_change_unused_past_its_window_expires(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    import datetime as dt

    ns = governed_running.namespace
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    window = {
        "startTime": (now - dt.timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
        "endTime": (now + dt.timedelta(seconds=3)).isoformat().replace("+00:00", "Z"),
    }
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=change_request(ns, "api-late", IMAGE_V2, window=window),
        user="product-dev-1",
    )
    assert decide(cluster, ns, "api-late", "change-manager-1").returncode == 0
    expired = wait_phase(cluster, ns, "api-late", "Expired", timeout=60)
    assert expired["status"]["auditTrail"][-1]["action"] == "Expired"
    refused = set_image(cluster, ns, IMAGE_V2)
    assert refused.returncode != 0
    # Until the webhook's cache sees the controller's Expired, the near miss is the closed
    # window; after it, the cache has dropped the change (it can admit nothing again).
    assert "no approved ChangeRequest of service payments-api covers it" in refused.stderr
    assert (
        "ChangeRequest api-late: window closed" in refused.stderr
        or "no ChangeRequest of service payments-api targets" in refused.stderr
    ), refused.stderr


def test_a_finished_staging_rollout_raises_the_production_change(
    cluster: LocalCluster, api: Any, governed_running: Governed
) -> None:
    from kubernetes import client as k8s

    production = governed_running.namespace
    staging = f"{production}-stg"
    k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=staging)))
    try:
        soc = json.loads(
            cluster.kubectl(
                "-n", production, "get", "serviceoncall/payments-api", "-o", "json"
            ).stdout
        )
        environments = [
            {"name": "staging", "namespace": staging, "raisesProductionChanges": True},
            {"name": "production", "namespace": production, "production": True},
        ]
        patch = json.dumps({"spec": {"environments": environments}})
        cluster.kubectl(
            "-n",
            production,
            "patch",
            "serviceoncall/payments-api",
            "--type=merge",
            "-p",
            patch,
            user="platform-admin-1",
        )
        assert soc["spec"]["service"]["name"] == "payments-api"

        body = json.loads(deployment(staging, image=IMAGE_V2))
        body["metadata"]["annotations"] = {
            "changegate.io/source-repository": "https://git.example.com/payments/api",
            "changegate.io/source-commit": "4f2c9a1e0b7d3c58",
            "changegate.io/source-commit-time": COMMIT_TIME,
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
        raised = wait_for(
            lambda: json.loads(
                cluster.kubectl(
                    "-n",
                    production,
                    "get",
                    "changerequests",
                    "-l",
                    "changegate.io/promoted-from=staging",
                    "-o",
                    "json",
                ).stdout
            )["items"],
            message="the production change raised from staging",
        )
        [change] = raised
        assert change["spec"]["type"] == "Normal"
        assert change["spec"]["targets"][0]["images"] == [{"container": "api", "image": IMAGE_V2}]
        assert change["spec"]["source"]["commit"] == "4f2c9a1e0b7d3c58"
        wait_phase(cluster, production, change["metadata"]["name"], "Pending")
    finally:
        cluster.kubectl("delete", "namespace", staging, "--wait=false")
