"""Tamper-evident evidence on the local control plane, with the real operator and personas.

Three real rollouts of payments-api make a chain of three DeploymentRecords; only the
operator writes them; a cluster-admin who gets past the webhook and deletes the middle
one is named by `changegate report verify`; an export verifies until a line is edited;
a change manager reviews an emergency change, the product team may not.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Governed
from tests.integration.test_cli import Cli, cli, succeeded
from tests.integration.test_gate_evidence import MANAGER, TEAM, approve, record_of
from tests.support.localcluster import LocalCluster
from tests.support.polling import wait_for
from tests.support.scenario import IMAGE_V1, IMAGE_V2, IMAGE_V3, change_request, get, set_image

pytestmark = pytest.mark.integration
__all__ = ["cli"]  # the fixture, imported for this module's tests

AUDITOR = "auditor-1"
EMERGENCY = "oncall-1"
TAMPERED = 5


def stored_record(cluster: LocalCluster, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        cluster.kubectl("get", "deploymentrecord", name, "-o", "json").stdout
    )
    return found


def three_rollouts(cluster: LocalCluster, ns: str) -> list[str]:
    names = []
    for change, image in (("chain-1", IMAGE_V2), ("chain-2", IMAGE_V3), ("chain-3", IMAGE_V1)):
        approve(cluster, ns, change, image)
        assert set_image(cluster, ns, image).returncode == 0
        names.append(record_of(cluster, ns, change))
    for name in names:  # the records themselves, not only the change's note of them
        wait_for(
            lambda n=name: (
                cluster.kubectl("get", "deploymentrecord", n, check=False).returncode == 0
            )
        )  # type: ignore[misc]
    return names


@contextlib.contextmanager
def webhook_bypassed(cluster: LocalCluster) -> Iterator[None]:
    """What a cluster-admin can do: take the DeploymentRecords webhook out, then put it back."""
    configs = json.loads(
        cluster.kubectl("get", "validatingwebhookconfigurations", "-o", "json").stdout
    )
    [config] = [
        c for c in configs["items"]
        if any(w["name"] == "deploymentrecords.changegate.io" for w in c.get("webhooks", []))
    ]  # fmt: skip
    name = config["metadata"]["name"]
    index = [w["name"] for w in config["webhooks"]].index("deploymentrecords.changegate.io")
    removed = config["webhooks"][index]
    patch = [{"op": "remove", "path": f"/webhooks/{index}"}]
    cluster.kubectl(
        "patch", "validatingwebhookconfiguration", name, "--type=json", "-p", json.dumps(patch)
    )
    try:
        yield
    finally:
        back = [{"op": "add", "path": f"/webhooks/{index}", "value": removed}]
        cluster.kubectl(
            "patch", "validatingwebhookconfiguration", name, "--type=json", "-p", json.dumps(back)
        )


def test_three_rollouts_make_a_chain_and_a_deleted_record_is_named(
    cluster: LocalCluster, governed_running: Governed, cli: Cli
) -> None:
    ns = governed_running.namespace
    first, middle, last = three_rollouts(cluster, ns)

    links = {n: stored_record(cluster, n)["spec"].get("previous", {}) for n in (middle, last)}
    assert links[middle]["name"] == first
    assert links[last]["name"] == middle
    assert all(len(link["sha256"]) == 64 for link in links.values())
    succeeded(cli.run(AUDITOR, "report", "verify"))

    # Nobody but the operator writes or changes a record, not even its link.
    relink = json.dumps({"spec": {"previous": {"name": first, "sha256": "0" * 64}}})
    for user in (TEAM, AUDITOR, MANAGER):
        patched = cluster.kubectl(
            "patch", "deploymentrecord", last, "--type=merge", "-p", relink, user=user, check=False
        )
        assert patched.returncode != 0, f"{user} relinked a record"
        deleted = cluster.kubectl("delete", "deploymentrecord", middle, user=user, check=False)
        assert deleted.returncode != 0, f"{user} deleted a record"
    assert stored_record(cluster, last)["spec"]["previous"] == links[last]

    # A cluster-admin gets past the webhook and deletes the middle record.
    kept = stored_record(cluster, middle)
    with webhook_bypassed(cluster):
        cluster.kubectl("delete", "deploymentrecord", middle)
        broken = cli.run(AUDITOR, "report", "verify")
        assert broken.returncode == TAMPERED, broken.stdout + broken.stderr
        assert f"record {last}: links to {middle}, which no longer exists" in broken.stdout
        # Put back exactly as it was, the chain verifies again.
        restored = {k: kept[k] for k in ("apiVersion", "kind", "spec")}
        restored["metadata"] = {"name": middle, "labels": kept["metadata"].get("labels", {})}
        cluster.kubectl("create", "-f", "-", input=json.dumps(restored))
    succeeded(cli.run(AUDITOR, "report", "verify"))


def test_an_export_verifies_and_a_hand_edited_line_does_not(
    cluster: LocalCluster, governed_running: Governed, cli: Cli, tmp_path: Path
) -> None:
    ns = governed_running.namespace
    approve(cluster, ns, "export-1", IMAGE_V2)
    assert set_image(cluster, ns, IMAGE_V2).returncode == 0
    record = record_of(cluster, ns, "export-1")
    exported = tmp_path / "evidence.jsonl"

    done = cli.run(AUDITOR, "report", "export", "--since", "1h", "-f", str(exported))
    succeeded(done)
    lines = exported.read_text().splitlines()
    assert any(record in line for line in lines)
    assert any('"name":"export-1"' in line for line in lines)
    last = json.loads(lines[-1])["sha256"]
    succeeded(cli.run(AUDITOR, "report", "verify", str(exported), "--expect", last))

    edited = next(i for i, line in enumerate(lines) if record in line)
    lines[edited] = lines[edited].replace('"result":"Succeeded"', '"result":"Failed"')
    exported.write_text("\n".join(lines) + "\n")
    refused = cli.run(AUDITOR, "report", "verify", str(exported))
    assert refused.returncode == TAMPERED, refused.stdout + refused.stderr
    assert f"line {edited + 1}: its running sha256 does not match" in refused.stdout


def test_a_change_manager_reviews_an_emergency_change_the_team_may_not(
    cluster: LocalCluster, governed_running: Governed, cli: Cli
) -> None:
    ns = governed_running.namespace
    raised = cluster.kubectl(
        "apply", "-f", "-", user=EMERGENCY,
        input=change_request(ns, "hotfix-7", IMAGE_V2, type="Emergency", emergencyReason="outage"),
    )  # fmt: skip
    assert raised.returncode == 0, raised.stderr

    refused = cli.run(TEAM, "-n", ns, "review", "hotfix-7", "--note", "looks fine to me")
    assert refused.returncode == 1
    assert "only change managers review a change" in refused.stderr

    out = succeeded(cli.run(MANAGER, "-n", ns, "review", "hotfix-7", "--note", "justified"))
    assert f"reviewed by {MANAGER}" in out
    change = get(cluster, ns, "changerequest/hotfix-7")
    [review] = change["spec"]["reviews"]
    assert (review["reviewer"], review["note"]) == (MANAGER, "justified")
    assert change["metadata"]["labels"]["changegate.io/review"] == "done"
    shown = succeeded(cli.run(AUDITOR, "-n", ns, "status", "hotfix-7"))
    assert f"by {MANAGER}: justified" in shown

    rewrite = json.dumps([{"op": "replace", "path": "/spec/reviews/0/note", "value": "edited"}])
    edited = cluster.kubectl(
        "-n", ns, "patch", "changerequest", "hotfix-7", "--type=json", "-p", rewrite,
        user=MANAGER, check=False,
    )  # fmt: skip
    assert edited.returncode != 0
    assert get(cluster, ns, "changerequest/hotfix-7")["spec"]["reviews"] == [review]
