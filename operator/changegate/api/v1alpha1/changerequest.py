"""ChangeRequest: one change to the workloads of a service, as ITIL records it.

The spec says what changes (targets and images), when (window), where it comes
from (source) and who approved it (approvals, append-only). The status says
where the change is in its lifecycle, what rolled out, and keeps an audit trail.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from changegate.api.v1alpha1.common import (
    AGE_COLUMN,
    LIST_SET,
    ActSource,
    ApiModel,
    AuditEntry,
    ChangeType,
    CommitSha,
    Condition,
    ContainerImage,
    Count,
    CustomResource,
    Digest,
    DNSLabel,
    ExternalTicket,
    ExternalUser,
    Level,
    LocalObjectRef,
    ObjectName,
    PrinterColumn,
    Seconds,
    StatusModel,
    SyncState,
    Text,
    TimeWindow,
    Title,
    Url,
    UserName,
    WorkloadKind,
    append_only,
    cel,
    conditions_field,
    list_map,
    sync_field,
    validations,
)


class ChangePhase(StrEnum):
    """Where a change is in its lifecycle; derived from its conditions."""

    PENDING = "Pending"
    APPROVED = "Approved"
    REJECTED = "Rejected"
    CANCELLED = "Cancelled"
    EXPIRED = "Expired"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"


TERMINAL_PHASES = frozenset(
    {
        ChangePhase.REJECTED,
        ChangePhase.CANCELLED,
        ChangePhase.EXPIRED,
        ChangePhase.COMPLETED,
        ChangePhase.FAILED,
    }
)


class ApprovalDecision(StrEnum):
    """An approver's decision."""

    APPROVED = "Approved"
    REJECTED = "Rejected"


class RolloutResult(StrEnum):
    """The outcome of a rollout."""

    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ChangeTarget(ApiModel):
    """A workload the change rolls out to, in the ChangeRequest's namespace."""

    kind: WorkloadKind = Field(
        default=WorkloadKind.DEPLOYMENT,
        description=(
            "Kind of workload: Deployment, StatefulSet or DaemonSet; or Pod, ReplicaSet, Job"
            " or CronJob, which a governed namespace admits only under a change too (a"
            " CronJob's job template, a Pod's spec)."
        ),
    )
    name: ObjectName = Field(description="Name of the workload.")
    images: list[ContainerImage] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Images the rollout must run, per container. Containers not listed keep their"
            " image; empty for a configuration-only change."
        ),
        json_schema_extra=list_map("container"),
    )
    pod_template_hash: Digest | None = Field(
        default=None,
        description=(
            "The whole pod template the change rolls out, as sha256:<hex> of its canonical"
            " JSON; `changegate request --from-file MANIFEST` computes it from the manifest"
            " the pipeline applies. Canonical: the template without container images"
            " (declared in images), the labels pod-template-hash and controller-revision-hash,"
            " the kubectl.kubernetes.io/restartedAt annotation, metadata.creationTimestamp,"
            " null values, and fields holding the API server's default; JSON with sorted"
            " keys and no spaces. Without it the change covers images only: any other edit"
            " of the template is refused."
        ),
    )


class Promotion(ApiModel):
    """The pre-production rollout a change was raised from."""

    environment: DNSLabel = Field(description="Pre-production environment of the rollout.")
    deployment_record: ObjectName = Field(description="DeploymentRecord of that rollout.")


class ChangeSource(ApiModel):
    """Where the change comes from: the code and the pipeline that built it."""

    repository: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^[^\s]+$",
        description="Source repository, for example https://git.example.com/payments/api.",
    )
    commit: CommitSha = Field(description="Commit SHA (7 to 64 lowercase hex digits).")
    commit_time: datetime | None = Field(
        default=None, description="When the commit was made (RFC 3339); starts the lead time."
    )
    branch: Annotated[str, Field(max_length=256)] | None = Field(
        default=None, description="Branch or tag the commit was built from."
    )
    pull_request: Url | None = Field(default=None, description="Link to the reviewed pull request.")
    pipeline_run: Url | None = Field(
        default=None, description="Link to the pipeline run that built and tested the change."
    )
    promoted_from: Promotion | None = Field(
        default=None,
        description=(
            "Not filled yet: a change raised from a pre-production rollout carries the label"
            " changegate.io/promoted-from instead. The pre-production rollout this change was"
            " raised from automatically."
        ),
    )


