"""Policy is governance's, tried as the product team on the local control plane.

product-dev-1 has `edit` (which aggregates the chart's requester role) in the
governed namespace. Each test makes the attack of issue 10 and asserts the
webhook refuses it (or the controller does not count it), then walks the
legitimate path and asserts it still works.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.conftest import Governed
from tests.support.localcluster import LocalCluster
from tests.support.operator import Installation
from tests.support.polling import wait_for
from tests.support.scenario import IMAGE_V2, change_request, change_template, deployment, get

pytestmark = pytest.mark.integration

TEAM = "product-dev-1"
MANAGER = "change-manager-1"
YEAR_END = {
    "name": "year-end",
    "startTime": "2030-12-20T00:00:00Z",
    "endTime": "2031-01-02T00:00:00Z",
    "reason": "Year-end closing",
}


def merge_patch(cluster: LocalCluster, ns: str, what: str, patch: dict[str, Any], user: str) -> Any:
    return cluster.kubectl(
        "-n", ns, "patch", what, "--type=merge", "-p", json.dumps(patch), user=user, check=False
    )


def apply(cluster: LocalCluster, body: dict[str, Any] | str, user: str) -> Any:
    text = body if isinstance(body, str) else json.dumps(body)
    return cluster.kubectl("apply", "-f", "-", input=text, user=user, check=False)


def policy_patch(**policy: Any) -> dict[str, Any]:
    return {"spec": {"changePolicy": policy}}


# -- ServiceOnCall: the policy ---------------------------------------------------------


def test_a_team_only_adds_or_lengthens_freezes_of_its_service(
    cluster: LocalCluster, governed: Governed
) -> None:
    ns, soc = governed.namespace, "serviceoncall/payments-api"

    # Legitimate: the team adds a freeze, then lengthens it.
    assert merge_patch(cluster, ns, soc, policy_patch(freezes=[YEAR_END]), TEAM).returncode == 0
    longer = YEAR_END | {"endTime": "2031-01-09T00:00:00Z"}
    assert merge_patch(cluster, ns, soc, policy_patch(freezes=[longer]), TEAM).returncode == 0

    attacks = {
        "removes the freeze": (policy_patch(freezes=[]), "spec.changePolicy.freezes (year-end"),
        "shortens the freeze": (
            policy_patch(freezes=[longer | {"endTime": "2030-12-21T00:00:00Z"}]),
            "spec.changePolicy.freezes (year-end",
        ),
        "keeps approvals ten years": (
            policy_patch(approvalValiditySeconds=315360000),
            "spec.changePolicy.approvalValiditySeconds",
        ),
        "lets rollbacks through unrecorded": (
            policy_patch(rollback="RequireChange", restart="RequireChange"),
            "spec.changePolicy.restart, spec.changePolicy.rollback",
        ),
        "adds a second entry for production": (
            {
                "spec": {
                    "environments": [
                        {"name": "production", "namespace": ns, "production": True},
                        {"name": "shadow", "namespace": ns},
                    ]
                }
            },
            f"lists namespace {ns} more than once",
        ),
    }
    for attack, (patch, field) in attacks.items():
        refused = merge_patch(cluster, ns, soc, patch, TEAM)
        assert refused.returncode != 0, f"the team {attack}"
        assert field in refused.stderr, refused.stderr
    governed_only = merge_patch(cluster, ns, soc, policy_patch(freezes=[]), TEAM)
    assert "only change managers or platform administrators" in governed_only.stderr

    stored = get(cluster, ns, soc)["spec"]
    assert stored["changePolicy"]["freezes"][0]["endTime"] == "2031-01-09T00:00:00Z"
    assert stored["changePolicy"].get("approvalValiditySeconds", 86400) == 86400
    assert len(stored["environments"]) == 1

    # Legitimate: a change manager may change any of it.
    by_manager = merge_patch(
        cluster, ns, soc, policy_patch(freezes=[], approvalValiditySeconds=3600), MANAGER
    )
    assert by_manager.returncode == 0, by_manager.stderr


# -- ServiceOnCall: names and namespaces ----------------------------------------------------


@contextlib.contextmanager
def team_namespace(api: client.ApiClient, cluster: LocalCluster, team: bool) -> Iterator[str]:
    """A namespace (the product team may edit workloads in it when `team`), deleted after."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        if team:
            cluster.kubectl(
                "-n", name, "create", "rolebinding", "edit-team", "--clusterrole=edit",
                "--group=team-payments",
            )  # fmt: skip
        yield name
    finally:
        with contextlib.suppress(ApiException):
            core.delete_namespace(name)


def new_service(namespace: str, service: str, production: str) -> dict[str, Any]:
    """A ServiceOnCall with the default policy, as a team may declare it."""
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ServiceOnCall",
        "metadata": {"name": service, "namespace": namespace},
        "spec": {
            "service": {"name": service},
            "team": {"name": "team-payments", "members": [{"user": TEAM}]},
            "environments": [{"name": "production", "namespace": production, "production": True}],
        },
    }


