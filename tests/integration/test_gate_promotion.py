"""Promoted changes keep segregation of duties, tried as the personas on a real API server.

Issue 10, "what must hold" 4: the requester of the production change raised after
pre-production is the identity the API server authenticated there (the webhook's
stamp), so the person who deployed to pre-production cannot approve it, whatever
name they type; the chart's ValidatingAdmissionPolicy keeps anyone from writing
someone else's name as the deployer where the stamping webhook does not look (or
while it is away). Another approver still approves.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import Governed
from tests.integration.test_lifecycle import COMMIT_TIME, wait_phase
from tests.support.localcluster import LocalCluster
from tests.support.polling import wait_for
from tests.support.scenario import IMAGE_V2, decide, deployment, get

pytestmark = pytest.mark.integration

DEPLOYER = "change-manager-1"  # an approver of the service who also deploys to staging
OTHER_APPROVER = "change-manager-2"
POLICY = "changegate-provenance"
STAMPED = "is stamped by changegate from the authenticated user"


def namespace_with_editors(cluster: LocalCluster, name: str, *users: str) -> None:
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl(
        "-n", name, "create", "rolebinding", "edit-team", "--clusterrole=edit",
        "--group=team-payments", *(f"--user={u}" for u in users),
    )  # fmt: skip


def staging_deployment(namespace: str, **annotations: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(deployment(namespace, image=IMAGE_V2))
    body["metadata"]["annotations"] = {
        "changegate.io/source-repository": "https://git.example.com/payments/api",
        "changegate.io/source-commit": "4f2c9a1e0b7d3c58",
        "changegate.io/source-commit-time": COMMIT_TIME,
        **annotations,
    }
    return body


def apply(cluster: LocalCluster, body: dict[str, Any], user: str, *extra: str) -> Any:
    return cluster.kubectl(
        "apply", "-f", "-", "-o", "json", *extra, input=json.dumps(body), user=user, check=False
    )


def declare_staging(cluster: LocalCluster, production: str, staging: str) -> None:
    environments = [
        {"name": "staging", "namespace": staging, "raisesProductionChanges": True},
        {"name": "production", "namespace": production, "production": True},
    ]
    cluster.kubectl(
        "-n", production, "patch", "serviceoncall/payments-api", "--type=merge",
        "-p", json.dumps({"spec": {"environments": environments}}), user="platform-admin-1",
    )  # fmt: skip


def stamped_deployer(result: Any) -> str | None:
    if result.returncode != 0:
        return None
    annotations = json.loads(result.stdout)["metadata"].get("annotations") or {}
    return annotations.get("changegate.io/deployer")


def promoted_changes(cluster: LocalCluster, production: str) -> list[dict[str, Any]]:
    listed = cluster.kubectl(
        "-n", production, "get", "changerequests", "-l", "changegate.io/promoted-from=staging",
        "-o", "json",
    )  # fmt: skip
    items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
    return items


def test_the_pre_production_deployer_cannot_approve_the_promoted_change(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    production = governed_running.namespace
    staging = f"{production}-stg"
    namespace_with_editors(cluster, staging, DEPLOYER)
    try:
        declare_staging(cluster, production, staging)
        # The attack: the deployer writes another person's name as the deployer, so that
        # production's change would name them as its requester.
        attack = staging_deployment(staging, **{"changegate.io/deployer": "product-dev-1"})
        wait_for(
            lambda: (
                stamped_deployer(apply(cluster, attack, DEPLOYER, "--dry-run=server")) == DEPLOYER
            ),
            message="the webhook to stamp rollouts in staging",
        )
        applied = apply(cluster, attack, DEPLOYER)
        assert applied.returncode == 0, applied.stderr
        stored = get(cluster, staging, "deployment/payments-api")["metadata"]["annotations"]
        assert stored["changegate.io/deployer"] == DEPLOYER  # the typed name was overwritten

        [change] = wait_for(
            lambda: promoted_changes(cluster, production),
            message="the production change raised from staging",
        )
        name = change["metadata"]["name"]
        assert change["spec"]["requester"] == DEPLOYER
        assert "changegate.io/requester-unverified" not in (
            change["metadata"].get("annotations") or {}
        )
        wait_phase(cluster, production, name, "Pending")

        refused = decide(cluster, production, name, DEPLOYER)
        assert refused.returncode != 0
        assert "segregation of duties" in refused.stderr, refused.stderr
        assert wait_phase(cluster, production, name, "Pending")["spec"].get("approvals") in (
            None,
            [],
        )

        cluster.add_persona(OTHER_APPROVER, ("change-managers",))
        approved = decide(cluster, production, name, OTHER_APPROVER)
        assert approved.returncode == 0, approved.stderr
        done = wait_phase(cluster, production, name, "Approved")
        assert [a["approver"] for a in done["spec"]["approvals"]] == [OTHER_APPROVER]
    finally:
        cluster.kubectl("delete", "namespace", staging, "--wait=false")


def test_the_provenance_policy_refuses_a_deployer_stamp_naming_someone_else(
    cluster: LocalCluster, governed: Governed
) -> None:
    """Where the stamping webhook does not look (a namespace no service lists yet, or any
    namespace while the webhook is away), the API server's own policy refuses the stamp."""
    sandbox = f"{governed.namespace}-sbx"
    namespace_with_editors(cluster, sandbox)
    try:
        policy = json.loads(
            cluster.kubectl("get", "validatingadmissionpolicy", POLICY, "-o", "json").stdout
        )
        assert policy["spec"]["failurePolicy"] == "Fail"
        forged = staging_deployment(
            sandbox,
            **{
                "changegate.io/deployer": DEPLOYER,
                "changegate.io/deployed-template": "sha256:" + "0" * 64,
            },
        )
        refused = wait_for(
            lambda: (r := apply(cluster, forged, "product-dev-1")).returncode != 0 and r,
            message="the provenance policy to be enforced",
        )
        assert STAMPED in refused.stderr, refused.stderr
        assert "product-dev-1 may not name someone else" in refused.stderr
        assert cluster.kubectl(
            "-n", sandbox, "get", "deployment/payments-api", check=False
        ).returncode != 0  # fmt: skip

        # Naming oneself is what the stamp would say anyway: allowed.
        own = staging_deployment(sandbox, **{"changegate.io/deployer": "product-dev-1"})
        assert apply(cluster, own, "product-dev-1").returncode == 0
        # Changing it afterwards to someone else's name is refused too.
        relabel = cluster.kubectl(
            "-n", sandbox, "annotate", "--overwrite", "deployment/payments-api",
            f"changegate.io/deployer={DEPLOYER}", user="product-dev-1", check=False,
        )  # fmt: skip
        assert relabel.returncode != 0
        assert STAMPED in relabel.stderr
    finally:
        cluster.kubectl("delete", "namespace", sandbox, "--wait=false")