class Approval(ApiModel):
    """One approver's decision. approver and time are stamped by the admission webhook."""

    approver: UserName | None = Field(
        default=None,
        description=(
            "Who decided, as the API server authenticated them; set by the admission webhook,"
            " any value written by hand is replaced."
        ),
    )
    decision: ApprovalDecision = Field(description="Approved or Rejected.")
    comment: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="Why; required by policy for a rejection."
    )
    time: datetime | None = Field(
        default=None, description="When the decision was recorded; set by the admission webhook."
    )
    via: ActSource | None = Field(
        default=None,
        description=(
            "ServiceNow when the decision was made there (the service's"
            " changePolicy.approvalsIn is ServiceNow) and recorded by changegate's controller,"
            " whose identity approver then holds; absent: made in Kubernetes. Only the"
            " controller sets it."
        ),
    )
    external_user: ExternalUser | None = Field(
        default=None,
        description=(
            "Who decided in ServiceNow, as ServiceNow names them (a team member's user name"
            " where a contact matches). Never the requester: segregation of duties holds"
            " however the approval arrives."
        ),
    )


class Review(ApiModel):
    """A change manager's review of an emergency change after the fact.

    reviewer and time are stamped by the admission webhook."""

    reviewer: UserName | None = Field(
        default=None,
        description=(
            "Who reviewed, as the API server authenticated them; set by the admission webhook,"
            " any value written by hand is replaced."
        ),
    )
    note: Annotated[str, Field(min_length=1, max_length=2048)] = Field(
        description="What the review found: why the emergency was justified, what follows."
    )
    time: datetime | None = Field(
        default=None, description="When the review was recorded; set by the admission webhook."
    )


def _immutable(field: str, required: bool = False) -> dict[str, str]:
    rule = (
        f"self.{field} == oldSelf.{field}"
        if required
        else f"has(self.{field}) == has(oldSelf.{field})"
        f" && (!has(self.{field}) || self.{field} == oldSelf.{field})"
    )
    return cel(
        rule, f"{field} is immutable; raise a new ChangeRequest instead", fieldPath=f".{field}"
    )


