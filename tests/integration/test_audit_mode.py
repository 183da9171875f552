"""Audit-only mode on the local control plane, as the personas: admitted, warned, recorded.

A governed namespace whose ServiceOnCall (or whose namespace annotation) says
Audit admits a rollout no approved change covers: kubectl prints the refusal it
escaped, an Event lands on the Deployment, the webhook counts it and the
controller writes a DeploymentRecord with admission AuditOnly. Only change
managers (the ServiceOnCall) and platform admins (the namespace) switch the
mode; back in Enforce the same rollout is refused again.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.integration.conftest import Governed
from tests.support.localcluster import LocalCluster
from tests.support.operator import Installation
from tests.support.polling import wait_for
from tests.support.scenario import IMAGE_V2, IMAGE_V3, events_for, get, set_image

pytestmark = pytest.mark.integration

TEAM = "product-dev-1"
MANAGER = "change-manager-1"
ADMIN = "platform-admin-1"
SOC = "serviceoncall/payments-api"
WARNING = "Warning: changegate (audit mode): this rollout would be refused: "
ANNOTATION = "changegate.io/enforcement"


def enforcement(cluster: LocalCluster, ns: str, mode: str, user: str) -> Any:
    patch = json.dumps({"spec": {"changePolicy": {"enforcement": mode}}})
    return cluster.kubectl(
        "-n", ns, "patch", SOC, "--type=merge", "-p", patch, user=user, check=False
    )


def audited_dry_run(cluster: LocalCluster, ns: str, image: str) -> bool:
    """The webhook's caches have the mode: a server dry run is admitted with the warning."""
    tried = set_image(cluster, ns, image, TEAM, "--dry-run=server")
    return tried.returncode == 0 and WARNING in tried.stderr


def refused_dry_run(cluster: LocalCluster, ns: str, image: str) -> bool:
    return "denied the request" in set_image(cluster, ns, image, TEAM, "--dry-run=server").stderr


def audit_only_records(cluster: LocalCluster, ns: str) -> list[dict[str, Any]]:
    items = json.loads(cluster.kubectl("get", "deploymentrecords", "-o", "json").stdout)["items"]
    return [
        r for r in items if r["spec"]["namespace"] == ns and r["spec"]["admission"] == "AuditOnly"
    ]


def counted(installation: Installation, ns: str) -> float:
    """changegate_audit_only_admissions_total of the namespace's Deployments, as scraped."""
    pattern = re.compile(
        r"^changegate_audit_only_admissions_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M
    )
    total = 0.0
    for match in pattern.finditer(installation.webhook.metrics()):
        labels = match["labels"]
        if f'namespace="{ns}"' in labels and 'kind="Deployment"' in labels:
            total += float(match["value"])
    return total


