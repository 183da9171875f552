"""A real rollout moves its service's DORA figures: ServiceOnCall status.dora and the
controller's changegate_dora_* gauges, on the local control plane.

The service is its own (dora-api), so records other tests write for payments-api
never count here.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.integration.conftest import service_on_call
from tests.support.localcluster import LocalCluster
from tests.support.operator import Installation
from tests.support.polling import wait_for
from tests.support.scenario import IMAGE_V2, change_request, decide, deployment, get, set_image

pytestmark = pytest.mark.integration

SERVICE = "dora-api"
TEAM = "product-dev-1"


def dora(cluster: LocalCluster, ns: str) -> dict[str, Any]:
    status = get(cluster, ns, f"serviceoncall/{SERVICE}").get("status") or {}
    found: dict[str, Any] = status.get("dora") or {}
    return found


def gauge(installation: Installation, name: str) -> float | None:
    line = re.search(
        rf'^{name}\{{service="{SERVICE}"\}} (\S+)$', installation.controller.metrics(), re.M
    )
    return float(line.group(1)) if line else None


def govern(cluster: LocalCluster, ns: str) -> None:
    """The namespace runs payments-api at IMAGE_V1, then becomes dora-api's production."""
    cluster.kubectl(
        "-n", ns, "create", "rolebinding", "edit-team", "--clusterrole=edit", "--group=team-payments"
    )  # fmt: skip
    cluster.kubectl("apply", "-f", "-", input=deployment(ns), user=TEAM)
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/payments-api", "--timeout=60s")
    declared = json.dumps(service_on_call(ns, service=SERVICE))
    applied = cluster.kubectl("apply", "-f", "-", input=declared, user="platform-admin-1")
    assert applied.returncode == 0, applied.stderr
    cluster.kubectl("label", "namespace", ns, "changegate.io/governed=true")
    wait_for(
        lambda: (
            "denied the request"
            in set_image(cluster, ns, IMAGE_V2, TEAM, "--dry-run=server").stderr
        ),
        message="the webhook to govern the namespace",
    )


def test_a_rollouts_record_moves_status_dora_and_the_gauge(
    cluster: LocalCluster, installation: Installation, namespace: str
) -> None:
    ns = namespace
    govern(cluster, ns)
    # A new service's figures are computed at once: nothing deployed yet.
    before = wait_for(lambda: dora(cluster, ns), timeout=60, message="status.dora to be filled")
    assert (before["deployments"], before["deploymentFrequency"]) == (0, "None")
    assert before["periodSeconds"] == 30 * 86400
    wait_for(
        lambda: gauge(installation, "changegate_dora_deployments") == 0,
        message="changegate_dora_deployments to read 0",
    )

    raised = change_request(ns, "dora-api-1-1-0", IMAGE_V2, service=SERVICE)
    assert cluster.kubectl("apply", "-f", "-", input=raised, user=TEAM).returncode == 0
    assert decide(cluster, ns, "dora-api-1-1-0", "change-manager-1").returncode == 0
    wait_for(
        lambda: (
            (get(cluster, ns, "changerequest/dora-api-1-1-0").get("status") or {}).get("phase")
            == "Approved"
        ),
        timeout=60,
        message="the change to be approved",
    )
    rolled = set_image(cluster, ns, IMAGE_V2, TEAM)
    assert rolled.returncode == 0, rolled.stderr

    after = wait_for(
        lambda: (found := dora(cluster, ns)).get("deployments") == 1 and found,
        timeout=120,
        message="status.dora.deployments to count the rollout",
    )
    assert after["successfulDeployments"] == 1
    assert after["failedDeployments"] == 0
    assert after["changeFailPercent"] == 0
    assert after["deploymentFrequency"] == "Monthly"  # 1 in 30 days
    assert after["computedTime"] >= before["computedTime"]
    wait_for(
        lambda: gauge(installation, "changegate_dora_deployments") == 1,
        timeout=30,
        message="changegate_dora_deployments{service=dora-api} to read 1",
    )
    assert gauge(installation, "changegate_dora_change_fail_rate") == 0