class ChangeRequestSpec(ApiModel):
    """The desired state of a ChangeRequest: what changes, when, why, and who approved it."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.type != 'Standard' || has(self.templateRef)",
                "a Standard change must name its ChangeTemplate in templateRef",
                fieldPath=".templateRef",
            ),
            cel(
                "!has(self.templateRef) || self.type == 'Standard'",
                "templateRef is only for Standard changes",
                fieldPath=".templateRef",
            ),
            cel(
                "self.type != 'Emergency' || has(self.emergencyReason)",
                "an Emergency change must give an emergencyReason",
                fieldPath=".emergencyReason",
            ),
            _immutable("service", required=True),
            _immutable("type", required=True),
            _immutable("targets", required=True),
            _immutable("window"),
            _immutable("source"),
            cel(
                "!has(oldSelf.requester) || (has(self.requester)"
                " && self.requester == oldSelf.requester)",
                "requester cannot be changed once recorded",
                fieldPath=".requester",
            ),
            append_only("approvals", "approvals"),
            append_only("reviews", "reviews"),
            cel(
                "!(has(oldSelf.cancel) && oldSelf.cancel) || (has(self.cancel) && self.cancel)",
                "a cancelled change cannot be un-cancelled",
                fieldPath=".cancel",
            ),
        )
    )

    service: DNSLabel = Field(description="Service (spec.service.name of a ServiceOnCall).")
    type: ChangeType = Field(
        description=(
            "Standard: fits an active ChangeTemplate and is approved at once. Normal: needs"
            " approvals. Emergency: only for the emergency group, admitted at once and"
            " reviewed afterwards."
        )
    )
    template_ref: LocalObjectRef | None = Field(
        default=None, description="The ChangeTemplate a Standard change follows."
    )
    summary: Title = Field(description="One line saying what changes.")
    description: Text | None = Field(default=None, description="What changes and why.")
    risk: Level | None = Field(default=None, description="Risk of the change: Low, Medium or High.")
    impact: Level | None = Field(
        default=None, description="Impact on users if it goes wrong: Low, Medium or High."
    )
    backout_plan: Text | None = Field(
        default=None, description="How the change is undone if it fails."
    )
    emergency_reason: Annotated[str, Field(min_length=1, max_length=2048)] | None = Field(
        default=None, description="Why the change cannot wait; required for an Emergency change."
    )
    incident_ref: LocalObjectRef | None = Field(
        default=None,
        description=(
            "The Incident this change answers, if any: in the change's namespace, else in its"
            " service's ServiceOnCall namespace. Each finished rollout of the change adds one"
            " ChangeRolledOut entry to that Incident's timeline (none if it does not exist), and"
            " the DORA report counts an Emergency change's rollout as rework."
        ),
    )
    targets: list[ChangeTarget] = Field(
        min_length=1,
        max_length=16,
        description=(
            "Workloads the change rolls out to, in this namespace, with the images they must run."
        ),
        json_schema_extra=list_map("kind", "name"),
    )
    window: TimeWindow | None = Field(
        default=None,
        description=("When the rollout may start; from approval until it expires when not given."),
    )
    source: ChangeSource | None = Field(
        default=None, description="Where the change comes from: repository, commit, pipeline."
    )
    requester: UserName | None = Field(
        default=None,
        description=(
            "Who raised the change, as the API server authenticated them; set by the admission"
            " webhook on create."
        ),
    )
    approvals: list[Approval] = Field(
        default_factory=list,
        max_length=32,
        description="Approvers' decisions, appended one at a time; entries never change.",
    )
    cancel: bool = Field(
        default=False,
        description="Set to true to cancel the change before it rolls out; cannot be undone.",
    )
    reviews: list[Review] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Change managers' reviews of an emergency change after the fact, appended one at a"
            " time (`changegate review`); entries never change. The first marks the change"
            " reviewed (label changegate.io/review=done)."
        ),
    )


class Rollout(StatusModel):
    """One rollout made under the change."""

    kind: WorkloadKind = Field(description="Kind of the workload.")
    name: ObjectName = Field(description="Name of the workload.")
    revision: Count | None = Field(
        default=None, description="Rollout revision (deployment.kubernetes.io/revision)."
    )
    images: list[ContainerImage] = Field(
        default_factory=list, max_length=32, description="Images rolled out, per container."
    )
    deployer: UserName | None = Field(default=None, description="Who changed the workload.")
    start_time: datetime = Field(description="When the rollout was admitted (RFC 3339).")
    finish_time: datetime | None = Field(
        default=None, description="When the rollout finished (RFC 3339)."
    )
    result: RolloutResult = Field(description="InProgress, Succeeded or Failed.")
    deployment_record: ObjectName | None = Field(
        default=None, description="DeploymentRecord written when the rollout finished."
    )


class ChangeRequestStatus(StatusModel):
    """The observed state of a ChangeRequest."""

    observed_generation: Count | None = Field(
        default=None, description="The .metadata.generation this status was computed from."
    )
    conditions: list[Condition] = conditions_field()
    phase: ChangePhase | None = Field(
        default=None,
        description=(
            "Pending, Approved, Rejected, Cancelled, Expired, InProgress, Completed or Failed;"
            " derived from the conditions."
        ),
    )
    approval_count: Count = Field(default=0, description="Valid approvals counted so far.")
    required_approvals: Count | None = Field(
        default=None, description="Approvals the change needs under the service's policy."
    )
    approved_by: list[UserName] = Field(
        default_factory=list,
        max_length=32,
        description="Approvers whose approvals counted.",
        json_schema_extra=LIST_SET,
    )
    approved_time: datetime | None = Field(
        default=None, description="When the change became Approved (RFC 3339)."
    )
    expiration_time: datetime | None = Field(
        default=None, description="When an approved, unused change expires (RFC 3339)."
    )
    rollouts: list[Rollout] = Field(
        default_factory=list, max_length=32, description="Rollouts made under the change."
    )
    lead_time_seconds: Seconds | None = Field(
        default=None, description="Seconds from the commit to the change completing."
    )
    external_ticket: ExternalTicket | None = Field(
        default=None,
        description=(
            "The ServiceNow change_request mirroring a production change (number, link and"
            " state) when the service's integrations.serviceNow is set; without it, the"
            " ChangeRequest is the ticket. Delivery of each step is in status.sync."
        ),
    )
    sync: list[SyncState] = sync_field()
    audit_trail: list[AuditEntry] = Field(
        default_factory=list,
        max_length=64,
        description="What happened to the change, oldest first; the oldest entries drop off.",
    )


class ChangeRequest(CustomResource):
    """ChangeRequest asks for, and records, one change to a service's workloads."""

    plural: ClassVar[str] = "changerequests"
    singular: ClassVar[str] = "changerequest"
    short_names: ClassVar[tuple[str, ...]] = ("chg", "chgreq")
    selectable_fields: ClassVar[tuple[str, ...]] = (".spec.service", ".spec.type")
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Service", "string", ".spec.service", "Service being changed."),
        PrinterColumn("Type", "string", ".spec.type", "Standard, Normal or Emergency."),
        PrinterColumn("Phase", "string", ".status.phase", "Where the change is."),
        PrinterColumn("Approvals", "integer", ".status.approvalCount", "Approvals counted."),
        PrinterColumn("Required", "integer", ".status.requiredApprovals", "Approvals needed."),
        PrinterColumn("Target", "string", ".spec.targets[0].name", "First workload changed."),
        PrinterColumn("Requester", "string", ".spec.requester", "Who raised it.", 1),
        PrinterColumn("Summary", "string", ".spec.summary", "What changes.", 1),
        PrinterColumn(
            "Reviewed-By", "string", ".spec.reviews[0].reviewer", "Who reviewed it first.", 1
        ),
        AGE_COLUMN,
    )

    kind: Literal["ChangeRequest"] = Field(default="ChangeRequest", description="Kind.")
    spec: ChangeRequestSpec = Field(description="What changes, when, why, and who approved it.")
    status: ChangeRequestStatus = Field(
        default_factory=ChangeRequestStatus, description="What the operator observed."
    )
