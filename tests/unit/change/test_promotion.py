"""The changes the operator raises itself: production's after a promotion, emergencies after break-glass.

Both are built as ChangeRequest models in the core; these rows pin their names
(which make retries idempotent), types, templates, targets and images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from changegate.api.v1alpha1 import ChangeRequest, ChangeTemplate, ChangeType, WorkloadKind
from changegate.core.change.promotion import (
    PROMOTED_FROM,
    Promotion,
    production_change,
    promotion,
)
from changegate.core.change.rollouts import emergency_change, observe
from changegate.core.change.workloads import container_images, workload_images
from tests.unit.builders import (
    NAMESPACE,
    NEW_IMAGE,
    NOW,
    OLD_IMAGE,
    REGISTRY,
    SERVICE,
    admitted,
    standard_template,
    with_workload_status,
    workload_body,
)

INIT = f"{REGISTRY}/migrate:7"

PROMOTED = Promotion(
    kind=WorkloadKind.DEPLOYMENT,
    namespace="payments-staging",
    name=SERVICE,
    revision=7,
    images={"api": NEW_IMAGE, "migrate": INIT},
    source={"repository": "https://git.example.com/payments/api", "commit": "0123456789abcdef"},
    deployer="product-dev-1",
)
RUNNING = {("Deployment", SERVICE): {"api": OLD_IMAGE, "migrate": INIT}}
LABELS = {("Deployment", SERVICE): {"app": SERVICE}}


def raise_it(
    templates: list[ChangeTemplate],
    running: Mapping[tuple[str, str], Mapping[str, str]] = RUNNING,
    source: dict[str, str] | None = None,
) -> ChangeRequest:
    promoted = PROMOTED if source is None else dataclasses.replace(PROMOTED, source=source)
    return production_change(
        promoted, SERVICE, "staging", NAMESPACE, templates, running, LABELS, NOW
    )


def test_a_template_that_fits_makes_the_change_standard() -> None:
    change = raise_it([standard_template()])
    assert change.spec.type is ChangeType.STANDARD
    assert change.spec.template_ref is not None
    assert change.spec.template_ref.name == "payments-api-image-update"
    assert change.metadata.generate_name == "promote-payments-api-"
    assert change.metadata.namespace == NAMESPACE
    assert change.metadata.labels[PROMOTED_FROM] == "staging"
    assert change.metadata.labels["changegate.io/raised-for"]  # how a retry finds it


@pytest.mark.parametrize(
    ("why", "templates", "running"),
    [
        ("no template", [], RUNNING),
        ("an inactive template", [standard_template(active=False)], RUNNING),
        ("another service's template", [standard_template(service="orders")], RUNNING),
        ("nothing runs in production yet", [standard_template()], {}),
    ],
)
def test_without_a_fitting_template_the_change_is_normal(
    why: str,
    templates: list[ChangeTemplate],
    running: Mapping[tuple[str, str], Mapping[str, str]],
) -> None:
    change = raise_it(templates, running)
    assert change.spec.type is ChangeType.NORMAL, why
    assert change.spec.template_ref is None


def test_production_gets_the_same_images_init_containers_too_and_the_source() -> None:
    change = raise_it([])
    images = {i.container: i.image for i in change.spec.targets[0].images}
    assert images == {"api": NEW_IMAGE, "migrate": INIT}
    assert change.spec.source is not None
    assert change.spec.source.commit == "0123456789abcdef"
    assert change.spec.requester == "product-dev-1"
    assert change.spec.summary == "Promote Deployment/payments-api revision 7 from staging"


def test_a_source_annotation_that_does_not_parse_is_left_out() -> None:
    change = raise_it([], source={"repository": "https://git.example.com/x", "commit": "NOT-HEX"})
    assert change.spec.source is None


def test_promotion_reads_init_container_images_once_the_rollout_succeeded() -> None:
    body = workload_body(images={"api": NEW_IMAGE}, init_images={"migrate": INIT})
    body["metadata"] |= {"generation": 3, "annotations": {"deployment.kubernetes.io/revision": "7"}}
    done = with_workload_status(body, replicas=3, updatedReplicas=3, availableReplicas=3)
    promoted = promotion(done, NOW)
    assert promoted is not None
    assert promoted.images == {"api": NEW_IMAGE, "migrate": INIT}
    assert promotion(with_workload_status(body, replicas=3, updatedReplicas=1), NOW) is None


def test_an_emergency_change_is_named_after_the_rollout_and_keeps_its_images() -> None:
    body = admitted(
        workload_body(images={"api": NEW_IMAGE}, init_images={"migrate": INIT}),
        basis="BreakGlass",
        change=None,
        break_glass="payments down",
        revision=5,
    )
    seen = observe(with_workload_status(body, replicas=3), NOW)
    assert seen is not None
    change = emergency_change(seen, SERVICE)
    assert change.metadata.generate_name == f"emergency-{SERVICE}-"
    assert change.spec.type is ChangeType.EMERGENCY
    assert change.spec.emergency_reason == "payments down"
    assert change.metadata.labels["changegate.io/review"] == "required"
    assert change.metadata.labels["changegate.io/raised-for"]  # how a retry finds it
    assert change.metadata.annotations == {"changegate.io/deployment-record": seen.key}
    images = {i.container: i.image for i in change.spec.targets[0].images}
    assert images == {"api": NEW_IMAGE, "migrate": INIT}


@pytest.mark.parametrize(
    ("template", "images"),
    [
        ({}, {}),
        ({"spec": {"containers": [{"name": "a", "image": "x"}]}}, {"a": "x"}),
        (
            {
                "spec": {
                    "initContainers": [{"name": "i", "image": "y"}],
                    "containers": [{"name": "a", "image": "x"}],
                }
            },
            {"i": "y", "a": "x"},
        ),
    ],
)
def test_one_reader_of_pod_template_images_includes_init_containers(
    template: dict[str, Any], images: dict[str, str]
) -> None:
    assert container_images(template) == images
    assert workload_images({"spec": {"template": template}}) == images
