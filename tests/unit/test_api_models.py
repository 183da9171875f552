"""The changegate.io/v1alpha1 models: samples, JSON shape, and Python-side validation.

The API server enforces the CRD schema (tests/integration); these tests pin
what the models themselves promise to the rest of the code: camelCase JSON,
strict specs, tolerant metadata and status, and the field patterns.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from changegate.api.v1alpha1 import (
    KINDS,
    ApprovalDecision,
    ChangePhase,
    ChangeRequest,
    ChangeRequestSpec,
    ChangeTarget,
    ChangeTemplate,
    ChangeType,
    Condition,
    ConditionStatus,
    ContainerImage,
    CustomResource,
    DeploymentRecord,
    Incident,
    IncidentPhase,
    LabelSelector,
    ServiceOnCall,
    TimeWindow,
    find_condition,
)
from changegate.api.v1alpha1.common import COMMIT_PATTERN

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
KIND_BY_NAME: dict[str, type[CustomResource]] = {kind.__name__: kind for kind in KINDS}


def load_sample(kind: type[CustomResource]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((SAMPLES / f"{kind.singular}.yaml").read_text())
    return data


def test_registry_lists_the_five_kinds_once() -> None:
    assert [k.__name__ for k in KINDS] == [
        "ServiceOnCall",
        "ChangeTemplate",
        "ChangeRequest",
        "DeploymentRecord",
        "Incident",
    ]
    assert len({k.plural for k in KINDS}) == len(KINDS)
    assert len({s for k in KINDS for s in k.short_names}) == sum(len(k.short_names) for k in KINDS)
    assert {k.__name__: k.scope for k in KINDS}["DeploymentRecord"] == "Cluster"
    assert all(k.scope == "Namespaced" for k in KINDS if k is not DeploymentRecord)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_every_sample_parses_and_round_trips(kind: type[CustomResource]) -> None:
    data = load_sample(kind)
    obj = kind.model_validate(data)
    assert obj.kind == kind.__name__
    assert obj.metadata.name
    again = kind.model_validate(obj.to_json())
    assert again == obj
    # Everything the sample says survives the trip (defaults may add keys).
    assert _is_subset(data["spec"], obj.to_json()["spec"])


def _is_subset(small: Any, big: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(
            k in big and _is_subset(v, big[k]) for k, v in small.items()
        )
    if isinstance(small, list):
        return (
            isinstance(big, list)
            and len(small) == len(big)
            and all(_is_subset(a, b) for a, b in zip(small, big, strict=True))
        )
    if isinstance(small, str) and isinstance(big, str) and small != big:
        # Times are normalised (Z vs +00:00); compare them as times.
        try:
            return datetime.fromisoformat(small) == datetime.fromisoformat(big)
        except ValueError:
            return False
    return bool(small == big)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_samples_live_in_the_production_namespace_unless_cluster_scoped(
    kind: type[CustomResource],
) -> None:
    metadata = load_sample(kind)["metadata"]
    if kind.scope == "Cluster":
        assert "namespace" not in metadata
    else:
        assert metadata["namespace"] == "payments-prod"


def test_json_uses_camel_case_and_drops_nulls() -> None:
    spec = ChangeRequestSpec(
        service="payments-api",
        type=ChangeType.NORMAL,
        summary="A change",
        targets=[ChangeTarget(name="payments-api")],
    )
    body = spec.to_json()
    assert body == {
        "service": "payments-api",
        "type": "Normal",
        "summary": "A change",
        "targets": [{"kind": "Deployment", "name": "payments-api", "images": []}],
        "approvals": [],
        "cancel": False,
        "reviews": [],
    }


def test_fields_accept_their_python_names_too() -> None:
    window = TimeWindow(
        start_time=datetime(2026, 1, 1, tzinfo=UTC), end_time=datetime(2026, 1, 2, tzinfo=UTC)
    )
    assert window.to_json() == {
        "startTime": "2026-01-01T00:00:00Z",
        "endTime": "2026-01-02T00:00:00Z",
    }


def test_spec_refuses_unknown_fields() -> None:
    data = load_sample(ChangeRequest)
    data["spec"]["colour"] = "blue"
    with pytest.raises(ValidationError, match="colour"):
        ChangeRequest.model_validate(data)


def test_what_the_api_server_returns_parses() -> None:
    data = load_sample(ChangeRequest)
    data["metadata"].update(
        {
            "uid": "0b0c8a52-1f7b-4b3e-9f57-5f8c2d0f4a11",
            "resourceVersion": "4711",
            "generation": 2,
            "creationTimestamp": "2026-11-17T08:59:00Z",
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            "ownerReferences": [],
        }
    )
    data["status"] = {
        "observedGeneration": 2,
        "phase": "Approved",
        "approvalCount": 1,
        "requiredApprovals": 1,
        "approvedBy": ["change-manager-1"],
        "conditions": [
            {
                "type": "Approved",
                "status": "True",
                "observedGeneration": 2,
                "lastTransitionTime": "2026-11-17T09:01:00Z",
                "reason": "ApprovalsComplete",
                "message": "1 of 1 approvals",
            }
        ],
        "fieldFromANewerOperator": True,
    }
    obj = ChangeRequest.model_validate(data)
    assert obj.metadata.generation == 2
    assert obj.metadata.model_extra == {
        "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        "ownerReferences": [],
    }
    assert obj.status.phase is ChangePhase.APPROVED
    approved = find_condition(obj.status.conditions, "Approved")
    assert approved is not None
    assert approved.status is ConditionStatus.TRUE
    assert obj.spec.approvals[0].decision is ApprovalDecision.APPROVED
    assert obj.spec.approvals[0].approver is None  # stamped later by the webhook


def test_status_defaults_to_empty_so_code_needs_no_none_checks() -> None:
    obj = Incident.model_validate(load_sample(Incident))
    assert obj.status.phase is None
    assert obj.status.conditions == []
    assert obj.status.pages == []


def test_condition_has_exactly_the_metav1_shape() -> None:
    assert {f.alias for f in Condition.model_fields.values()} == {
        "type",
        "status",
        "observedGeneration",
        "lastTransitionTime",
        "reason",
        "message",
    }
    good = {
        "type": "Ready",
        "status": "False",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
        "reason": "WaitingForApproval",
        "message": "",
    }
    Condition.model_validate(good)
    for key in ("type", "status", "lastTransitionTime", "reason", "message"):
        with pytest.raises(ValidationError):
            Condition.model_validate({k: v for k, v in good.items() if k != key})
    with pytest.raises(ValidationError):
        Condition.model_validate({**good, "reason": "not a reason"})
    with pytest.raises(ValidationError):
        Condition.model_validate({**good, "status": "Maybe"})


def _bad(kind: type[CustomResource], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(load_sample(kind))
    node: Any = data
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        pytest.param(ChangeRequest, "spec.source.commit", "XYZ1234", id="commit-not-hex"),
        pytest.param(ChangeRequest, "spec.source.commit", "abc12", id="commit-too-short"),
        pytest.param(ChangeRequest, "spec.service", "Payments_API", id="service-not-dns-label"),
        pytest.param(ChangeRequest, "spec.type", "Minor", id="type-not-enum"),
        pytest.param(
            ChangeRequest, "spec.targets.0.images.0.image", "Registry/App:1", id="image-upper"
        ),
        pytest.param(ChangeRequest, "spec.summary", "x" * 257, id="summary-too-long"),
        pytest.param(ChangeRequest, "spec.targets", [], id="no-targets"),
        pytest.param(ChangeRequest, "spec.approvals.0.decision", "Maybe", id="decision-not-enum"),
        pytest.param(DeploymentRecord, "spec.images.0.digest", "sha256:abc", id="short-digest"),
        pytest.param(DeploymentRecord, "spec.revision", -1, id="negative-revision"),
        pytest.param(ServiceOnCall, "spec.onCall.rotations.0.handoffAt", "25:00", id="bad-clock"),
        pytest.param(ServiceOnCall, "spec.changePolicy.requiredApprovals", 0, id="zero-approvals"),
        pytest.param(ServiceOnCall, "spec.dashboards.0.url", "ftp://x", id="url-not-http"),
        pytest.param(ChangeTemplate, "spec.allowedChanges", ["Anything"], id="change-not-enum"),
        pytest.param(Incident, "spec.alert.fingerprint", "not-hex", id="fingerprint-not-hex"),
    ],
)
def test_models_refuse_what_the_schema_refuses(
    kind: type[CustomResource], path: str, value: Any
) -> None:
    with pytest.raises(ValidationError):
        kind.model_validate(_bad(kind, path, value))


@given(st.from_regex(r"[0-9a-f]{7,64}", fullmatch=True))
def test_any_lowercase_hex_commit_of_7_to_64_digits_is_accepted(commit: str) -> None:
    data = _bad(ChangeRequest, "spec.source.commit", commit)
    assert ChangeRequest.model_validate(data).spec.source is not None


@given(st.text(alphabet="0123456789abcdefABCDEFxyz", min_size=0, max_size=70))
def test_commit_pattern_matches_the_documented_rule(commit: str) -> None:
    import re

    expected = bool(re.fullmatch(r"[0-9a-f]{7,64}", commit))
    assert bool(re.match(COMMIT_PATTERN, commit)) is expected


@pytest.mark.parametrize(
    "image",
    [
        "nginx",
        "nginx:1.27",
        "registry.example.com/payments/payments-api:1.42.0",
        "registry.example.com:5000/team/app_name:v1-rc.1",
        "registry.example.org/org/app@sha256:" + "a" * 64,
        "registry.example.org/org/app:1.0@sha256:" + "b" * 64,
    ],
)
def test_realistic_image_references_are_accepted(image: str) -> None:
    assert ContainerImage(container="api", image=image).image == image


@pytest.mark.parametrize(
    "image", ["", "Nginx", "nginx:", "nginx@sha256:123", "a b", "-nginx", "nginx:-bad"]
)
def test_malformed_image_references_are_refused(image: str) -> None:
    with pytest.raises(ValidationError):
        ContainerImage(container="api", image=image)


def test_time_window_contains_start_but_not_end() -> None:
    start = datetime(2026, 11, 17, 9, tzinfo=UTC)
    window = TimeWindow(start_time=start, end_time=start + timedelta(hours=3))
    assert window.contains(start)
    assert window.contains(start + timedelta(hours=2, minutes=59))
    assert not window.contains(start + timedelta(hours=3))
    assert not window.contains(start - timedelta(seconds=1))


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({"matchLabels": {"app": "api"}}, {"app": "api", "tier": "web"}, True),
        ({"matchLabels": {"app": "api"}}, {"app": "web"}, False),
        (
            {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a", "b"]}]},
            {"app": "b"},
            True,
        ),
        (
            {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]},
            {"app": "a"},
            False,
        ),
        ({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, {}, True),
        ({}, {"anything": "x"}, True),
    ],
)
def test_label_selector_matches_like_kubernetes(
    selector: dict[str, Any], labels: dict[str, str], expected: bool
) -> None:
    assert LabelSelector.model_validate(selector).matches(labels) is expected


def test_service_oncall_names_its_production_namespaces() -> None:
    soc = ServiceOnCall.model_validate(load_sample(ServiceOnCall))
    assert soc.spec.production_namespaces() == ["payments-prod"]


def test_incident_phase_and_change_phase_cover_the_lifecycle() -> None:
    assert [p.value for p in ChangePhase] == [
        "Pending",
        "Approved",
        "Rejected",
        "Cancelled",
        "Expired",
        "InProgress",
        "Completed",
        "Failed",
    ]
    assert [p.value for p in IncidentPhase] == ["Triggered", "Acknowledged", "Resolved"]
