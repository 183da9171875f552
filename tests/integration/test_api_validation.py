"""The generated CRDs on the real API server: accepted, enforced, and read back.

Every sample is accepted; bad objects, each breaking one rule, are refused by
the API server itself (OpenAPI schema and CEL) with a clear message; the
transition rules hold across real updates; what the server returns parses
back into the pydantic models.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
import yaml
from kubernetes import client

from changegate.api.v1alpha1 import (
    KINDS,
    ChangePhase,
    ChangeRequest,
    ChangeTemplate,
    ConditionStatus,
    CustomResource,
    DeploymentRecord,
    Incident,
    ServiceOnCall,
    find_condition,
)
from tests.support.localcluster import REPO, Cluster
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration

Mutation = Callable[[dict[str, Any]], None]


def sample(kind: type[CustomResource]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "samples" / f"{kind.singular}.yaml").read_text())
    return data


def placed(kind: type[CustomResource], namespace: str) -> dict[str, Any]:
    """The sample, moved into `namespace`, or given a unique name if cluster-scoped."""
    data = sample(kind)
    if kind.scope == "Namespaced":
        data["metadata"]["namespace"] = namespace
    else:
        data["metadata"]["name"] = f"{data['metadata']['name']}.{uuid.uuid4().hex[:8]}"
    return data


def _walk(data: dict[str, Any], path: str) -> tuple[Any, str | int]:
    node: Any = data
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    return node, int(last) if last.isdigit() else last


def put(path: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        node, key = _walk(data, path)
        node[key] = value

    return mutate


def drop(path: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        node, key = _walk(data, path)
        del node[key]

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        for m in mutations:
            m(data)

    return mutate


IMAGE = {"container": "api", "image": "registry.example.com/payments/payments-api:1.42.0"}
ACK = {"comment": "on it"}

# (kind, mutation, expected text in the API server's answer); each breaks one rule.
BAD_OBJECTS = [
    # ChangeRequest
    pytest.param(
        ChangeRequest,
        put("spec.window.endTime", "2026-11-17T08:00:00Z"),
        "endTime must be after startTime",
        id="chg-window-ends-before-it-starts",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.type", "Standard"),
        "a Standard change must name its ChangeTemplate in templateRef",
        id="chg-standard-without-template",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.templateRef", {"name": "payments-api-image-update"}),
        "templateRef is only for Standard changes",
        id="chg-template-on-normal-change",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.type", "Emergency"),
        "an Emergency change must give an emergencyReason",
        id="chg-emergency-without-reason",
    ),
    pytest.param(
        ChangeRequest,
        both(put("spec.type", "Emergency"), put("spec.emergencyReason", "")),
        "spec.emergencyReason in body should be at least 1 chars long",
        id="chg-emergency-with-empty-reason",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.type", "Minor"),
        'spec.type: Unsupported value: "Minor"',
        id="chg-unknown-type",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.source.commit", "4f2c9a1z"),
        "spec.source.commit in body should match '^[0-9a-f]{7,64}$'",
        id="chg-commit-not-hex",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.targets.0.images.0.image", "Registry.Example.com/Payments:1.0"),
        "spec.targets[0].images[0].image in body should match",
        id="chg-image-reference-malformed",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.targets", []),
        "spec.targets: Invalid value: 0: spec.targets in body should have at least 1 items",
        id="chg-no-targets",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.targets", [{"name": f"workload-{i}"} for i in range(17)]),
        "spec.targets: Too many: 17: must have at most 16 items",
        id="chg-too-many-targets",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.targets.0.images", [IMAGE, IMAGE]),
        'spec.targets[0].images[1]: Duplicate value: {"container":"api"}',
        id="chg-same-container-twice",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.summary", "x" * 257),
        "spec.summary: Too long: may not be more than 256 bytes",
        id="chg-summary-too-long",
    ),
    pytest.param(
        ChangeRequest,
        drop("spec.summary"),
        "spec.summary: Required value",
        id="chg-summary-missing",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.service", "Payments_API"),
        "spec.service in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'",
        id="chg-service-not-a-dns-label",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.approvals.0.decision", "Maybe"),
        'spec.approvals[0].decision: Unsupported value: "Maybe"',
        id="chg-approval-decision-unknown",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.approvals", [{"decision": "Approved"}] * 33),
        "spec.approvals: Too many: 33: must have at most 32 items",
        id="chg-too-many-approvals",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.risk", "Extreme"),
        'spec.risk: Unsupported value: "Extreme"',
        id="chg-risk-unknown",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.colour", "blue"),
        'unknown field "spec.colour"',
        id="chg-unknown-field",
    ),
    pytest.param(
        ChangeRequest,
        put("spec.source.pullRequest", "git@example.com:payments/api.git"),
        "spec.source.pullRequest in body should match '^https?://",
        id="chg-pull-request-not-a-link",
    ),
    # ServiceOnCall
    pytest.param(
        ServiceOnCall,
        put("spec.environments.1.production", False),
        "at least one environment must be production",
        id="soc-no-production-environment",
    ),
    pytest.param(
        ServiceOnCall,
        put("spec.environments.1.raisesProductionChanges", True),
        "a production environment cannot also be the stage that raises production changes",
        id="soc-production-raises-production-changes",
    ),
    pytest.param(
        ServiceOnCall,
        put("spec.environments.1.name", "staging"),
        "spec.environments[1]: Duplicate value",
        id="soc-environment-named-twice",
    ),
    pytest.param(
        ServiceOnCall,
        put("spec.changePolicy.freezes.0.endTime", "2026-12-01T00:00:00Z"),
        "endTime must be after startTime",
        id="soc-freeze-ends-before-it-starts",
    ),
    pytest.param(
        ServiceOnCall,
        put("spec.changePolicy.requiredApprovals", 0),
        "spec.changePolicy.requiredApprovals in body should be greater than or equal to 1",
        id="soc-zero-required-approvals",
    ),
    pytest.param(
        ServiceOnCall,
        put("spec.onCall.rotations.0.type", "Fortnightly"),
        'spec.onCall.rotations[0].type: Unsupported value: "Fortnightly"',
        id="soc-rotation-type-unknown",
    ),
    pytest.param(
        ServiceOnCall,
        put("spec.onCall.rotations.0.handoffAt", "25:00"),
        "spec.onCall.rotations[0].handoffAt in body should match",
        id="soc-handoff-not-a-time-of-day",
    ),
    pytest.param(
        ServiceOnCall,
        put("spec.onCall.timeZone", "Central European Time"),
        "spec.onCall.timeZone in body should match",
        id="soc-time-zone-not-iana",
    ),
    pytest.param(
        ServiceOnCall,
        put("spec.onCall.workingHours.endAt", "08:00"),
        "endAt must be after startAt",
        id="soc-working-day-ends-before-it-starts",
    ),
    pytest.param(
        ServiceOnCall,
        drop("spec.onCall.escalation.steps.1.targets.1.name"),
        "name is required for Rotation and User targets, and only for them",
        id="soc-escalation-user-without-name",
    ),
    pytest.param(
        ServiceOnCall,
        put("spec.integrations.slack.secretRef.key", "webhook url"),
        "spec.integrations.slack.secretRef.key in body should match",
        id="soc-secret-key-malformed",
    ),
    pytest.param(
        ServiceOnCall,
        put("spec.integrations.pagerDuty.routingKey", "0123456789abcdef0123456789abcdef"),
        'unknown field "spec.integrations.pagerDuty.routingKey"',
        id="soc-credential-inline-instead-of-secret-ref",
    ),
    pytest.param(
        ServiceOnCall,
        put("spec.dashboards.0.url", "ftp://grafana.example.com"),
        "spec.dashboards[0].url in body should match '^https?://",
        id="soc-dashboard-not-http",
    ),
    # ChangeTemplate
    pytest.param(
        ChangeTemplate,
        put("spec.workloads.0.selector", {"matchLabels": {"app": "payments-api"}}),
        "give exactly one of name and selector",
        id="chgtpl-workload-by-name-and-selector",
    ),
    pytest.param(
        ChangeTemplate,
        put("spec.allowedChanges", ["Anything"]),
        'spec.allowedChanges[0]: Unsupported value: "Anything"',
        id="chgtpl-change-kind-unknown",
    ),
    pytest.param(
        ChangeTemplate,
        put("spec.allowedChanges", []),
        "spec.allowedChanges in body should have at least 1 items",
        id="chgtpl-no-change-kinds",
    ),
    pytest.param(
        ChangeTemplate,
        put("spec.allowedChanges", ["ImageUpdate", "ImageUpdate"]),
        'spec.allowedChanges[1]: Duplicate value: "ImageUpdate"',
        id="chgtpl-change-kind-twice",
    ),
    pytest.param(
        ChangeTemplate,
        put("spec.windows.0.endAt", "08:00"),
        "endAt must be after startAt",
        id="chgtpl-window-ends-before-it-starts",
    ),
    pytest.param(
        ChangeTemplate,
        drop("spec.riskNote"),
        "spec.riskNote: Required value",
        id="chgtpl-risk-note-missing",
    ),
    # DeploymentRecord
    pytest.param(
        DeploymentRecord,
        put("spec.finishTime", "2026-11-17T09:00:00Z"),
        "finishTime must not be before startTime",
        id="deprec-finishes-before-it-starts",
    ),
    pytest.param(
        DeploymentRecord,
        drop("spec.changeRequest"),
        "a rollout admitted by a Change must name its changeRequest",
        id="deprec-change-without-change-request",
    ),
    pytest.param(
        DeploymentRecord,
        put("spec.images.0.digest", "sha256:1234"),
        "spec.images[0].digest in body should match '^sha256:[a-f0-9]{64}$'",
        id="deprec-digest-malformed",
    ),
    pytest.param(
        DeploymentRecord,
        put("spec.result", "Partial"),
        'spec.result: Unsupported value: "Partial"',
        id="deprec-result-unknown",
    ),
    pytest.param(
        DeploymentRecord,
        put("spec.images", []),
        "spec.images in body should have at least 1 items",
        id="deprec-no-images",
    ),
    pytest.param(
        DeploymentRecord,
        put("spec.revision", -1),
        "spec.revision in body should be greater than or equal to 0",
        id="deprec-negative-revision",
    ),
    # Incident
    pytest.param(
        Incident,
        put("spec.major", False),
        "only a major incident can freeze changes",
        id="inc-freeze-without-major",
    ),
    pytest.param(
        Incident,
        drop("spec.alert"),
        "alert is required when origin is Alert, and only then",
        id="inc-alert-origin-without-alert",
    ),
    pytest.param(
        Incident,
        put("spec.severity", "Sev1"),
        'spec.severity: Unsupported value: "Sev1"',
        id="inc-severity-unknown",
    ),
    pytest.param(
        Incident,
        put("spec.alert.fingerprint", "not-a-fingerprint"),
        "spec.alert.fingerprint in body should match '^[0-9a-f]+$'",
        id="inc-fingerprint-not-hex",
    ),
    pytest.param(
        Incident,
        put("spec.notes.0.text", ""),
        "spec.notes[0].text in body should be at least 1 chars long",
        id="inc-empty-note",
    ),
    pytest.param(
        Incident,
        put("spec.alert.labels", {f"label{i}": "x" for i in range(65)}),
        "spec.alert.labels: Too many: 65: must have at most 64 items",
        id="inc-too-many-alert-labels",
    ),
    pytest.param(
        Incident,
        put("spec.acknowledgements", [ACK] * 17),
        "spec.acknowledgements: Too many: 17: must have at most 16 items",
        id="inc-too-many-acknowledgements",
    ),
]


@pytest.fixture(scope="module")
def shared_namespace(cluster: Cluster, crds: list[str]) -> Iterator[str]:
    """One namespace for the dry-run cases, which never store anything."""
    name = f"t-api-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def create(cluster: Cluster, body: dict[str, Any], *extra: str) -> Any:
    return cluster.kubectl("create", *extra, "-f", "-", input=json.dumps(body), check=False)


def patch(cluster: Cluster, kind: type[CustomResource], body: dict[str, Any], *args: str) -> Any:
    target = [f"{kind.plural}.changegate.io", body["metadata"]["name"]]
    if kind.scope == "Namespaced":
        target += ["-n", body["metadata"]["namespace"]]
    return cluster.kubectl("patch", *target, *args, check=False)


def read(cluster: Cluster, kind: type[CustomResource], body: dict[str, Any]) -> dict[str, Any]:
    target = [f"{kind.plural}.changegate.io", body["metadata"]["name"]]
    if kind.scope == "Namespaced":
        target += ["-n", body["metadata"]["namespace"]]
    result: dict[str, Any] = json.loads(cluster.kubectl("get", *target, "-o", "json").stdout)
    return result


@pytest.fixture
def cluster_scoped(cluster: Cluster) -> Iterator[list[str]]:
    """Names of DeploymentRecords a test creates; deleted afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        cluster.kubectl("delete", "deploymentrecords.changegate.io", name, "--ignore-not-found")


