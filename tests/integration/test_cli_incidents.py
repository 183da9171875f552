"""`changegate incident` and `changegate oncall` against the real API server, as personas.

The CLI's `main` runs in this process with a persona's kubeconfig, so the API
server authenticates the persona from its client certificate and RBAC and the
operator's webhook judge it as they would a person. What the commands wrote is
read back with the admin client, and the controller's phase confirms it.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from kubernetes import client

from changegate.cli import main
from tests.support.localcluster import LocalCluster
from tests.support.operator import Installation
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration


def on_call_service(namespace: str) -> dict[str, Any]:
    service = f"svc-{namespace}"
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ServiceOnCall",
        "metadata": {"name": service, "namespace": namespace},
        "spec": {
            "service": {"name": service, "displayName": "CLI", "tier": "Tier2"},
            "team": {
                "name": "team-payments",
                "members": [{"user": "oncall-1"}, {"user": "product-dev-1"}],
            },
            "environments": [{"name": "production", "namespace": namespace, "production": True}],
            "onCall": {
                "timeZone": "Europe/London",
                "rotations": [
                    {
                        "name": "primary",
                        "type": "Weekly",
                        "participants": ["oncall-1", "product-dev-1"],
                        "startTime": "2025-01-06T09:00:00Z",
                    }
                ],
            },
        },
    }


@pytest.fixture
def service(cluster: LocalCluster, installation: Installation, namespace: str) -> str:
    """A service of the product team, declared in the test's namespace, the team editing there."""
    cluster.kubectl(
        "-n", namespace, "create", "rolebinding", "edit-team",
        "--clusterrole=edit", "--group=team-payments",
    )  # fmt: skip
    declared = on_call_service(namespace)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(declared), user="platform-admin-1")
    return str(declared["spec"]["service"]["name"])


def run(
    cluster: LocalCluster, user: str, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    """`changegate --kubeconfig <persona> ARGV...` in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main(["--kubeconfig", str(cluster.persona_kubeconfig(user)), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_incident(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "changegate.io", "v1alpha1", namespace, "incidents", name
    )
    return cast(dict[str, Any], found)


def test_an_incident_is_declared_acknowledged_noted_and_resolved_through_the_cli(
    cluster: LocalCluster,
    api: client.ApiClient,
    namespace: str,
    service: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flags = ("-n", namespace)
    code, out, err = run(
        cluster, "product-dev-1", capsys, "incident", "declare", *flags,
        "--service", service, "--summary", "checkout fails", "--severity", "high",
    )  # fmt: skip
    assert code == 0, err
    name = out.strip()
    assert name.startswith(f"{service}-")

    code, out, err = run(
        cluster, "oncall-1", capsys, "incident", "ack", name, *flags, "--comment", "on it"
    )
    assert (code, err) == (0, ""), err
    assert out.startswith(f"incident/{name} acknowledged by ")
    code, out, err = run(
        cluster, "product-dev-1", capsys, "incident", "note", name, *flags, "db failover"
    )
    assert code == 0, err
    code, out, err = run(
        cluster, "oncall-1", capsys, "incident", "resolve", name, *flags,
        "--code", "Fixed", "--note", "rolled back",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith(f"incident/{name} resolved (Fixed) by ")

    written = read_incident(api, namespace, name)["spec"]
    assert (written["origin"], written["severity"], written["summary"]) == (
        "Manual",
        "High",
        "checkout fails",
    )
    assert [a["comment"] for a in written["acknowledgements"]] == ["on it"]
    assert [n["text"] for n in written["notes"]] == ["db failover"]
    assert (written["resolution"]["code"], written["resolution"]["note"]) == (
        "Fixed",
        "rolled back",
    )
    # Nobody typed an identity; where the webhook stamps one it is the authenticated user.
    assert written["acknowledgements"][0].get("user", "oncall-1") == "oncall-1"
    assert written["notes"][0].get("author", "product-dev-1") == "product-dev-1"

    wait_for(
        lambda: read_incident(api, namespace, name).get("status", {}).get("phase") == "Resolved",
        message="the controller to see the incident resolved",
    )
    code, out, err = run(
        cluster, "oncall-1", capsys, "incident", "show", name, *flags, "-o", "json"
    )
    assert code == 0, err
    assert json.loads(out)["status"]["phase"] == "Resolved"
    code, out, err = run(cluster, "oncall-1", capsys, "incident", "list", *flags)
    assert code == 0, err
    row = out.splitlines()[1].split()
    assert row[:4] == [name, service, "High", "Resolved"]


def test_a_refusal_is_the_api_servers_own_words(
    cluster: LocalCluster, namespace: str, service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        cluster, "outsider-1", capsys, "incident", "declare", "-n", namespace,
        "--service", service, "--summary", "not mine", "--severity", "Low",
    )  # fmt: skip
    assert code == 1
    assert out == ""
    assert err.startswith("error: ")
    assert "outsider-1" in err
    assert "Traceback" not in err


def test_oncall_prints_the_person_the_rotation_names(
    cluster: LocalCluster, namespace: str, service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Weekly from Monday 6 January 2025, 09:00 London: oncall-1, then product-dev-1.
    at = ("--at", "2025-01-08T12:00:00Z")
    code, out, err = run(cluster, "auditor-1", capsys, "oncall", service, *at, "--next", "1")
    assert code == 0, err
    first, second = out.splitlines()[1:]
    assert first.split()[:5] == [
        service,
        namespace,
        "oncall-1",
        "2025-01-08T12:00:00Z",
        "2025-01-13T09:00:00Z",
    ]
    assert second.split()[2] == "product-dev-1"

    code, out, err = run(
        cluster, "product-dev-1", capsys, "oncall", service, "-n", namespace, *at, "-o", "json"
    )
    assert code == 0, err
    shifts = json.loads(out)["items"][0]["shifts"]
    assert [entry["user"] for entry in shifts[0]["onCall"]] == ["oncall-1"]
