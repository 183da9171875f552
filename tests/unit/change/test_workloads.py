"""What changed in a workload: a rollout, a restart, an image-only change, or nothing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from changegate.core.change.workloads import (
    RESTARTED_AT,
    Workload,
    is_restart,
    is_rollout,
    only_images_changed,
)
from tests.unit.builders import NEW_IMAGE, NOW, OLD_IMAGE, restarted, workload_body

BASE = workload_body()
STATEFUL = workload_body("ledger", kind="StatefulSet")
DAEMON = workload_body("agent", kind="DaemonSet")


def edit(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `body` with the dotted `path` set to `value` (numbers index lists)."""
    new = copy.deepcopy(body)
    *parents, leaf = path.split(".")
    node: Any = new
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[int(leaf) if leaf.isdigit() else leaf] = value
    return new


TEMPLATE = "spec.template"
CONTAINER = "spec.template.spec.containers.0"


def test_from_body_reads_kind_name_namespace_and_every_image() -> None:
    body = workload_body(images={"api": NEW_IMAGE}, init_images={"migrate": OLD_IMAGE})

    workload = Workload.from_body(body)

    assert (workload.kind, workload.namespace, workload.name) == (
        "Deployment",
        "payments-prod",
        "payments-api",
    )
    assert workload.images == {"api": NEW_IMAGE, "migrate": OLD_IMAGE}


def test_from_body_takes_the_namespace_of_the_request_when_the_body_has_none() -> None:
    body = workload_body()
    del body["metadata"]["namespace"]

    assert Workload.from_body(body, "payments-prod").namespace == "payments-prod"


def test_from_body_tolerates_an_empty_body() -> None:
    workload = Workload.from_body({})

    assert (workload.kind, workload.name, dict(workload.images)) == ("", "", {})


@pytest.mark.parametrize(
    ("old", "new", "rollout"),
    [
        pytest.param(None, BASE, True, id="create"),
        pytest.param(BASE, copy.deepcopy(BASE), False, id="nothing"),
        pytest.param(BASE, edit(BASE, "spec.replicas", 9), False, id="scale"),
        pytest.param(BASE, edit(BASE, "metadata.labels", {"a": "b"}), False, id="labels"),
        pytest.param(BASE, edit(BASE, "metadata.annotations", {"a": "b"}), False, id="annotations"),
        pytest.param(BASE, edit(BASE, "status", {"readyReplicas": 3}), False, id="status"),
        pytest.param(
            BASE,
            edit(BASE, f"{TEMPLATE}.metadata.labels.pod-template-hash", "abc"),
            False,
            id="pod-template-hash",
        ),
        pytest.param(
            STATEFUL,
            edit(STATEFUL, f"{TEMPLATE}.metadata.labels.controller-revision-hash", "abc"),
            False,
            id="controller-revision-hash",
        ),
        pytest.param(BASE, edit(BASE, f"{CONTAINER}.image", NEW_IMAGE), True, id="image"),
        pytest.param(BASE, edit(BASE, f"{CONTAINER}.env", [{"name": "X"}]), True, id="env"),
        pytest.param(
            BASE, edit(BASE, f"{TEMPLATE}.metadata.labels.version", "2"), True, id="pod-label"
        ),
        pytest.param(
            BASE, edit(BASE, f"{TEMPLATE}.metadata.annotations.a", "b"), True, id="pod-annotation"
        ),
        pytest.param(BASE, restarted(BASE), True, id="restart"),
        pytest.param(
            STATEFUL, edit(STATEFUL, f"{CONTAINER}.image", NEW_IMAGE), True, id="statefulset"
        ),
        pytest.param(DAEMON, edit(DAEMON, f"{CONTAINER}.image", NEW_IMAGE), True, id="daemonset"),
    ],
)
def test_is_rollout(old: dict[str, Any] | None, new: dict[str, Any], rollout: bool) -> None:
    before = Workload.from_body(old) if old is not None else None

    assert is_rollout(before, Workload.from_body(new)) is rollout


LATER = NOW.replace(hour=11)


@pytest.mark.parametrize(
    ("old", "new", "restart"),
    [
        pytest.param(BASE, restarted(BASE), True, id="first-restart"),
        pytest.param(restarted(BASE), restarted(BASE, LATER), True, id="second-restart"),
        pytest.param(STATEFUL, restarted(STATEFUL), True, id="statefulset"),
        pytest.param(DAEMON, restarted(DAEMON), True, id="daemonset"),
        pytest.param(restarted(BASE), restarted(BASE), False, id="same-stamp"),
        pytest.param(restarted(BASE), BASE, False, id="stamp-removed"),
        pytest.param(
            BASE, restarted(edit(BASE, f"{CONTAINER}.image", NEW_IMAGE)), False, id="with-image"
        ),
        pytest.param(
            BASE,
            restarted(edit(BASE, f"{TEMPLATE}.metadata.annotations.other", "x")),
            False,
            id="with-another-annotation",
        ),
        pytest.param(BASE, edit(BASE, "spec.replicas", 1), False, id="scale"),
        pytest.param(None, restarted(BASE), False, id="create"),
    ],
)
def test_is_restart(old: dict[str, Any] | None, new: dict[str, Any], restart: bool) -> None:
    before = Workload.from_body(old) if old is not None else None

    assert is_restart(before, Workload.from_body(new)) is restart


def test_restart_of_a_template_that_had_no_annotations_key() -> None:
    old = copy.deepcopy(BASE)
    del old["spec"]["template"]["metadata"]["annotations"]
    new = copy.deepcopy(old)
    new["spec"]["template"]["metadata"]["annotations"] = {RESTARTED_AT: "2026-11-17T10:00:00Z"}

    assert is_restart(Workload.from_body(old), Workload.from_body(new))


WITH_INIT = workload_body(init_images={"migrate": OLD_IMAGE})


@pytest.mark.parametrize(
    ("old", "new", "only_images"),
    [
        pytest.param(BASE, edit(BASE, f"{CONTAINER}.image", NEW_IMAGE), True, id="image"),
        pytest.param(
            WITH_INIT,
            edit(WITH_INIT, "spec.template.spec.initContainers.0.image", NEW_IMAGE),
            True,
            id="init-container-image",
        ),
        pytest.param(
            restarted(BASE),
            edit(BASE, f"{CONTAINER}.image", NEW_IMAGE),
            True,
            id="image-and-restart-stamp",
        ),
        pytest.param(
            BASE,
            edit(edit(BASE, f"{CONTAINER}.image", NEW_IMAGE), f"{CONTAINER}.env", []),
            True,
            id="empty-env-is-the-same-env",
        ),
        pytest.param(
            BASE,
            edit(edit(BASE, f"{CONTAINER}.image", NEW_IMAGE), f"{CONTAINER}.command", ["sh"]),
            False,
            id="image-and-command",
        ),
        pytest.param(
            BASE,
            edit(BASE, f"{TEMPLATE}.spec.serviceAccountName", "admin"),
            False,
            id="service-account",
        ),
        pytest.param(
            BASE,
            edit(BASE, f"{CONTAINER}.name", "renamed"),
            False,
            id="container-renamed",
        ),
        pytest.param(None, BASE, False, id="create"),
    ],
)
def test_only_images_changed(
    old: dict[str, Any] | None, new: dict[str, Any], only_images: bool
) -> None:
    before = Workload.from_body(old) if old is not None else None

    assert only_images_changed(before, Workload.from_body(new)) is only_images
