"""The gate stays up under abuse, tried as the product team on a real API server.

Issue 10, "what must hold" 6: a team that fills its own namespace with maximal
ChangeRequests does not stop another team's rollouts from being decided (the
webhook keeps compact facts, and drops what can no longer admit anything), and
the chart's ResourceQuota example caps how many such objects a team can create.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Governed
from tests.integration.test_lifecycle import approved_change
from tests.support.localcluster import REPO, LocalCluster
from tests.support.scenario import IMAGE_V2, IMAGE_V3, set_image

pytestmark = pytest.mark.integration

ABUSER = "product-dev-1"
FLOOD = 60  # maximal ChangeRequests the team creates before the quota stops it
QUOTA = 50


def maximal_change(namespace: str, serial: int) -> dict[str, Any]:
    """A ChangeRequest as large as the API lets a team write one."""
    images = [
        {"container": f"c{c:02d}", "image": f"registry.example.com/{'x' * 180}/img-{c}:1.{serial}"}
        for c in range(16)
    ]
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ChangeRequest",
        "metadata": {"name": f"flood-{serial:04d}", "namespace": namespace},
        "spec": {
            "service": "payments-api",
            "type": "Normal",
            "summary": "s" * 256,
            "description": "d" * 4096,
            "backoutPlan": "b" * 4096,
            "targets": [
                {"kind": "Deployment", "name": f"w-{t:02d}", "images": images} for t in range(16)
            ],
            "source": {"repository": "https://git.example.com/flood", "commit": "4f2c9a1e0b7d3c58"},
        },
    }


def chart_quota(cluster: LocalCluster, namespace: str) -> dict[str, Any]:
    """The chart's ResourceQuota example, rendered for `namespace`, with a small ChangeRequest cap."""
    rendered = subprocess.run(
        [
            str(cluster.bin_dir / "helm"),
            "template",
            "changegate",
            str(REPO / "charts" / "changegate"),
            "--kube-version",
            "1.34.0",
            "--set",
            "quota.enabled=true",
            "--set",
            f"quota.namespaces={{{namespace}}}",
            "--set-string",
            f"quota.hard.count/changerequests\\.changegate\\.io={QUOTA}",
            "--show-only",
            "templates/resourcequota-objects.yaml",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    quota: dict[str, Any] = yaml.safe_load(rendered)
    return quota


def flood(cluster: LocalCluster, namespace: str) -> list[str]:
    """Create FLOOD maximal changes as the team, all at once; the errors of those refused."""
    items = [maximal_change(namespace, i) for i in range(FLOOD)]
    created = cluster.kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        user=ABUSER,
        check=False,
    )
    return [line for line in created.stderr.splitlines() if line.strip()]


def test_a_team_flooding_changes_hits_the_quota_and_rollouts_are_still_decided(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    cluster.kubectl("apply", "-f", "-", input=json.dumps(chart_quota(cluster, ns)))

    refused = flood(cluster, ns)
    assert len(refused) == FLOOD - QUOTA, refused[:3]
    assert all("exceeded quota" in line for line in refused), refused[:3]

    # The flood's changes admit nothing: an undeclared rollout is still refused, and said why.
    denied = set_image(cluster, ns, IMAGE_V3)
    assert denied.returncode != 0
    assert "no approved ChangeRequest of service payments-api covers it" in denied.stderr

    # With the quota gone, the team still deploys what its change manager approved.
    cluster.kubectl("delete", "resourcequota", "--all", "-n", ns)
    approved_change(cluster, ns, "api-1-1-0", IMAGE_V2)
    assert set_image(cluster, ns, IMAGE_V2).returncode == 0


def test_another_teams_rollouts_are_decided_while_one_team_floods_its_namespace(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    # The other team: its own namespace, the same edit role, no quota.
    other = f"{ns}-flood"
    cluster.kubectl("create", "namespace", other)
    try:
        cluster.kubectl(
            "-n",
            other,
            "create",
            "rolebinding",
            "edit-team",
            "--clusterrole=edit",
            "--group=team-payments",
        )
        assert len(flood(cluster, other)) < FLOOD, "the flooding team created its changes"

        approved_change(cluster, ns, "api-1-1-0", IMAGE_V2)
        assert set_image(cluster, ns, IMAGE_V2).returncode == 0, "an approved rollout passes"
        denied = set_image(cluster, ns, IMAGE_V3)
        assert denied.returncode != 0, "an unapproved rollout is still refused"
        assert "denied the request" in denied.stderr
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)
