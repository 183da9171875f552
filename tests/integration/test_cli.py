"""The CLI against the real API server and webhook, run as each persona would run it.

`changegate` runs as a subprocess with a persona's kubeconfig, and through
kubectl's plugin mechanism (`kubectl changegate`, found on PATH, KUBECONFIG
honoured), so the identities the webhook stamps are the ones the API server
authenticated from those kubeconfigs.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Governed
from tests.support.localcluster import REPO, LocalCluster
from tests.support.operator import Installation
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration

VENV_BIN = REPO / ".venv" / "bin"
IMAGE = "registry.example.com/payments/api:1.4.2"
SHA = "4f2c9a1e0b7d3c58a6e1f09b2d4c7e8a1b3f5d60"
GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.example.com",
    "GITHUB_REPOSITORY": "payments/api",
    "GITHUB_SHA": SHA,
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_REF_NAME": "main",
    "GITHUB_RUN_ID": "9132",
}


class Cli:
    """Runs `changegate` and `kubectl changegate` as a persona, in a bare environment."""

    def __init__(self, cluster: LocalCluster, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir  # not a git checkout: no commit time is read from git

    def environment(self, user: str, extra: dict[str, str]) -> dict[str, str]:
        path = os.pathsep.join([str(VENV_BIN), str(self.cluster.bin_dir), "/usr/bin", "/bin"])
        kubeconfig = str(self.cluster.persona_kubeconfig(user))
        return {"PATH": path, "HOME": str(self.workdir), "KUBECONFIG": kubeconfig, **extra}

    def run(
        self, user: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """`changegate --kubeconfig <persona> ...`"""
        kubeconfig = str(self.cluster.persona_kubeconfig(user))
        return subprocess.run(
            [str(VENV_BIN / "changegate"), "--kubeconfig", kubeconfig, *args],
            env=self.environment(user, env or {}),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def plugin(self, user: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`kubectl changegate ...`, with the persona's kubeconfig in KUBECONFIG."""
        return subprocess.run(
            [str(self.cluster.bin_dir / "kubectl"), "changegate", *args],
            env=self.environment(user, {}),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
def cli(cluster: LocalCluster, installation: Installation, tmp_path: Path) -> Cli:
    return Cli(cluster, tmp_path)


def get_change(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    result = cluster.kubectl("-n", namespace, "get", "changerequest", name, "-o", "json")
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one-line error of an expected failure."""
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:") or code == 2, result.stderr
    return result.stderr


def request(cli: Cli, governed: Governed, *extra: str, user: str = "product-dev-1") -> str:
    out = succeeded(
        cli.run(
            user,
            "request",
            "-n",
            governed.namespace,
            "--service",
            governed.service,
            "--image",
            f"api={IMAGE}",
            *extra,
            env=GITHUB,
        )
    )
    return out.strip()


def test_a_pipeline_raises_a_change_in_one_line(
    cli: Cli, cluster: LocalCluster, governed: Governed
) -> None:
    name = request(cli, governed, "--commit-time", "2026-11-16T16:12:00Z")

    assert name == "payments-api-4f2c9a1"
    change = get_change(cluster, governed.namespace, name)
    spec = change["spec"]
    assert spec["requester"] == "product-dev-1"  # stamped by the webhook, not by the CLI
    assert spec["approvals"] == []
    assert spec["type"] == "Normal"
    assert spec["targets"] == [
        {
            "kind": "Deployment",
            "name": "payments-api",
            "images": [{"container": "api", "image": IMAGE}],
        }
    ]
    assert spec["source"] == {
        "repository": "https://github.example.com/payments/api",
        "commit": SHA,
        "commitTime": "2026-11-16T16:12:00Z",
        "branch": "main",
        "pipelineRun": "https://github.example.com/payments/api/actions/runs/9132",
    }

    again = cli.run(
        "product-dev-1",
        "request",
        "-n",
        governed.namespace,
        "--service",
        "payments-api",
        env=GITHUB,
    )
    assert "already exists" in refused(again)


def test_the_requester_cannot_approve_their_own_change(
    cli: Cli, cluster: LocalCluster, governed: Governed
) -> None:
    name = request(cli, governed)

    own = cli.run("product-dev-1", "approve", name, "-n", governed.namespace)

    message = refused(own)
    assert "product-dev-1 requested ChangeRequest" in message
    assert "(segregation of duties)" in message
    assert get_change(cluster, governed.namespace, name)["spec"]["approvals"] == []


def test_a_change_manager_approves_as_themselves(
    cli: Cli, cluster: LocalCluster, governed: Governed
) -> None:
    name = request(cli, governed)

    out = succeeded(
        cli.run("change-manager-1", "approve", name, "-n", governed.namespace, "--comment", "go")
    )

    assert out.strip() == f"changerequest/{name} approved by change-manager-1"
    approvals = get_change(cluster, governed.namespace, name)["spec"]["approvals"]
    assert [(a["approver"], a["decision"], a["comment"]) for a in approvals] == [
        ("change-manager-1", "Approved", "go")
    ]
    listed = json.loads(
        succeeded(cli.run("auditor-1", "list", "-n", governed.namespace, "-o", "json"))
    )
    assert listed["kind"] == "List"
    [item] = [i for i in listed["items"] if i["metadata"]["name"] == name]
    assert item["spec"]["approvals"][0]["approver"] == "change-manager-1"
    assert item["spec"]["requester"] == "product-dev-1"

    again = cli.run("change-manager-1", "approve", name, "-n", governed.namespace)
    assert "is Approved: its spec is frozen" in refused(again)


def test_those_who_may_not_decide_are_told_why(
    cli: Cli, cluster: LocalCluster, governed: Governed
) -> None:
    name = request(cli, governed)

    colleague = cli.run("product-dev-2", "approve", name, "-n", governed.namespace)
    auditor = cli.run("auditor-1", "approve", name, "-n", governed.namespace)
    missing = cli.run("change-manager-1", "approve", "no-such-change", "-n", governed.namespace)

    assert "product-dev-2 is not an approver of service payments-api" in refused(colleague)
    assert 'User "auditor-1" cannot patch resource "changerequests"' in refused(auditor)
    assert 'changerequests.changegate.io "no-such-change" not found' in refused(missing)


def test_a_rejection_needs_a_comment(cli: Cli, cluster: LocalCluster, governed: Governed) -> None:
    name = request(cli, governed)

    no_flag = cli.run("change-manager-1", "reject", name, "-n", governed.namespace)
    empty = cli.run("change-manager-1", "reject", name, "-n", governed.namespace, "--comment", "")
    assert "--comment" in refused(no_flag, code=2)
    assert "a rejection needs a comment" in refused(empty)

    out = succeeded(
        cli.run(
            "change-manager-1",
            "reject",
            name,
            "-n",
            governed.namespace,
            "--comment",
            "no backout plan",
        )
    )

    assert out.strip() == f"changerequest/{name} rejected by change-manager-1"
    [decision] = get_change(cluster, governed.namespace, name)["spec"]["approvals"]
    assert (decision["approver"], decision["decision"], decision["comment"]) == (
        "change-manager-1",
        "Rejected",
        "no backout plan",
    )


def test_the_requester_cancels_a_pending_change(
    cli: Cli, cluster: LocalCluster, governed: Governed
) -> None:
    name = request(cli, governed)

    out = succeeded(cli.run("product-dev-1", "cancel", name, "-n", governed.namespace))

    assert out.strip() == f"changerequest/{name} cancelled"
    assert get_change(cluster, governed.namespace, name)["spec"]["cancel"] is True


def test_status_reads_like_describe_and_prints_objects(
    cli: Cli, cluster: LocalCluster, governed: Governed
) -> None:
    name = request(cli, governed, "--summary", "Payments API 1.4.2")
    succeeded(
        cli.run("change-manager-1", "approve", name, "-n", governed.namespace, "--comment", "go")
    )

    text = succeeded(cli.run("auditor-1", "status", name, "-n", governed.namespace))
    as_yaml = succeeded(
        cli.run("auditor-1", "status", name, "-n", governed.namespace, "-o", "yaml")
    )

    assert f"Name:          {name}\n" in text
    assert "Summary:       Payments API 1.4.2\n" in text
    assert "Requester:     product-dev-1\n" in text
    assert f"  Deployment/payments-api: api={IMAGE}\n" in text
    assert "Approved by change-manager-1: go\n" in text
    assert f"name: {name}\n" in as_yaml
    assert "approver: change-manager-1\n" in as_yaml


def test_kubectl_runs_it_as_a_plugin(cli: Cli, cluster: LocalCluster, governed: Governed) -> None:
    plugins = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), "plugin", "list"],
        env=cli.environment("product-dev-2", {}),
        capture_output=True,
        text=True,
        check=False,
    )
    assert str(VENV_BIN / "kubectl-changegate") in plugins.stdout

    name = succeeded(
        cli.plugin(
            "product-dev-2",
            "request",
            "-n",
            governed.namespace,
            "--service=payments-api",
            "--target=deployment/payments-api",
            "--name=via-kubectl",
        )
    ).strip()
    table = succeeded(cli.plugin("change-manager-1", "list", "-n", governed.namespace))
    everywhere = succeeded(cli.plugin("change-manager-1", "list", "-A", "--service=payments-api"))

    assert name == "via-kubectl"
    assert get_change(cluster, governed.namespace, name)["spec"]["requester"] == "product-dev-2"
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "SERVICE", "TYPE", "PHASE", "APPROVALS", "TARGET", "AGE"]
    assert [row.split()[:3] for row in rows] == [["via-kubectl", "payments-api", "Normal"]]
    assert everywhere.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    mine = [
        row.split()[:3] for row in everywhere.splitlines() if row.startswith(governed.namespace)
    ]
    assert mine == [[governed.namespace, "via-kubectl", "payments-api"]]


def test_wait_gives_up_at_its_timeout(cli: Cli, governed: Governed) -> None:
    name = request(cli, governed)

    waited = cli.run(
        "auditor-1",
        "status",
        name,
        "-n",
        governed.namespace,
        "--wait",
        "--until=Approved",
        "--timeout=2s",
    )

    assert waited.returncode == 4, waited.stderr
    assert waited.stderr.startswith(f"{name}: ")
    assert (
        f"error: timed out after 2s waiting for changerequest {name} to reach Approved"
        in waited.stderr
    )


def test_wait_follows_the_change_until_it_is_approved(
    cli: Cli, cluster: LocalCluster, governed: Governed
) -> None:
    name = request(cli, governed)
    wait_for(
        lambda: (
            get_change(cluster, governed.namespace, name).get("status", {}).get("phase")
            == "Pending"
        ),
        timeout=30,
        message="the controller to mark the new change Pending",
    )

    waited = cli.run(
        "change-manager-1",
        "approve",
        name,
        "-n",
        governed.namespace,
        "--wait",
        "--until=Approved",
        "--timeout=60s",
    )

    succeeded(waited)
    assert f"{name}: Approved, approvals 1/1" in waited.stderr
    assert get_change(cluster, governed.namespace, name)["status"]["approvedBy"] == [
        "change-manager-1"
    ]


def test_wait_fails_when_the_change_is_cancelled(
    cli: Cli, cluster: LocalCluster, governed: Governed
) -> None:
    waiting = subprocess.Popen(
        [
            str(VENV_BIN / "changegate"),
            "request",
            "-n",
            governed.namespace,
            "--service=payments-api",
            "--name=to-be-cancelled",
            "--wait",
            "--timeout=90s",
        ],
        env=cli.environment("product-dev-1", {}),
        cwd=cli.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: get_change(cluster, governed.namespace, "to-be-cancelled"),
            timeout=30,
            message="the change to be created",
        )
        succeeded(cli.run("product-dev-1", "cancel", "to-be-cancelled", "-n", governed.namespace))
        out, err = waiting.communicate(timeout=90)
    finally:
        waiting.kill()

    assert waiting.returncode == 3, err
    assert out == "to-be-cancelled\n"
    assert "to-be-cancelled: Cancelled" in err
    assert err.endswith("error: changerequest to-be-cancelled ended Cancelled\n")
