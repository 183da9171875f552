"""Enforcement through the real API server: what each persona can and cannot roll out.

The chart's webhook configurations send requests to a webhook process running
under the chart's own service account; personas act with their own client
certificates, so every identity below is the one the API server authenticated.
"""

from __future__ import annotations

import json

import pytest

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


def test_a_normal_change_goes_from_refusal_to_rollout(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace

    refused = set_image(cluster, ns, IMAGE_V2)
    assert refused.returncode != 0
    assert "rollout of Deployment/payments-api in" in refused.stderr
    assert (
        "no ChangeRequest of service payments-api targets Deployment/payments-api" in refused.stderr
    )
    assert "To proceed:" in refused.stderr

    created = cluster.kubectl(
        "apply", "-f", "-", input=change_request(ns, "api-1-1-0", IMAGE_V2), user="product-dev-1"
    )
    assert created.returncode == 0
    change = get(cluster, ns, "changerequest/api-1-1-0")
    assert change["spec"]["requester"] == "product-dev-1"

    pending = wait_for(
        lambda: (
            (r := set_image(cluster, ns, IMAGE_V2)).returncode != 0
            and "pending approval 0 of 1" in r.stderr
            and r
        ),
        message="the pending change to show as a near miss",
    )
    assert "ChangeRequest api-1-1-0" in pending.stderr

    own = decide(cluster, ns, "api-1-1-0", "product-dev-1")
    assert own.returncode != 0
    assert "segregation of duties" in own.stderr

    teammate = decide(cluster, ns, "api-1-1-0", "product-dev-2")
    assert teammate.returncode != 0
    assert "product-dev-2 is not an approver of service payments-api" in teammate.stderr

    impostor = decide(cluster, ns, "api-1-1-0", "change-manager-1", approver="someone-else")
    assert impostor.returncode != 0
    assert "you are change-manager-1, the approval names someone-else" in impostor.stderr

    approved = decide(cluster, ns, "api-1-1-0", "change-manager-1", comment="tested in staging")
    assert approved.returncode == 0, approved.stderr
    approval = get(cluster, ns, "changerequest/api-1-1-0")["spec"]["approvals"][0]
    assert approval["approver"] == "change-manager-1"
    assert approval["time"].endswith("Z")

    wrong = wait_for(
        lambda: (
            (r := set_image(cluster, ns, IMAGE_V3)).returncode != 0
            and "image mismatch" in r.stderr
            and r
        ),
        message="the approved change to be indexed",
    )
    assert f"expected {IMAGE_V2}, actual {IMAGE_V3}" in wrong.stderr

    allowed = set_image(cluster, ns, IMAGE_V2)
    assert allowed.returncode == 0, allowed.stderr
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/payments-api", "--timeout=60s")
    annotations = get(cluster, ns, "deployment/payments-api")["metadata"]["annotations"]
    assert annotations["changegate.io/change-request"] == "api-1-1-0"
    assert annotations["changegate.io/deployer"] == "product-dev-1"
    assert annotations["changegate.io/admission"] == "ApprovedChange"

    reasons = wait_for(
        lambda: (
            {e["reason"] for e in events_for(cluster, ns, "payments-api")}
            >= {"RolloutRefused", "RolloutApprovedChange"}
            and {e["reason"] for e in events_for(cluster, ns, "payments-api")}
        ),
        message="admission events on the Deployment",
    )
    assert "RolloutRefused" in reasons


def test_scaling_and_restart_pass_and_stamps_cannot_be_forged(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    scaled = cluster.kubectl(
        "-n", ns, "scale", "deployment/payments-api", "--replicas=3", user="product-dev-1"
    )
    assert scaled.returncode == 0
    labelled = cluster.kubectl(
        "-n", ns, "label", "deployment/payments-api", "tier=gold", user="product-dev-1"
    )
    assert labelled.returncode == 0

    restarted = cluster.kubectl(
        "-n", ns, "rollout", "restart", "deployment/payments-api", user="product-dev-1", check=False
    )
    assert restarted.returncode == 0, restarted.stderr
    annotations = get(cluster, ns, "deployment/payments-api")["metadata"]["annotations"]
    assert annotations["changegate.io/admission"] == "Restart"
    assert annotations["changegate.io/deployer"] == "product-dev-1"

    forged = cluster.kubectl(
        "-n",
        ns,
        "annotate",
        "--overwrite",
        "deployment/payments-api",
        "changegate.io/deployer=change-manager-1",
        user="product-dev-1",
    )
    assert forged.returncode == 0
    annotations = get(cluster, ns, "deployment/payments-api")["metadata"]["annotations"]
    assert annotations["changegate.io/deployer"] == "product-dev-1"


def test_break_glass_needs_the_emergency_group(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    cluster.kubectl(
        "-n",
        ns,
        "create",
        "rolebinding",
        "edit-outsider",
        "--clusterrole=edit",
        "--user=outsider-1",
    )
    patch = json.dumps(
        {
            "metadata": {
                "annotations": {"changegate.io/break-glass": "INC-4711 card payments failing"}
            },
            "spec": {"template": {"spec": {"containers": [{"name": "api", "image": IMAGE_V3}]}}},
        }
    )
    outsider = cluster.kubectl(
        "-n", ns, "patch", "deployment/payments-api", "-p", patch, user="outsider-1", check=False
    )
    assert outsider.returncode != 0
    assert "break-glass refused: outsider-1 is not in an emergency group" in outsider.stderr

    member = cluster.kubectl(
        "-n", ns, "patch", "deployment/payments-api", "-p", patch, user="oncall-1", check=False
    )
    assert member.returncode == 0, member.stderr
    annotations = get(cluster, ns, "deployment/payments-api")["metadata"]["annotations"]
    assert annotations["changegate.io/admission"] == "BreakGlass"
    assert annotations["changegate.io/deployer"] == "oncall-1"


def test_an_ungoverned_namespace_is_untouched(
    cluster: LocalCluster, installation: Installation, namespace: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=deployment(namespace))
    changed = cluster.kubectl(
        "-n", namespace, "set", "image", "deployment/payments-api", f"api={IMAGE_V3}"
    )
    assert changed.returncode == 0
    annotations = get(cluster, namespace, "deployment/payments-api")["metadata"].get(
        "annotations", {}
    )
    assert not [k for k in annotations if k.startswith("changegate.io/")]


def test_a_labelled_namespace_without_a_service_is_refused(
    cluster: LocalCluster, installation: Installation, namespace: str
) -> None:
    cluster.kubectl("label", "namespace", namespace, "changegate.io/governed=true")
    refused = wait_for(
        lambda: (
            (
                r := cluster.kubectl("apply", "-f", "-", input=deployment(namespace), check=False)
            ).returncode
            != 0
            and r
        ),
        message="the labelled namespace to be refused",
    )
    assert "no ServiceOnCall declares it as a production environment" in refused.stderr


def test_identity_rules_of_changegate_kinds(cluster: LocalCluster, governed: Governed) -> None:
    ns = governed.namespace
    claimed = cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=change_request(ns, "claimed", IMAGE_V2, requester="product-dev-2"),
        user="product-dev-1",
        check=False,
    )
    assert claimed.returncode != 0
    assert "you are product-dev-1, the body names product-dev-2" in claimed.stderr

    record = json.dumps(
        {
            "apiVersion": "changegate.io/v1alpha1",
            "kind": "DeploymentRecord",
            "metadata": {"name": f"forged-{ns}"},
            "spec": json.loads(
                cluster.kubectl(
                    "create",
                    "--dry-run=client",
                    "-o",
                    "json",
                    "-f",
                    "samples/deploymentrecord.yaml",
                ).stdout
            )["spec"],
        }
    )
    forged = cluster.kubectl("create", "-f", "-", input=record, check=False)
    assert forged.returncode != 0
    assert (
        "DeploymentRecords are evidence written only by the changegate controller" in forged.stderr
    )

    takeover = json.dumps({"spec": {"changePolicy": {"approvers": {"groups": ["team-payments"]}}}})
    refused = cluster.kubectl(
        "-n",
        ns,
        "patch",
        "serviceoncall",
        "payments-api",
        "--type=merge",
        "-p",
        takeover,
        user="product-dev-1",
        check=False,
    )
    assert refused.returncode != 0
    assert "only change managers or platform administrators" in refused.stderr


def test_only_change_managers_activate_templates_and_edits_deactivate(
    cluster: LocalCluster, governed: Governed
) -> None:
    ns = governed.namespace
    template = change_template(ns, active=True)
    refused = cluster.kubectl(
        "apply", "-f", "-", input=json.dumps(template), user="product-dev-1", check=False
    )
    assert refused.returncode != 0
    assert "only change managers (change-managers) may activate a ChangeTemplate" in refused.stderr

    inactive = {**template, "spec": {**template["spec"], "active": False}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(inactive), user="product-dev-1")
    activate = json.dumps({"spec": {"active": True}})
    activated = cluster.kubectl(
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
    assert activated.returncode == 0
    assert get(cluster, ns, "changetemplate/image-bump")["spec"]["active"] is True
    status = wait_for(
        lambda: (
            get(cluster, ns, "changetemplate/image-bump").get("status", {}).get("activatedBy")
            and get(cluster, ns, "changetemplate/image-bump")["status"]
        ),
        message="the activation recorded in status",
    )
    assert status["activatedBy"] == "change-manager-1"
    assert status["conditions"][0]["type"] == "Active"
    assert status["conditions"][0]["status"] == "True"
    forged = json.dumps(
        {"metadata": {"annotations": {"changegate.io/activated-by": "product-dev-1"}}}
    )
    cluster.kubectl(
        "-n",
        ns,
        "patch",
        "changetemplate",
        "image-bump",
        "--type=merge",
        "-p",
        forged,
        user="product-dev-1",
    )
    stamped = get(cluster, ns, "changetemplate/image-bump")["metadata"]["annotations"]
    assert stamped["changegate.io/activated-by"] == "change-manager-1"

    edit = json.dumps({"spec": {"riskNote": "Now also covers config"}})
    edited = cluster.kubectl(
        "-n",
        ns,
        "patch",
        "changetemplate",
        "image-bump",
        "--type=merge",
        "-p",
        edit,
        user="product-dev-1",
    )
    assert edited.returncode == 0
    assert "no longer active" in edited.stderr
    assert get(cluster, ns, "changetemplate/image-bump")["spec"]["active"] is False


def test_dry_run_is_answered_alike_without_side_effects_and_decisions_are_counted(
    cluster: LocalCluster, installation: Installation, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    dry = set_image(cluster, ns, IMAGE_V3, "outsider-1", "--dry-run=server")
    assert dry.returncode != 0
    assert "no approved ChangeRequest of service payments-api covers it" in dry.stderr
    real = set_image(cluster, ns, IMAGE_V3)
    assert real.returncode != 0
    refusals = wait_for(
        lambda: [
            e["message"]
            for e in events_for(cluster, ns, "payments-api")
            if e["reason"] == "RolloutRefused"
        ],
        message="the refusal's event",
    )
    # The dry run (by outsider-1, before the real request) left no event behind.
    assert any("(user product-dev-1)" in m for m in refusals)
    assert not any("outsider-1" in m for m in refusals)

    metrics = installation.webhook.metrics()
    assert (
        'changegate_admission_decisions_total{decision="deny",reason="NoApprovedChange"}' in metrics
    )
    count = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith('changegate_admission_duration_seconds_count{kind="Deployment"}')
    )
    assert count >= 2
