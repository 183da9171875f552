"""The reports on the real control plane, from records made by real (kwok) rollouts.

Two approved changes roll out and the second is rolled back; then
`changegate report compliance` and `report dora` run as the auditor persona
(the chart's auditor role alone) and as the product team, which reads only
its own namespaces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Governed
from tests.integration.test_cli import Cli, succeeded
from tests.integration.test_lifecycle import approved_change, records, wait_phase
from tests.support.localcluster import LocalCluster
from tests.support.operator import Installation
from tests.support.polling import wait_for
from tests.support.scenario import IMAGE_V2, IMAGE_V3, set_image

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(cluster: LocalCluster, installation: Installation, tmp_path: Path) -> Cli:
    return Cli(cluster, tmp_path)


def report(cli: Cli, user: str, *args: str) -> Any:
    return json.loads(succeeded(cli.run(user, "report", *args, "--since", "1d", "-o", "json")))


def test_reports_from_real_rollouts_as_the_auditor_and_the_team(
    cluster: LocalCluster, governed_running: Governed, cli: Cli
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
    wait_for(lambda: len(records(cluster, ns)) == 3, message="three DeploymentRecords")

    compliance = report(cli, "auditor-1", "compliance", "-n", ns)
    rows = compliance["rows"]
    assert [(r["basis"], r["change"]) for r in rows] == [
        ("Change", "api-1-1-0"),
        ("Change", "api-1-2-0"),
        ("Rollback", "api-1-1-0"),
    ]
    first = rows[0]
    assert first["images"] == [f"api={IMAGE_V2}"]
    assert [a["approver"] for a in first["approvals"]] == ["change-manager-1"]
    assert first["approvals"][0]["time"] is not None  # from the change's stamped approval
    assert (first["requester"], first["deployer"]) == ("product-dev-1", "product-dev-1")
    assert first["commit"] == "4f2c9a1e0b7d3c58"
    assert first["lead_time_seconds"] > 0
    [running] = compliance["running"]
    assert running["images"] == [f"api={IMAGE_V2}"]  # the rollback runs now
    assert compliance["exceptions"] == []

    dora = report(cli, "auditor-1", "dora", "-n", ns)
    [figures] = dora["services"]
    assert figures["service"] == "payments-api"
    assert (figures["deployments"], figures["successful"]) == (3, 3)
    assert figures["failed"] == 1  # api-1-2-0, rolled back within the horizon
    assert figures["change_fail_rate"] == pytest.approx(1 / 3)
    assert figures["recovery_median_seconds"] is not None
    assert figures["lead_time_median_seconds"] > 0

    # The team cannot list the cluster-scoped records; its changes' rollouts are its figures.
    team = report(cli, "product-dev-1", "dora", "-n", ns)
    [own] = team["services"]
    assert (own["deployments"], own["failed"]) == (2, 0)  # the rollback has no change
    elsewhere = cli.run("product-dev-1", "report", "dora", "-n", "kube-system")
    assert elsewhere.returncode != 0
    assert "forbidden" in elsewhere.stderr.lower()
    everything = cli.run("product-dev-1", "report", "dora")
    assert everything.returncode != 0