def test_names_and_namespaces_are_claimed_once_and_only_with_rights(
    cluster: LocalCluster, api: client.ApiClient, governed: Governed
) -> None:
    with (
        team_namespace(api, cluster, team=True) as own,
        team_namespace(api, cluster, team=False) as foreign,
    ):
        attacks = {
            "takes another team's service name": (
                new_service(own, "payments-api", own),
                "service payments-api is already declared by ServiceOnCall",
            ),
            "takes another service's production": (
                new_service(own, "payments-shadow", governed.namespace),
                f"namespace {governed.namespace} is already claimed by ServiceOnCall",
            ),
            "claims a namespace it may not deploy to": (
                new_service(own, "payments-shadow", foreign),
                f"may not update Deployments in namespace {foreign}",
            ),
        }
        for attack, (body, message) in attacks.items():
            refused = apply(cluster, body, TEAM)
            assert refused.returncode != 0, f"the team {attack}"
            assert message in refused.stderr, refused.stderr

        # Legitimate: a new service in the team's own namespace, with the default policy.
        created = apply(cluster, new_service(own, "payments-shadow", own), TEAM)
        assert created.returncode == 0, created.stderr
        # ... and a platform administrator may claim any namespace for it.
        admin = apply(cluster, new_service(foreign, "payments-batch", foreign), "platform-admin-1")
        assert admin.returncode == 0, admin.stderr


# -- ChangeTemplate: edits deactivate, scope is fixed ----------------------------------------


def activate(cluster: LocalCluster, ns: str, name: str) -> None:
    done = merge_patch(cluster, ns, f"changetemplate/{name}", {"spec": {"active": True}}, MANAGER)
    assert done.returncode == 0, done.stderr


def test_a_team_edit_of_an_active_template_deactivates_it_whatever_else_it_does(
    cluster: LocalCluster, governed: Governed
) -> None:
    ns = governed.namespace
    assert apply(cluster, change_template(ns), TEAM).returncode == 0
    activate(cluster, ns, "image-bump")

    # The attack: widen it to every Deployment, and touch the activation stamp in the same write.
    widen = {
        "metadata": {"annotations": {"changegate.io/activated-by": TEAM}},
        "spec": {"workloads": [{"kind": "Deployment", "selector": {"matchLabels": {}}}]},
    }
    assert merge_patch(cluster, ns, "changetemplate/image-bump", widen, TEAM).returncode == 0
    template = get(cluster, ns, "changetemplate/image-bump")
    assert template["spec"]["active"] is False
    assert template["metadata"]["annotations"]["changegate.io/activated-by"] == MANAGER

    # Legitimate: a change manager's edit keeps it active, activated anew by them.
    activate(cluster, ns, "image-bump")
    summary = {"spec": {"summary": "A new image of the payments API"}}
    assert merge_patch(cluster, ns, "changetemplate/image-bump", summary, MANAGER).returncode == 0
    assert get(cluster, ns, "changetemplate/image-bump")["spec"]["active"] is True


@pytest.fixture
def two_running(cluster: LocalCluster, installation: Installation, namespace: str) -> str:
    """payments-api (labelled part of the service) and ledger, running before governance."""
    cluster.kubectl(
        "-n", namespace, "create", "rolebinding", "edit-team", "--clusterrole=edit",
        "--group=team-payments",
    )  # fmt: skip
    for name in ("payments-api", "ledger"):
        assert apply(cluster, deployment(namespace, name), TEAM).returncode == 0
    cluster.kubectl("-n", namespace, "label", "deployment/payments-api", "part-of=payments")
    for name in ("payments-api", "ledger"):
        cluster.kubectl("-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout=60s")
    return namespace


def standard_change(ns: str, name: str, workload: str) -> str:
    body = json.loads(
        change_request(ns, name, IMAGE_V2, type="Standard", templateRef={"name": "by-label"})
    )
    body["spec"]["targets"][0]["name"] = workload
    return json.dumps(body)


def approval_message(cluster: LocalCluster, ns: str, name: str) -> str:
    conditions = get(cluster, ns, f"changerequest/{name}").get("status", {}).get("conditions", [])
    return next((c["message"] for c in conditions if c["type"] == "Approved"), "")