def test_every_crd_becomes_established(api: client.ApiClient, crds: list[str]) -> None:
    assert sorted(crds) == sorted(kind.crd_name() for kind in KINDS)
    extensions = client.ApiextensionsV1Api(api)

    def established(name: str) -> Callable[[], bool]:
        def check() -> bool:
            status = extensions.read_custom_resource_definition(name).status
            conditions = (status.conditions if status else None) or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        return check

    for name in crds:
        assert wait_for(established(name), message=f"{name} to be Established")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_sample_is_accepted_and_reads_back_into_the_model(
    cluster: Cluster,
    api: client.ApiClient,
    crds: list[str],
    namespace: str,
    cluster_scoped: list[str],
    kind: type[CustomResource],
) -> None:
    body = placed(kind, namespace)
    if kind.scope == "Cluster":
        cluster_scoped.append(body["metadata"]["name"])
    result = cluster.kubectl(
        "apply", "--server-side", "--field-manager=test", "-f", "-", input=json.dumps(body)
    )
    assert "serverside-applied" in result.stdout

    custom = client.CustomObjectsApi(api)
    if kind.scope == "Namespaced":
        answer = custom.get_namespaced_custom_object(
            "changegate.io", "v1alpha1", namespace, kind.plural, body["metadata"]["name"]
        )
    else:
        answer = custom.get_cluster_custom_object(
            "changegate.io", "v1alpha1", kind.plural, body["metadata"]["name"]
        )
    returned = cast(dict[str, Any], answer)
    assert returned["metadata"]["managedFields"]  # the full server shape, not a trimmed one
    parsed = kind.model_validate(returned)
    assert parsed.metadata.uid
    assert parsed.metadata.generation == 1
    # The server's defaults agree with the model's: the spec reads back unchanged.
    assert parsed.spec == kind.model_validate(body).spec


