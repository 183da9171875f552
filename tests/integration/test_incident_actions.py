"""People acting on an Incident through the webhook, as the personas, on the local control plane.

A team member's acknowledgement is stamped with their name; a name typed for
someone else is overwritten; an outsider is refused; an old note cannot be
edited; an incident manager's freeze on a major incident refuses a Normal
rollout of the service, naming the incident, while a rollback still passes;
each rollout of a change naming an incident (spec.incidentRef) is on its timeline once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import Governed
from tests.integration.test_lifecycle import approved_change, records, wait_phase
from tests.support.localcluster import LocalCluster
from tests.support.polling import wait_for
from tests.support.scenario import IMAGE_V1, IMAGE_V2, IMAGE_V3, get, set_image

# Every Incident a test opens is resolved after it (see conftest.py): an open major one
# would freeze payments-api for the tests after it.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("incidents_resolved")]


def incident(namespace: str, name: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "changegate.io/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "service": "payments-api",
                "summary": "5xx above 5%",
                "severity": "High",
                **spec,
            },
        }
    )


def let_act(cluster: LocalCluster, namespace: str, *users: str) -> None:
    """RBAC lets them write Incidents here; whether they may act is the webhook's to say."""
    for user in users:
        cluster.kubectl(
            "-n", namespace, "create", "rolebinding", f"edit-{user}", "--clusterrole=edit",
            f"--user={user}",
        )  # fmt: skip


def patch(cluster: LocalCluster, namespace: str, name: str, user: str, spec: dict[str, Any]) -> Any:
    return cluster.kubectl(
        "-n", namespace, "patch", f"incident/{name}", "--type=merge",
        "-p", json.dumps({"spec": spec}), user=user, check=False,
    )  # fmt: skip


def test_acts_are_stamped_and_only_the_team_and_incident_managers_act(
    cluster: LocalCluster, governed: Governed
) -> None:
    ns = governed.namespace
    let_act(cluster, ns, "incident-manager-1")
    created = cluster.kubectl(
        "apply", "-f", "-", input=incident(ns, "inc-1"), user="product-dev-1", check=False
    )
    assert created.returncode == 0, created.stderr

    # Refused until the webhook's ServiceOnCall cache knows the team; nothing is written then.
    wait_for(
        lambda: (
            patch(
                cluster, ns, "inc-1", "product-dev-1", {"acknowledgements": [{"comment": "on it"}]}
            ).returncode
            == 0
        ),
        message="the team member's acknowledgement",
    )
    [ack] = get(cluster, ns, "incident/inc-1")["spec"]["acknowledgements"]
    assert ack["user"] == "product-dev-1"
    assert ack["time"].endswith("Z")

    forged = patch(
        cluster, ns, "inc-1", "product-dev-1",
        {"notes": [{"author": "product-dev-2", "text": "gateway restarted"}]},
    )  # fmt: skip
    assert forged.returncode == 0, forged.stderr
    assert "recorded as product-dev-1" in forged.stderr  # the warning kubectl prints
    [note] = get(cluster, ns, "incident/inc-1")["spec"]["notes"]
    assert note["author"] == "product-dev-1"

    outsider = patch(
        cluster, ns, "inc-1", "outsider-1",
        {"acknowledgements": [ack, {"comment": "mine now"}]},
    )  # fmt: skip
    assert outsider.returncode != 0
    assert "outsider-1 may not act on Incident inc-1" in outsider.stderr
    assert "product-dev-1, product-dev-2" in outsider.stderr
    assert "incident-managers" in outsider.stderr

    rewritten = patch(
        cluster, ns, "inc-1", "product-dev-1", {"notes": [{**note, "text": "nothing happened"}]}
    )
    assert rewritten.returncode != 0
    assert "spec.notes can only be appended" in rewritten.stderr

    assigned = patch(
        cluster, ns, "inc-1", "incident-manager-1", {"commander": "incident-manager-1"}
    )
    assert assigned.returncode == 0, assigned.stderr
    spec = get(cluster, ns, "incident/inc-1")["spec"]
    assert spec["commanderAssignedBy"] == "incident-manager-1"
    assert [n["text"] for n in spec["notes"]] == ["gateway restarted"]