def test_a_selector_scope_is_fixed_when_the_template_is_activated(
    cluster: LocalCluster, two_running: str, governed: Governed
) -> None:
    ns = governed.namespace
    template = change_template(ns, name="by-label")
    template["spec"]["workloads"] = [
        {"kind": "Deployment", "selector": {"matchLabels": {"part-of": "payments"}}}
    ]
    assert apply(cluster, template, TEAM).returncode == 0
    activate(cluster, ns, "by-label")
    scope = wait_for(
        lambda: get(cluster, ns, "changetemplate/by-label").get("status", {}).get("scope"),
        message="the template's scope to be recorded",
    )
    assert scope == [{"kind": "Deployment", "name": "payments-api"}]

    # The attack: label another workload after activation, then ask the template to cover it.
    labelled = cluster.kubectl(
        "-n", ns, "label", "deployment/ledger", "part-of=payments", user=TEAM, check=False
    )
    assert labelled.returncode == 0, labelled.stderr
    assert apply(cluster, standard_change(ns, "std-ledger", "ledger"), TEAM).returncode == 0
    why = wait_for(
        lambda: approval_message(cluster, ns, "std-ledger"),
        message="the ledger change to be considered",
    )
    assert "Deployment/ledger is outside the scope of template by-label" in why
    assert get(cluster, ns, "changerequest/std-ledger")["status"]["phase"] == "Pending"

    # Legitimate: the workload it matched at activation is covered.
    assert apply(cluster, standard_change(ns, "std-api", "payments-api"), TEAM).returncode == 0
    wait_for(
        lambda: (
            get(cluster, ns, "changerequest/std-api").get("status", {}).get("phase") == "Approved"
        ),
        message="the payments-api change to be approved by the template",
    )
    assert approval_message(cluster, ns, "std-api").startswith("fits template by-label")


# -- Review state of emergency changes -----------------------------------------------------------


def test_review_state_of_an_emergency_change_is_the_change_managers(
    cluster: LocalCluster, governed: Governed
) -> None:
    ns = governed.namespace
    emergency = change_request(
        ns, "hotfix-1", IMAGE_V2, type="Emergency", emergencyReason="card payments failing"
    )
    raised = apply(cluster, emergency, "oncall-1")
    assert raised.returncode == 0, raised.stderr
    labels = get(cluster, ns, "changerequest/hotfix-1")["metadata"]["labels"]
    assert labels["changegate.io/review"] == "required"

    for user in (TEAM, "oncall-1"):
        for change in ("changegate.io/review-", "changegate.io/review=done"):
            refused = cluster.kubectl(
                "-n", ns, "label", "--overwrite", "changerequest/hotfix-1", change,
                user=user, check=False,
            )  # fmt: skip
            assert refused.returncode != 0, f"{user} set {change}"
            assert "set only by change managers" in refused.stderr, refused.stderr
    forged = apply(
        cluster,
        json.loads(change_request(ns, "hotfix-2", IMAGE_V2, type="Emergency",
                                  emergencyReason="again"))
        | {"metadata": {"name": "hotfix-2", "namespace": ns,
                        "labels": {"changegate.io/review": "done"}}},
        "oncall-1",
    )  # fmt: skip
    assert forged.returncode != 0
    assert "set only by change managers" in forged.stderr

    # Legitimate: a change manager records the review.
    reviewed = cluster.kubectl(
        "-n", ns, "label", "--overwrite", "changerequest/hotfix-1", "changegate.io/review=done",
        user=MANAGER, check=False,
    )  # fmt: skip
    assert reviewed.returncode == 0, reviewed.stderr
    labels = get(cluster, ns, "changerequest/hotfix-1")["metadata"]["labels"]
    assert labels["changegate.io/review"] == "done"


def test_a_change_awaiting_review_is_deleted_only_by_governance(
    cluster: LocalCluster, governed: Governed
) -> None:
    ns = governed.namespace
    emergency = change_request(
        ns, "hotfix-del", IMAGE_V2, type="Emergency", emergencyReason="card payments failing"
    )
    assert apply(cluster, emergency, "oncall-1").returncode == 0
    # The chart's requester role grants no delete; a platform team may grant it, and the
    # webhook still keeps a change awaiting review.
    cluster.kubectl(
        "-n", ns, "create", "role", "delete-changes", "--verb=delete",
        "--resource=changerequests.changegate.io",
    )  # fmt: skip
    cluster.kubectl(
        "-n", ns, "create", "rolebinding", "delete-changes", "--role=delete-changes",
        "--group=team-payments",
    )  # fmt: skip
    for user in (TEAM, "oncall-1"):
        refused = cluster.kubectl(
            "-n", ns, "delete", "changerequest/hotfix-del", user=user, check=False
        )
        assert refused.returncode != 0, f"{user} deleted a change awaiting review"
        assert "awaits a change manager's review" in refused.stderr, refused.stderr
    assert get(cluster, ns, "changerequest/hotfix-del")["metadata"]["name"] == "hotfix-del"

    # Legitimate: a change that needs no review is the team's to delete, and governance
    # may delete one that does.
    normal = change_request(ns, "plain-del", IMAGE_V2)
    assert apply(cluster, normal, TEAM).returncode == 0
    deleted = cluster.kubectl("-n", ns, "delete", "changerequest/plain-del", user=TEAM, check=False)
    assert deleted.returncode == 0, deleted.stderr
    removed = cluster.kubectl(
        "-n", ns, "delete", "changerequest/hotfix-del", user="platform-admin-1", check=False
    )
    assert removed.returncode == 0, removed.stderr
