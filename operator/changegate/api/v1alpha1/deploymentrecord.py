"""DeploymentRecord: immutable evidence of one finished rollout.

Cluster-scoped, written once by the operator when a rollout in a governed
namespace finishes, and never changed: what ran where, since when, under
which change, approved by whom, traced to which commit.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from changegate.api.v1alpha1.changerequest import ChangeSource
from changegate.api.v1alpha1.common import (
    LIST_SET,
    ApiModel,
    ChangeType,
    Condition,
    ContainerImage,
    Count,
    CustomResource,
    DNSLabel,
    ObjectName,
    ObjectRef,
    PrinterColumn,
    Seconds,
    StatusModel,
    SyncState,
    UserName,
    WorkloadKind,
    cel,
    conditions_field,
    list_map,
    sync_field,
    validations,
)


class AdmissionBasis(StrEnum):
    """Why the rollout was let through."""

    CHANGE = "Change"
    """An approved ChangeRequest covered it."""
    ROLLBACK = "Rollback"
    """A rollback to a revision that was itself deployed under an approved change."""
    RESTART = "Restart"
    """A `kubectl rollout restart`, allowed by policy."""
    BREAK_GLASS = "BreakGlass"
    """A break-glass emergency by a member of the emergency group."""
    AUDIT_ONLY = "AuditOnly"
    """Nothing covered it: enforcement would have refused it, but the namespace or the
    service is in audit-only mode (auditReason says why it would have been refused)."""


class FinalResult(StrEnum):
    """How a finished rollout ended."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class WorkloadRef(ApiModel):
    """A workload, by kind and name."""

    kind: WorkloadKind = Field(
        description="Kind of workload: Deployment, StatefulSet or DaemonSet."
    )
    name: ObjectName = Field(description="Name of the workload.")


class PreviousRecord(ApiModel):
    """The service's record written before this one: the link of its hash chain."""

    name: ObjectName = Field(description="Name of the service's previous DeploymentRecord.")
    sha256: Annotated[str, Field(max_length=64, pattern=r"^[a-f0-9]{64}$")] = Field(
        description=(
            "SHA-256 (hex) of the previous record's spec as canonical JSON (keys sorted, no"
            " whitespace, UTF-8), its own previous link included."
        )
    )


class DeploymentRecordSpec(ApiModel):
    """The evidence of one finished rollout; never changes once written."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel("self == oldSelf", "a DeploymentRecord is immutable once written"),
            cel(
                "self.finishTime >= self.startTime",
                "finishTime must not be before startTime",
                fieldPath=".finishTime",
            ),
            cel(
                "self.admission != 'Change' || has(self.changeRequest)",
                "a rollout admitted by a Change must name its changeRequest",
                fieldPath=".changeRequest",
            ),
            cel(
                "self.admission != 'AuditOnly' || has(self.auditReason)",
                "a rollout admitted in audit-only mode must say why enforcement would refuse it",
                fieldPath=".auditReason",
            ),
        )
    )

    service: DNSLabel = Field(description="Service the workload belongs to.")
    environment: DNSLabel = Field(
        description="Environment of the namespace, for example production."
    )
    namespace: DNSLabel = Field(description="Namespace of the workload.")
    production: bool = Field(default=False, description="Whether the environment is production.")
    workload: WorkloadRef = Field(description="The workload that rolled out.")
    revision: Count = Field(description="Rollout revision (deployment.kubernetes.io/revision).")
    images: list[ContainerImage] = Field(
        min_length=1,
        max_length=32,
        description="Images that ran after the rollout, per container, with digests where known.",
        json_schema_extra=list_map("container"),
    )
    image_summary: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None,
        description="The images as one line, for kubectl get; images is authoritative.",
    )
    admission: AdmissionBasis = Field(
        description=(
            "Why the rollout was let through: Change, Rollback, Restart, BreakGlass, or AuditOnly"
            " (audit-only mode admitted what enforcement would have refused; see auditReason)."
        )
    )
    audit_reason: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None,
        description=(
            "For admission AuditOnly: why enforcement would have refused the rollout, as the"
            " refusal said it (its reason, then the message and near misses)."
        ),
    )
    change_request: ObjectRef | None = Field(
        default=None, description="The ChangeRequest behind the rollout: name, namespace, uid."
    )
    change_type: ChangeType | None = Field(
        default=None, description="Type of that change: Standard, Normal or Emergency."
    )
    requester: UserName | None = Field(default=None, description="Who raised the change.")
    approvers: list[UserName] = Field(
        default_factory=list,
        max_length=32,
        description="Who approved the change.",
        json_schema_extra=LIST_SET,
    )
    deployer: UserName | None = Field(
        default=None, description="Who changed the workload, as the API server authenticated them."
    )
    source: ChangeSource | None = Field(
        default=None, description="Repository and commit the images were built from."
    )
    start_time: datetime = Field(description="When the rollout was admitted (RFC 3339).")
    finish_time: datetime = Field(description="When the rollout finished (RFC 3339).")
    result: FinalResult = Field(description="Succeeded or Failed.")
    lead_time_seconds: Seconds | None = Field(
        default=None, description="Seconds from the commit to the rollout finishing."
    )
    previous: PreviousRecord | None = Field(
        default=None,
        description=(
            "The service's previous record, by name and SHA-256, written by the operator:"
            " the service's records form a hash chain that `changegate report verify` walks."
            " Absent on a service's first record."
        ),
    )


class DeploymentRecordStatus(StatusModel):
    """The observed state of a DeploymentRecord: where the evidence was exported."""

    observed_generation: Count | None = Field(
        default=None, description="The .metadata.generation this status was computed from."
    )
    conditions: list[Condition] = conditions_field()
    sync: list[SyncState] = sync_field()


class DeploymentRecord(CustomResource):
    """DeploymentRecord is the immutable evidence of one finished rollout."""

    plural: ClassVar[str] = "deploymentrecords"
    singular: ClassVar[str] = "deploymentrecord"
    scope: ClassVar[Literal["Namespaced", "Cluster"]] = "Cluster"
    short_names: ClassVar[tuple[str, ...]] = ("deprec",)
    selectable_fields: ClassVar[tuple[str, ...]] = (
        ".spec.service",
        ".spec.environment",
        ".spec.namespace",
    )
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Service", "string", ".spec.service", "Service of the workload."),
        PrinterColumn("Environment", "string", ".spec.environment", "Environment."),
        PrinterColumn("Workload", "string", ".spec.workload.name", "Workload that rolled out."),
        PrinterColumn("Images", "string", ".spec.imageSummary", "Images that ran after it."),
        PrinterColumn("Change", "string", ".spec.changeRequest.name", "ChangeRequest behind it."),
        PrinterColumn("Result", "string", ".spec.result", "Succeeded or Failed."),
        PrinterColumn("Finished", "date", ".spec.finishTime", "When the rollout finished."),
        PrinterColumn("Namespace", "string", ".spec.namespace", "Namespace of the workload.", 1),
        PrinterColumn("Commit", "string", ".spec.source.commit", "Commit deployed.", 1),
        PrinterColumn("Deployer", "string", ".spec.deployer", "Who changed the workload.", 1),
    )

    kind: Literal["DeploymentRecord"] = Field(default="DeploymentRecord", description="Kind.")
    spec: DeploymentRecordSpec = Field(description="The evidence; never changes once written.")
    status: DeploymentRecordStatus = Field(
        default_factory=DeploymentRecordStatus, description="What the operator observed."
    )
