"""Evidence is exact and the operator's own objects are unforgeable, tried on the local
control plane as the personas.

product-dev-1 has `edit` (and the chart's requester role) in the governed namespace;
oncall-1 is in the service's emergency group. Each test makes the attack of issue 10
and asserts it fails (or is recorded as the rule says), and that the legitimate path
still works.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from changegate.core.change.workloads import pod_template, pod_template_hash
from tests.integration.conftest import Governed
from tests.support.localcluster import LocalCluster
from tests.support.polling import wait_for
from tests.support.scenario import (
    IMAGE_V1,
    IMAGE_V2,
    IMAGE_V3,
    change_request,
    decide,
    deployment,
    get,
    set_image,
)

pytestmark = pytest.mark.integration

TEAM = "product-dev-1"
MANAGER = "change-manager-1"
EMERGENCY = "oncall-1"
RAISED_FOR = "changegate.io/raised-for"
OPERATOR_ONLY = "are written only by the operator"


def phase(cluster: LocalCluster, ns: str, name: str) -> str | None:
    status: dict[str, Any] = get(cluster, ns, f"changerequest/{name}").get("status") or {}
    return status.get("phase")


def wait_phase(cluster: LocalCluster, ns: str, name: str, want: str) -> dict[str, Any]:
    wait_for(lambda: phase(cluster, ns, name) == want, timeout=120, message=f"{name} to be {want}")
    return get(cluster, ns, f"changerequest/{name}")


def records(cluster: LocalCluster, namespace: str) -> list[dict[str, Any]]:
    items = json.loads(cluster.kubectl("get", "deploymentrecords", "-o", "json").stdout)["items"]
    return [r for r in items if r["spec"]["namespace"] == namespace]


def approve(cluster: LocalCluster, ns: str, name: str, image: str, **spec: Any) -> None:
    """A change raised by the team and approved by a change manager."""
    created = cluster.kubectl(
        "apply", "-f", "-", input=change_request(ns, name, image, **spec), user=TEAM
    )
    assert created.returncode == 0, created.stderr
    approved = decide(cluster, ns, name, MANAGER, comment="looks good")
    assert approved.returncode == 0, approved.stderr
    wait_phase(cluster, ns, name, "Approved")


def record_of(cluster: LocalCluster, ns: str, change: str) -> str:
    done = wait_phase(cluster, ns, change, "Completed")
    [rollout] = done["status"]["rollouts"]
    name: str = rollout["deploymentRecord"]
    return name


# -- (a) a deleted and recreated workload gets its own records ----------------------------


def test_a_recreated_deployment_rolled_out_again_gets_a_second_record(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    approve(cluster, ns, "api-1-1-0", IMAGE_V2)
    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    first = record_of(cluster, ns, "api-1-1-0")
    old_uid = get(cluster, ns, "deployment/payments-api")["metadata"]["uid"]

    # Delete and recreate the workload (under a change), then roll out revision 2 again.
    deleted = cluster.kubectl("-n", ns, "delete", "deployment/payments-api", "--wait", user=TEAM)
    assert deleted.returncode == 0, deleted.stderr
    # A new workload is covered only by a change that declares its pod template.
    template = pod_template(json.loads(deployment(ns)))
    declared = {"kind": "Deployment", "name": "payments-api",
                "images": [{"container": "api", "image": IMAGE_V1}],
                "podTemplateHash": pod_template_hash(template)}  # fmt: skip
    approve(cluster, ns, "recreate", IMAGE_V1, targets=[declared])
    recreated = cluster.kubectl("apply", "-f", "-", input=deployment(ns), user=TEAM, check=False)
    assert recreated.returncode == 0, recreated.stderr
    new_uid = get(cluster, ns, "deployment/payments-api")["metadata"]["uid"]
    assert new_uid != old_uid
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/payments-api", "--timeout=60s")
    approve(cluster, ns, "api-again", IMAGE_V2)
    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    second = record_of(cluster, ns, "api-again")

    assert second != first
    by_name = wait_for(
        lambda: (
            {r["metadata"]["name"]: r for r in records(cluster, ns)}
            if {first, second} <= {r["metadata"]["name"] for r in records(cluster, ns)}
            else None
        ),
        message="both DeploymentRecords",
    )
    assert by_name[first]["spec"]["revision"] == by_name[second]["spec"]["revision"] == 2
    assert by_name[first]["spec"]["changeRequest"]["name"] == "api-1-1-0"
    assert by_name[second]["spec"]["changeRequest"]["name"] == "api-again"
    assert f".{old_uid[:8]}." in first
    assert f".{new_uid[:8]}." in second


# -- (b, c) the operator's emergency change cannot be pre-empted or forged ------------------


def raised_changes(cluster: LocalCluster, ns: str) -> list[dict[str, Any]]:
    listed = cluster.kubectl("-n", ns, "get", "changerequests", "-l", RAISED_FOR, "-o", "json")
    items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
    return items


def break_glass(cluster: LocalCluster, ns: str, image: str) -> Any:
    patch = {
        "metadata": {
            "annotations": {"changegate.io/break-glass": "INC-4711 card payments failing"}
        },
        "spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}},
    }
    return cluster.kubectl(
        "-n", ns, "patch", "deployment/payments-api", "-p", json.dumps(patch), user=EMERGENCY
    )


def test_a_pre_created_change_does_not_capture_a_break_glass_rollout(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    # The attack: take the name the operator used to choose, before the emergency happens.
    guessed = "emergency-payments-api-2"
    taken = cluster.kubectl(
        "apply", "-f", "-", input=change_request(ns, guessed, IMAGE_V3), user=TEAM
    )
    assert taken.returncode == 0, taken.stderr

    assert break_glass(cluster, ns, IMAGE_V3).returncode == 0
    [raised] = wait_for(lambda: raised_changes(cluster, ns), message="the emergency change")
    name = raised["metadata"]["name"]
    assert name != guessed
    assert name.startswith("emergency-payments-api-")
    assert raised["metadata"]["labels"]["changegate.io/review"] == "required"
    assert raised["spec"]["type"] == "Emergency"
    assert raised["spec"]["requester"] == EMERGENCY
    done = wait_phase(cluster, ns, name, "Completed")
    [rollout] = done["status"]["rollouts"]

    [record] = wait_for(lambda: records(cluster, ns), message="the DeploymentRecord")
    assert record["metadata"]["name"] == rollout["deploymentRecord"]
    assert (record["spec"].get("changeRequest") or {}).get("name") != guessed
    pre_created = get(cluster, ns, f"changerequest/{guessed}")
    assert not (pre_created.get("status") or {}).get("rollouts")
    assert RAISED_FOR not in (pre_created["metadata"].get("labels") or {})


def test_the_team_cannot_write_the_operators_marks_on_a_change(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    assert break_glass(cluster, ns, IMAGE_V3).returncode == 0
    [raised] = wait_for(lambda: raised_changes(cluster, ns), message="the emergency change")
    name = raised["metadata"]["name"]
    mark = raised["metadata"]["labels"][RAISED_FOR]

    forged = json.loads(change_request(ns, "forged", IMAGE_V3))
    forged["metadata"]["labels"] = {RAISED_FOR: mark}
    own = "api-1-1-0"
    assert (
        cluster.kubectl(
            "apply", "-f", "-", input=change_request(ns, own, IMAGE_V2), user=TEAM
        ).returncode
        == 0
    )
    attacks = {
        "raises a change claiming the operator raised it": (
            "apply", "-f", "-",
        ),
        "removes the raised-for label": (
            "-n", ns, "label", f"changerequest/{name}", f"{RAISED_FOR}-",
        ),
        "moves the raised-for label onto its own change": (
            "-n", ns, "label", f"changerequest/{own}", f"{RAISED_FOR}={mark}",
        ),
        "links its own change to the emergency's record": (
            "-n", ns, "annotate", f"changerequest/{own}",
            f"changegate.io/deployment-record={raised['metadata']['annotations']['changegate.io/deployment-record']}",
        ),
        "removes the record link of the emergency change": (
            "-n", ns, "annotate", f"changerequest/{name}", "changegate.io/deployment-record-",
        ),
        "removes the review label": (
            "-n", ns, "label", f"changerequest/{name}", "changegate.io/review-",
        ),
    }  # fmt: skip
    for attack, args in attacks.items():
        stdin = json.dumps(forged) if args[0] == "apply" else None
        refused = cluster.kubectl(*args, input=stdin, user=TEAM, check=False)
        assert refused.returncode != 0, f"the team {attack}"
        assert "denied the request" in refused.stderr, refused.stderr

    kept = get(cluster, ns, f"changerequest/{name}")["metadata"]
    assert kept["labels"][RAISED_FOR] == mark
    assert kept["labels"]["changegate.io/review"] == "required"
    assert RAISED_FOR not in (
        get(cluster, ns, f"changerequest/{own}")["metadata"].get("labels") or {}
    )
    assert cluster.kubectl("-n", ns, "get", "changerequest/forged", check=False).returncode != 0

    # Legitimate: the team still labels its own change with labels of its own.
    ok = cluster.kubectl("-n", ns, "label", f"changerequest/{own}", "team=payments", user=TEAM)
    assert ok.returncode == 0, ok.stderr