def test_a_freezing_major_incident_refuses_a_normal_rollout_but_not_a_rollback(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    let_act(cluster, ns, "incident-manager-1")
    approved_change(cluster, ns, "api-1-1-0", IMAGE_V2)
    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    wait_phase(cluster, ns, "api-1-1-0", "Completed")
    approved_change(cluster, ns, "api-1-2-0", IMAGE_V3)
    assert set_image(cluster, ns, IMAGE_V3).returncode == 0
    wait_phase(cluster, ns, "api-1-2-0", "Completed")
    # A Normal change, approved, back to the first image: no change ever deployed it.
    approved_change(cluster, ns, "api-1-0-1", IMAGE_V1)

    by_team = cluster.kubectl(
        "apply", "-f", "-", input=incident(ns, "inc-major", major=True, freezeChanges=True),
        user="product-dev-1", check=False,
    )  # fmt: skip
    assert by_team.returncode != 0
    assert "only incident managers" in by_team.stderr
    declared = cluster.kubectl(
        "apply", "-f", "-", input=incident(ns, "inc-major", major=True, freezeChanges=True),
        user="incident-manager-1", check=False,
    )  # fmt: skip
    assert declared.returncode == 0, declared.stderr

    refused = wait_for(
        lambda: (
            (r := set_image(cluster, ns, IMAGE_V1)).returncode != 0
            and "frozen by major incident" in r.stderr
            and r
        ),
        message="the freeze to reach the webhook",
    )
    assert f"major incident {ns}/inc-major" in refused.stderr

    undo = cluster.kubectl(
        "-n", ns, "rollout", "undo", "deployment/payments-api", user="product-dev-1", check=False
    )
    assert undo.returncode == 0, undo.stderr
    annotations = get(cluster, ns, "deployment/payments-api")["metadata"]["annotations"]
    assert annotations["changegate.io/admission"] == "Rollback"
    assert annotations["changegate.io/change-request"] == "api-1-1-0"


def rolled_out(cluster: LocalCluster, namespace: str, name: str) -> list[str]:
    timeline = get(cluster, namespace, f"incident/{name}").get("status", {}).get("timeline", [])
    return [e["message"] for e in timeline if e["action"] == "ChangeRolledOut"]


def entry_of(cluster: LocalCluster, namespace: str, change: str) -> str:
    """What the timeline should say of the change's rollout, from its DeploymentRecord."""
    (record,) = [
        r for r in records(cluster, namespace) if r["spec"]["changeRequest"]["name"] == change
    ]
    return (
        f"change {change} rolled out revision {record['spec']['revision']} of"
        f" Deployment/payments-api: Succeeded, record {record['metadata']['name']}"
    )


def test_each_rollout_of_a_change_naming_an_incident_is_on_its_timeline_once(
    cluster: LocalCluster, governed_running: Governed
) -> None:
    ns = governed_running.namespace
    opened = cluster.kubectl(
        "apply", "-f", "-", input=incident(ns, "inc-slow"), user="product-dev-1", check=False
    )
    assert opened.returncode == 0, opened.stderr
    approved_change(cluster, ns, "api-fix-1", IMAGE_V2, incidentRef={"name": "inc-slow"})
    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    wait_phase(cluster, ns, "api-fix-1", "Completed")
    first = entry_of(cluster, ns, "api-fix-1")
    wait_for(
        lambda: rolled_out(cluster, ns, "inc-slow") == [first],
        message="the rollout on the incident's timeline",
    )

    # More events of the finished rollout (a metadata edit), then a second answering change:
    # the controller handles the Deployment's events in order, so once the second entry is
    # there the re-event has been handled, and the first entry must still be there once.
    poked = cluster.kubectl(
        "-n", ns, "annotate", "deployment/payments-api", "example.com/poked=yes",
        user="product-dev-1", check=False,
    )  # fmt: skip
    assert poked.returncode == 0, poked.stderr
    approved_change(cluster, ns, "api-fix-2", IMAGE_V3, incidentRef={"name": "inc-slow"})
    assert set_image(cluster, ns, IMAGE_V3).returncode == 0
    wait_phase(cluster, ns, "api-fix-2", "Completed")
    second = entry_of(cluster, ns, "api-fix-2")
    wait_for(
        lambda: len(rolled_out(cluster, ns, "inc-slow")) >= 2,
        message="the second rollout on the incident's timeline",
    )
    assert rolled_out(cluster, ns, "inc-slow") == [first, second]