@pytest.mark.parametrize(("kind", "mutate", "expected"), BAD_OBJECTS)
def test_bad_object_is_refused_by_the_api_server(
    cluster: Cluster,
    shared_namespace: str,
    kind: type[CustomResource],
    mutate: Mutation,
    expected: str,
) -> None:
    good = placed(kind, shared_namespace)
    accepted = create(cluster, good, "--dry-run=server")
    assert accepted.returncode == 0, accepted.stderr

    bad = copy.deepcopy(good)
    mutate(bad)
    refused = create(cluster, bad, "--dry-run=server")
    assert refused.returncode != 0, f"accepted: {refused.stdout}"
    assert expected in refused.stderr


def test_there_are_enough_bad_objects() -> None:
    assert len(BAD_OBJECTS) >= 25


def test_deployment_record_never_changes_once_written(
    cluster: Cluster, crds: list[str], cluster_scoped: list[str]
) -> None:
    body = placed(DeploymentRecord, "")
    cluster_scoped.append(body["metadata"]["name"])
    assert create(cluster, body).returncode == 0

    for change in (
        '{"spec":{"result":"Failed"}}',
        '{"spec":{"approvers":["someone-else"]}}',
        '{"spec":{"imageSummary":null}}',
    ):
        refused = patch(cluster, DeploymentRecord, body, "--type=merge", "-p", change)
        assert refused.returncode != 0, change
        assert "a DeploymentRecord is immutable once written" in refused.stderr

    # Its status (export conditions) is still the operator's to write.
    status = {
        "status": {
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Exported",
                    "status": "True",
                    "observedGeneration": 1,
                    "lastTransitionTime": "2026-11-17T09:10:00Z",
                    "reason": "ServiceNowUpdated",
                    "message": "CHG0030001 closed",
                }
            ],
        }
    }
    written = patch(
        cluster,
        DeploymentRecord,
        body,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    assert written.returncode == 0, written.stderr
    record = DeploymentRecord.model_validate(read(cluster, DeploymentRecord, body))
    exported = find_condition(record.status.conditions, "Exported")
    assert exported is not None
    assert exported.status is ConditionStatus.TRUE
    assert record.spec == DeploymentRecord.model_validate(body).spec


def test_approvals_are_only_appended(cluster: Cluster, crds: list[str], namespace: str) -> None:
    body = placed(ChangeRequest, namespace)
    assert create(cluster, body).returncode == 0

    appended = patch(
        cluster,
        ChangeRequest,
        body,
        "--type=json",
        "-p",
        '[{"op":"add","path":"/spec/approvals/-","value":{"decision":"Approved"}}]',
    )
    assert appended.returncode == 0, appended.stderr

    for change in (
        '[{"op":"replace","path":"/spec/approvals/0/comment","value":"edited"}]',
        '[{"op":"replace","path":"/spec/approvals/0/decision","value":"Rejected"}]',
        '[{"op":"remove","path":"/spec/approvals/0"}]',
        '[{"op":"remove","path":"/spec/approvals"}]',
    ):
        refused = patch(cluster, ChangeRequest, body, "--type=json", "-p", change)
        assert refused.returncode != 0, change
        assert "approvals can only be appended" in refused.stderr

    stored = ChangeRequest.model_validate(read(cluster, ChangeRequest, body))
    assert [a.comment for a in stored.spec.approvals] == [
        "Reviewed the 3DS test evidence; go.",
        None,
    ]


def test_a_cancelled_change_stays_cancelled(
    cluster: Cluster, crds: list[str], namespace: str
) -> None:
    body = placed(ChangeRequest, namespace)
    assert create(cluster, body).returncode == 0
    cancel = patch(cluster, ChangeRequest, body, "--type=merge", "-p", '{"spec":{"cancel":true}}')
    assert cancel.returncode == 0, cancel.stderr

    for change in ('{"spec":{"cancel":false}}', '{"spec":{"cancel":null}}'):
        refused = patch(cluster, ChangeRequest, body, "--type=merge", "-p", change)
        assert refused.returncode != 0, change
        assert "a cancelled change cannot be un-cancelled" in refused.stderr
    assert ChangeRequest.model_validate(read(cluster, ChangeRequest, body)).spec.cancel is True


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            '{"spec":{"targets":[{"name":"payments-api","images":[{"container":"api",'
            '"image":"registry.example.com/payments/payments-api:6.6.6"}]}]}}',
            "targets is immutable; raise a new ChangeRequest instead",
            id="targets",
        ),
        pytest.param(
            '{"spec":{"window":{"endTime":"2026-11-18T12:00:00Z"}}}',
            "window is immutable",
            id="window-widened",
        ),
        pytest.param('{"spec":{"window":null}}', "window is immutable", id="window-removed"),
        pytest.param(
            '{"spec":{"type":"Emergency","emergencyReason":"now"}}', "type is immutable", id="type"
        ),
        pytest.param(
            '{"spec":{"requester":"someone-else"}}',
            "requester cannot be changed once recorded",
            id="requester",
        ),
    ],
)
def test_what_was_approved_cannot_be_edited(
    cluster: Cluster, crds: list[str], namespace: str, change: str, expected: str
) -> None:
    body = placed(ChangeRequest, namespace)
    body["spec"]["requester"] = "product-dev-1"
    assert create(cluster, body).returncode == 0
    refused = patch(cluster, ChangeRequest, body, "--type=merge", "-p", change)
    assert refused.returncode != 0
    assert expected in refused.stderr
    # What is not part of the approved content can still be edited.
    edited = patch(
        cluster, ChangeRequest, body, "--type=merge", "-p", '{"spec":{"description":"More."}}'
    )
    assert edited.returncode == 0, edited.stderr


