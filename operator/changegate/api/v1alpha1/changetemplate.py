"""ChangeTemplate: a standard (pre-approved, repeatable, low-risk) change.

A product manager writes one for a service: which workloads, which kinds of
change, when and until when. A change manager activates it; from then on a
ChangeRequest that fits it is approved by the operator at once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from changegate.api.v1alpha1.common import (
    AGE_COLUMN,
    LIST_SET,
    ApiModel,
    Clock,
    Condition,
    Count,
    CustomResource,
    DNSLabel,
    LabelSelector,
    ObjectName,
    PrinterColumn,
    StatusModel,
    Text,
    TimeZone,
    Title,
    UserName,
    Weekday,
    WorkloadKind,
    cel,
    conditions_field,
    validations,
)


class TemplateChange(StrEnum):
    """A kind of change a template covers."""

    IMAGE_UPDATE = "ImageUpdate"
    """A new tag or digest of the same image repository, per container, nothing else."""
    CONFIGURATION_ONLY = "ConfigurationOnly"
    """A pod template change that keeps every image: environment, resources, annotations."""


class WorkloadSelector(ApiModel):
    """Workloads of one kind, by name or by labels."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel("has(self.name) != has(self.selector)", "give exactly one of name and selector")
        )
    )

    kind: WorkloadKind = Field(
        default=WorkloadKind.DEPLOYMENT,
        description="Kind of workload: Deployment, StatefulSet or DaemonSet.",
    )
    name: ObjectName | None = Field(default=None, description="Name of the workload.")
    selector: LabelSelector | None = Field(
        default=None, description="Labels that select the workloads."
    )


class RecurringWindow(ApiModel):
    """A weekly window, for example Monday to Thursday, 09:00 to 16:00 in Europe/Berlin."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel("self.endAt > self.startAt", "endAt must be after startAt")
        )
    )

    days: list[Weekday] = Field(
        min_length=1, max_length=7, description="Days the window opens.", json_schema_extra=LIST_SET
    )
    start_at: Clock = Field(description="Time of day (HH:MM) the window opens.")
    end_at: Clock = Field(description="Time of day (HH:MM) the window closes.")
    time_zone: TimeZone = Field(default="UTC", description="IANA time zone of startAt and endAt.")


# A ServiceNow record's sys_id: 32 hex digits.
SysId = Annotated[str, Field(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$")]


class ChangeTemplateSpec(ApiModel):
    """The desired state of a ChangeTemplate: what a standard change of the service may do."""

    service: DNSLabel = Field(description="Service (spec.service.name of a ServiceOnCall).")
    summary: Title = Field(description="One line saying what the standard change does.")
    description: Text | None = Field(
        default=None, description="How the change is made and verified."
    )
    workloads: list[WorkloadSelector] = Field(
        min_length=1, max_length=16, description="Workloads the template covers."
    )
    allowed_changes: list[TemplateChange] = Field(
        min_length=1,
        max_length=2,
        description=(
            "Kinds of change covered. ImageUpdate: a new tag or digest of the same image"
            " repository. ConfigurationOnly: a pod template change that keeps every image."
        ),
        json_schema_extra=LIST_SET,
    )
    windows: list[RecurringWindow] = Field(
        default_factory=list,
        max_length=8,
        description="When changes may run; at any time when empty.",
    )
    expiration_time: datetime | None = Field(
        default=None, description="When the template stops applying (RFC 3339); never if empty."
    )
    risk_note: Text = Field(
        min_length=1, description="Why the change is low risk, and how it is rolled back."
    )
    service_now_template: SysId | None = Field(
        default=None,
        description=(
            "sys_id of the ServiceNow standard change template (its producer) that mirrors"
            " this template: a production ChangeRequest that follows it is created in"
            " ServiceNow as a standard change from it (POST"
            " /api/sn_chg_rest/change/standard/{sys_id}); without it, as a normal change."
        ),
    )
    active: bool = Field(
        default=False,
        description=(
            "Set to true by a change manager to activate the template; only then does it"
            " approve changes."
        ),
    )


class ScopedWorkload(ApiModel):
    """A workload a template's selector matched when the template was activated."""

    kind: WorkloadKind = Field(
        description="Kind of workload: Deployment, StatefulSet or DaemonSet."
    )
    name: ObjectName = Field(description="Name of the workload.")


class ChangeTemplateStatus(StatusModel):
    """The observed state of a ChangeTemplate."""

    observed_generation: Count | None = Field(
        default=None, description="The .metadata.generation this status was computed from."
    )
    conditions: list[Condition] = conditions_field()
    activated_by: UserName | None = Field(
        default=None, description="Change manager who activated the template."
    )
    activated_time: datetime | None = Field(
        default=None, description="When the template was activated (RFC 3339)."
    )
    scope: list[ScopedWorkload] = Field(
        default_factory=list,
        max_length=256,
        description=(
            "Workloads the template's selectors matched when it was activated: a selector"
            " covers only these (and only while they still match), so a label added later"
            " does not widen the template."
        ),
    )
    scope_activated_time: datetime | None = Field(
        default=None,
        description=(
            "The activation (its time, RFC 3339) the scope was recorded for; the scope counts"
            " only while it matches the current activation."
        ),
    )
    used_count: Count = Field(default=0, description="ChangeRequests approved by this template.")
    last_used_time: datetime | None = Field(
        default=None, description="When the template last approved a change (RFC 3339)."
    )
    last_change_request: ObjectName | None = Field(
        default=None, description="The ChangeRequest the template last approved."
    )


class ChangeTemplate(CustomResource):
    """ChangeTemplate declares a standard, pre-approved change for one service."""

    plural: ClassVar[str] = "changetemplates"
    singular: ClassVar[str] = "changetemplate"
    short_names: ClassVar[tuple[str, ...]] = ("chgtpl",)
    selectable_fields: ClassVar[tuple[str, ...]] = (".spec.service",)
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Service", "string", ".spec.service", "Service the template is for."),
        PrinterColumn(
            "Active",
            "string",
            '.status.conditions[?(@.type=="Active")].status',
            "Whether the template approves changes now.",
        ),
        PrinterColumn("Used", "integer", ".status.usedCount", "Changes approved by it."),
        PrinterColumn("Expires", "string", ".spec.expirationTime", "When the template expires."),
        PrinterColumn("Summary", "string", ".spec.summary", "What the change does.", 1),
        AGE_COLUMN,
    )

    kind: Literal["ChangeTemplate"] = Field(default="ChangeTemplate", description="Kind.")
    spec: ChangeTemplateSpec = Field(description="What a standard change of the service may do.")
    status: ChangeTemplateStatus = Field(
        default_factory=ChangeTemplateStatus, description="What the operator observed."
    )