def test_a_service_in_audit_mode_admits_warns_and_records_what_enforce_refuses(
    cluster: LocalCluster, installation: Installation, governed_running: Governed
) -> None:
    ns = governed_running.namespace

    # The team may not switch its own service to Audit: the webhook says who may.
    by_team = enforcement(cluster, ns, "Audit", TEAM)
    assert by_team.returncode != 0
    assert "may set spec.changePolicy.enforcement (Enforce to Audit)" in by_team.stderr
    assert f"{TEAM} may not" in by_team.stderr
    assert get(cluster, ns, SOC)["spec"]["changePolicy"].get("enforcement", "Enforce") == "Enforce"

    by_manager = enforcement(cluster, ns, "Audit", MANAGER)
    assert by_manager.returncode == 0, by_manager.stderr
    wait_for(lambda: audited_dry_run(cluster, ns, IMAGE_V2), message="the webhook to audit")
    assert counted(installation, ns) == 0  # dry runs are not counted

    # The rollout no change covers passes, and kubectl prints the refusal it escaped.
    rolled = set_image(cluster, ns, IMAGE_V2, TEAM)
    assert rolled.returncode == 0, rolled.stderr
    assert (
        f"{WARNING}changegate: rollout of Deployment/payments-api in {ns} refused: no approved"
        " ChangeRequest of service payments-api covers it"
    ) in rolled.stderr
    assert "To proceed: raise a ChangeRequest and have it approved" in rolled.stderr
    assert counted(installation, ns) == 1

    event = wait_for(
        lambda: next(
            (
                e
                for e in events_for(cluster, ns, "payments-api")
                if e["reason"] == "RolloutAuditOnly"
            ),
            None,
        ),
        message="the audit-only Event on the Deployment",
    )
    assert event["type"] == "Warning"
    assert event["message"].startswith("changegate (audit mode): this rollout would be refused:")

    [record] = wait_for(
        lambda: audit_only_records(cluster, ns), timeout=120, message="an AuditOnly record"
    )
    spec = record["spec"]
    assert spec["auditReason"].startswith("NoApprovedChange: changegate: rollout of")
    assert (spec["deployer"], spec["result"]) == (TEAM, "Succeeded")
    assert "changeRequest" not in spec
    assert [i["image"] for i in spec["images"]] == [IMAGE_V2]

    # Back to Enforce, by governance only: the same kind of rollout is refused again.
    assert enforcement(cluster, ns, "Enforce", TEAM).returncode != 0
    back = enforcement(cluster, ns, "Enforce", MANAGER)
    assert back.returncode == 0, back.stderr
    wait_for(lambda: refused_dry_run(cluster, ns, IMAGE_V3), message="the webhook to enforce")
    refused = set_image(cluster, ns, IMAGE_V3, TEAM)
    assert refused.returncode != 0
    assert "audit mode" not in refused.stderr
    assert "no approved ChangeRequest of service payments-api covers it" in refused.stderr
    assert counted(installation, ns) == 1


def test_a_platform_admin_puts_a_governed_namespace_in_audit_mode(
    cluster: LocalCluster, installation: Installation, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    # A team that may patch namespaces (a ClusterRole it should not have) is still refused.
    cluster.kubectl("create", "clusterrole", f"ns-patch-{ns}", "--verb=get,patch,update",
                    "--resource=namespaces")  # fmt: skip
    cluster.kubectl("create", "clusterrolebinding", f"ns-patch-{ns}",
                    f"--clusterrole=ns-patch-{ns}", f"--user={TEAM}")  # fmt: skip
    try:
        by_team = cluster.kubectl(
            "annotate", "namespace", ns, f"{ANNOTATION}=Audit", user=TEAM, check=False
        )
        assert by_team.returncode != 0
        assert f"{TEAM} may not set {ANNOTATION}=Audit on governed namespace {ns}" in by_team.stderr
    finally:
        cluster.kubectl("delete", "clusterrolebinding", f"ns-patch-{ns}")
        cluster.kubectl("delete", "clusterrole", f"ns-patch-{ns}")

    by_admin = cluster.kubectl("annotate", "namespace", ns, f"{ANNOTATION}=Audit", user=ADMIN)
    assert by_admin.returncode == 0
    wait_for(lambda: audited_dry_run(cluster, ns, IMAGE_V2), message="the namespace audited")
    rolled = set_image(cluster, ns, IMAGE_V2, TEAM)
    assert rolled.returncode == 0, rolled.stderr
    assert WARNING in rolled.stderr
    assert counted(installation, ns) == 1
    [record] = wait_for(
        lambda: audit_only_records(cluster, ns), timeout=120, message="an AuditOnly record"
    )
    assert record["spec"]["auditReason"].startswith("NoApprovedChange: ")

    cluster.kubectl("annotate", "namespace", ns, f"{ANNOTATION}-", user=ADMIN)
    wait_for(lambda: refused_dry_run(cluster, ns, IMAGE_V3), message="the namespace enforced")
    assert set_image(cluster, ns, IMAGE_V3, TEAM).returncode != 0