def test_incident_notes_and_acknowledgements_are_only_appended(
    cluster: Cluster, crds: list[str], namespace: str
) -> None:
    body = placed(Incident, namespace)
    assert create(cluster, body).returncode == 0
    added = patch(
        cluster,
        Incident,
        body,
        "--type=json",
        "-p",
        '[{"op":"add","path":"/spec/notes/-","value":{"text":"Failover to the second acquirer."}}]',
    )
    assert added.returncode == 0, added.stderr
    for change, expected in (
        (
            '[{"op":"replace","path":"/spec/notes/0/text","value":"rewritten"}]',
            "notes can only be appended",
        ),
        ('[{"op":"remove","path":"/spec/acknowledgements"}]', "acknowledgements can only be"),
    ):
        refused = patch(cluster, Incident, body, "--type=json", "-p", change)
        assert refused.returncode != 0, change
        assert expected in refused.stderr
    incident = Incident.model_validate(read(cluster, Incident, body))
    assert [n.text for n in incident.spec.notes][-1] == "Failover to the second acquirer."


def test_status_written_by_the_operator_reads_back_into_the_model(
    cluster: Cluster, api: client.ApiClient, crds: list[str], namespace: str
) -> None:
    body = placed(ChangeRequest, namespace)
    assert create(cluster, body).returncode == 0
    status = {
        "status": {
            "observedGeneration": 1,
            "phase": "Approved",
            "approvalCount": 1,
            "requiredApprovals": 1,
            "approvedBy": ["change-manager-1"],
            "approvedTime": "2026-11-17T08:30:00Z",
            "conditions": [
                {
                    "type": "Approved",
                    "status": "True",
                    "observedGeneration": 1,
                    "lastTransitionTime": "2026-11-17T08:30:00Z",
                    "reason": "ApprovalsComplete",
                    "message": "1 of 1 approvals from change-manager-1",
                }
            ],
            "auditTrail": [
                {
                    "time": "2026-11-17T08:30:00Z",
                    "actor": "change-manager-1",
                    "action": "Approved",
                    "message": "Reviewed the 3DS test evidence; go.",
                }
            ],
            "externalTicket": {"system": "ServiceNow", "id": "CHG0030001"},
        }
    }
    custom = client.CustomObjectsApi(api)
    custom.patch_namespaced_custom_object_status(
        "changegate.io", "v1alpha1", namespace, "changerequests", body["metadata"]["name"], status
    )
    stored = ChangeRequest.model_validate(
        custom.get_namespaced_custom_object(
            "changegate.io", "v1alpha1", namespace, "changerequests", body["metadata"]["name"]
        )
    )
    assert stored.status.phase is ChangePhase.APPROVED
    assert stored.status.approved_by == ["change-manager-1"]
    assert stored.status.audit_trail[0].action == "Approved"

    table = cluster.kubectl("get", "changerequests", "-n", namespace).stdout
    assert "Approved" in table
    assert "payments-api" in table


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        pytest.param({"reason": "not a reason"}, "should match", id="reason-pattern"),
        pytest.param({"status": "Maybe"}, 'Unsupported value: "Maybe"', id="status-enum"),
        pytest.param({"lastTransitionTime": None}, "Required value", id="no-transition-time"),
    ],
)
def test_conditions_keep_the_metav1_shape_in_status(
    cluster: Cluster, crds: list[str], namespace: str, condition: dict[str, Any], expected: str
) -> None:
    body = placed(ChangeTemplate, namespace)
    assert create(cluster, body).returncode == 0
    good = {
        "type": "Active",
        "status": "True",
        "lastTransitionTime": "2026-11-17T08:30:00Z",
        "reason": "Activated",
        "message": "activated by change-manager-1",
    }
    bad = {k: v for k, v in {**good, **condition}.items() if v is not None}
    refused = patch(
        cluster,
        ChangeTemplate,
        body,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": [bad]}}),
    )
    assert refused.returncode != 0
    assert expected in refused.stderr
