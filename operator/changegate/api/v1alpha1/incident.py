"""Incident: one incident of a service, from an alert or raised by hand.

People acknowledge it, reassign it (by changing service or assignee), add
notes, name a commander and a cause, declare it major and resolve it; the
admission webhook stamps who did each and when (core/incident/review.py), and
acknowledgements and notes are append-only. Status keeps the phase, the pages
sent and a bounded timeline.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from changegate.api.v1alpha1.common import (
    AGE_COLUMN,
    LIST_SET,
    ActSource,
    ApiModel,
    AuditEntry,
    Condition,
    Count,
    CustomResource,
    DNSLabel,
    ExternalTicket,
    ExternalUser,
    PrinterColumn,
    Seconds,
    StatusModel,
    SyncState,
    Text,
    Url,
    UserName,
    append_only,
    cel,
    conditions_field,
    list_map,
    sync_field,
    validations,
)
from changegate.api.v1alpha1.serviceoncall import Escalation, EscalationTarget, Link


class Severity(StrEnum):
    """How badly users are affected (PagerDuty: critical, error, warning, info)."""

    CRITICAL = "Critical"
    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


class IncidentOrigin(StrEnum):
    """How the incident was opened."""

    ALERT = "Alert"
    MANUAL = "Manual"


class IncidentPhase(StrEnum):
    """Where an incident is in its lifecycle; derived from its conditions."""

    TRIGGERED = "Triggered"
    ACKNOWLEDGED = "Acknowledged"
    RESOLVED = "Resolved"


class ResolutionCode(StrEnum):
    """How an incident ended (after ServiceNow's close codes)."""

    FIXED = "Fixed"
    WORKAROUND = "Workaround"
    NO_ACTION_NEEDED = "NoActionNeeded"
    DUPLICATE = "Duplicate"
    AUTO_RESOLVED = "AutoResolved"


class PageChannel(StrEnum):
    """Where a page went."""

    PAGER_DUTY = "PagerDuty"
    SLACK = "Slack"
    WEBHOOK = "Webhook"
    KUBERNETES = "Kubernetes"
    SERVICE_NOW = "ServiceNow"


class PageResult(StrEnum):
    """Whether a page reached the far side."""

    SENT = "Sent"
    FAILED = "Failed"
    SKIPPED = "Skipped"


class SourceAlert(ApiModel):
    """The Alertmanager alert that opened the incident."""

    fingerprint: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[0-9a-f]+$",
        description="Alertmanager's fingerprint of the alert (hex); deduplicates deliveries.",
    )
    name: Annotated[str, Field(min_length=1, max_length=256)] = Field(
        description="The alert's alertname label."
    )
    labels: dict[str, Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict, max_length=64, description="The alert's labels."
    )
    start_time: datetime | None = Field(
        default=None, description="When the alert started firing (startsAt)."
    )
    generator_url: Url | None = Field(
        default=None, description="Link to the expression that fired (generatorURL)."
    )
    group_key: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="Alertmanager's group key of the notification."
    )


class AlertState(StrEnum):
    """Whether an alert of the incident still fires."""

    FIRING = "Firing"
    RESOLVED = "Resolved"


class IncidentAlert(StatusModel):
    """One Alertmanager alert of the incident, as last heard of (by the alert's own times)."""

    fingerprint: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[0-9a-f]+$",
        description="Alertmanager's fingerprint of the alert (hex).",
    )
    name: Annotated[str, Field(max_length=256)] = Field(
        default="", description="The alert's alertname label."
    )
    state: AlertState = Field(description="Firing or Resolved.")
    severity: Severity | None = Field(
        default=None, description="Severity from the alert's severity label."
    )
    start_time: datetime = Field(description="When the alert started firing (startsAt).")
    end_time: datetime | None = Field(
        default=None, description="When the alert resolved (endsAt), once it has."
    )


class SuspectChange(StatusModel):
    """A DeploymentRecord of the service that finished shortly before the alert started."""

    name: Annotated[str, Field(min_length=1, max_length=253)] = Field(
        description="Name of the DeploymentRecord."
    )
    finish_time: datetime = Field(description="When that rollout finished (RFC 3339).")
    seconds_before: Seconds = Field(
        description="Seconds from the rollout finishing to the alert starting."
    )


def via_field(act: str) -> Any:
    """Field of an act that came from PagerDuty or ServiceNow; None: made in Kubernetes."""
    return Field(
        default=None,
        description=(
            f"PagerDuty or ServiceNow when {act} was made there and applied by changegate's"
            " controller (its user stamp is then the controller's); absent: made in"
            " Kubernetes. Only the controller sets it."
        ),
    )


def external_user_field(act: str) -> Any:
    """Field naming who made an act in the external system, for display."""
    return Field(
        default=None,
        description=(
            f"Who made {act} in the system named by its via field, as that system names them"
            " (the team member's username where their ServiceOnCall contacts name them: a"
            " PagerDuty user ID or email). For display; only the controller sets it."
        ),
    )


class Acknowledgement(ApiModel):
    """Someone taking the incident on. user and time are stamped by the admission webhook."""

    user: UserName | None = Field(
        default=None,
        description=(
            "Who acknowledged, as the API server authenticated them: stamped by the webhook,"
            " whatever the writer typed."
        ),
    )
    time: datetime | None = Field(
        default=None, description="When it was acknowledged; stamped by the webhook."
    )
    comment: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="What they are doing about it."
    )
    via: ActSource | None = via_field("the acknowledgement")
    external_user: ExternalUser | None = external_user_field("the acknowledgement")


class Note(ApiModel):
    """A note on the incident. author and time are stamped by the admission webhook."""

    author: UserName | None = Field(
        default=None,
        description=(
            "Who wrote the note, as the API server authenticated them: stamped by the webhook,"
            " whatever the writer typed."
        ),
    )
    time: datetime | None = Field(
        default=None, description="When it was written; stamped by the webhook."
    )
    text: Text = Field(min_length=1, description="The note.")
    via: ActSource | None = via_field("the note")
    external_user: ExternalUser | None = external_user_field("the note")


class Resolution(ApiModel):
    """How the incident was resolved."""

    code: ResolutionCode = Field(
        description="Fixed, Workaround, NoActionNeeded, Duplicate or AutoResolved."
    )
    note: Text = Field(min_length=1, description="What was done, for the record.")
    resolved_by: UserName | None = Field(
        default=None,
        description=(
            "Who resolved it, as the API server authenticated them: stamped by the webhook"
            " (changegate when the alerts resolved it)."
        ),
    )
    time: datetime | None = Field(
        default=None, description="When it was resolved; stamped by the webhook."
    )
    via: ActSource | None = via_field("the resolution")
    external_user: ExternalUser | None = external_user_field("the resolution")


class IncidentSpec(ApiModel):
    """The desired state of an Incident: what is wrong, how bad, and who is on it."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "(self.origin == 'Alert') == has(self.alert)",
                "alert is required when origin is Alert, and only then",
                fieldPath=".alert",
            ),
            cel(
                "!self.freezeChanges || self.major",
                "only a major incident can freeze changes",
                fieldPath=".freezeChanges",
            ),
            append_only("acknowledgements", "acknowledgements"),
            append_only("notes", "notes"),
        )
    )

    service: DNSLabel = Field(
        description="Service that owns the incident; change it to reassign the incident."
    )
    summary: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="One line saying what is wrong."
    )
    description: Text | None = Field(default=None, description="What is known so far.")
    severity: Severity = Field(description="Critical, High, Medium or Low.")
    major: bool = Field(
        default=False,
        description=(
            "Whether this is a major incident: the incident manager on call is paged and every"
            " service's on-call notified. The service's team or an incident manager declares it."
        ),
    )
    freeze_changes: bool = Field(
        default=False,
        description=(
            "While this major incident is open, Normal and Standard rollouts of spec.service"
            " and spec.affectedServices are refused (rollbacks, restarts and break-glass pass)."
            " Only incident managers set or clear it."
        ),
    )
    affected_services: list[DNSLabel] = Field(
        default_factory=list,
        max_length=16,
        description="Other services affected, frozen too when freezeChanges is set.",
        json_schema_extra=LIST_SET,
    )
    origin: IncidentOrigin = Field(
        default=IncidentOrigin.MANUAL, description="Alert or Manual: how the incident was opened."
    )
    alert: SourceAlert | None = Field(
        default=None, description="The alert that opened the incident, when origin is Alert."
    )
    assignee: UserName | None = Field(
        default=None,
        description=(
            "Who works on it: a team member or incident manager sets it (`changegate incident"
            " assign`), stamped with who and when by the admission webhook; it stays empty"
            " until someone does (the on-call is paged whatever it says)."
        ),
    )
    acknowledgements: list[Acknowledgement] = Field(
        default_factory=list,
        max_length=16,
        description="Acknowledgements, appended one at a time; entries never change.",
    )
    notes: list[Note] = Field(
        default_factory=list,
        max_length=64,
        description="Notes, appended one at a time; entries never change.",
    )
    resolution: Resolution | None = Field(default=None, description="Set to resolve the incident.")
    assigned_by: UserName | None = Field(
        default=None, description="Who set the assignee last; stamped by the webhook."
    )
    assigned_time: datetime | None = Field(
        default=None, description="When the assignee was set last; stamped by the webhook."
    )
    assigned_via: ActSource | None = via_field("the last assignment")
    assigned_external_user: ExternalUser | None = external_user_field("the last assignment")
    commander: UserName | None = Field(
        default=None, description="Who leads the response, usually of a major incident."
    )
    commander_assigned_by: UserName | None = Field(
        default=None, description="Who named the commander last; stamped by the webhook."
    )
    commander_assigned_time: datetime | None = Field(
        default=None, description="When the commander was named last; stamped by the webhook."
    )
    caused_by: Annotated[str, Field(min_length=1, max_length=253)] | None = Field(
        default=None,
        description=(
            "The DeploymentRecord confirmed as the cause: one of status.suspectChanges. Feeds"
            " the change failure rate."
        ),
    )
    cause_confirmed_by: UserName | None = Field(
        default=None, description="Who confirmed causedBy; stamped by the webhook."
    )
    cause_confirmed_time: datetime | None = Field(
        default=None, description="When causedBy was confirmed; stamped by the webhook."
    )
    reassigned_by: UserName | None = Field(
        default=None,
        description="Who last reassigned the incident to another service; stamped by the webhook.",
    )
    reassigned_time: datetime | None = Field(
        default=None, description="When it was last reassigned; stamped by the webhook."
    )
    reassigned_via: ActSource | None = via_field("the last reassignment")
    reassigned_external_user: ExternalUser | None = external_user_field("the last reassignment")
    major_via: ActSource | None = via_field("the last change of spec.major")
    major_external_user: ExternalUser | None = external_user_field("the last change of spec.major")


class Page(StatusModel):
    """One page or notice sent for the incident."""

    time: datetime = Field(description="When it was sent (RFC 3339).")
    channel: PageChannel = Field(
        description="PagerDuty, Slack, Webhook, ServiceNow or Kubernetes (an Event)."
    )
    user: UserName | None = Field(default=None, description="Who was paged, where known.")
    escalation_step: int = Field(
        default=0, ge=0, le=64, description="Escalation step that sent it, from 0."
    )
    dedup_key: Annotated[str, Field(max_length=255)] | None = Field(
        default=None, description="Deduplication key used with the paging system."
    )
    result: PageResult = Field(
        description="Sent, Failed, or Skipped (the channel had nothing to send to)."
    )
    attempts: int = Field(
        default=1, ge=0, le=16, description="Requests made to the far side, retries included."
    )
    message: Annotated[str, Field(max_length=1024)] | None = Field(
        default=None, description="Error or detail from the far side."
    )


class EscalationOutcome(StrEnum):
    """What one target of an escalation step came to."""

    PAGED = "Paged"
    NOBODY = "Nobody"


class EscalationRecord(StatusModel):
    """One target of one escalation step, handled: paged, or found nobody to page."""

    cycle: int = Field(ge=0, le=5, description="Round of the policy, from 0 (it repeats).")
    step: int = Field(ge=0, le=7, description="Step of the policy, from 0.")
    target: EscalationTarget = Field(description="Whom the step names.")
    key: Annotated[str, Field(min_length=1, max_length=255)] = Field(
        description="Idempotency key of the pages for this target (incident, cycle, step, target)."
    )
    outcome: EscalationOutcome = Field(
        description="Paged, or Nobody: the target named nobody, so the escalation moved on."
    )
    time: datetime = Field(description="When the controller handled it (RFC 3339).")


class IncidentEscalation(StatusModel):
    """The escalation policy the incident follows, as it was when it triggered, and its progress."""

    service: DNSLabel = Field(description="Service whose escalation policy this is.")
    policy: Escalation | None = Field(
        default=None,
        description=(
            "The service's escalation policy when the incident triggered; later edits do not"
            " change it. None: the service had none, and its on-call is paged once."
        ),
    )
    snapshot_time: datetime = Field(description="When the policy was copied (RFC 3339).")
    records: list[EscalationRecord] = Field(
        default_factory=list,
        max_length=384,
        description="Targets handled so far, oldest first; each (cycle, step, target) once.",
    )
    major_paged_time: datetime | None = Field(
        default=None,
        description=(
            "When a major incident's pages went out (the incident manager on call and every"
            " service's on-call), RFC 3339; set once, so they go out once."
        ),
    )
    reassignments: Count | None = Field(
        default=None,
        description=(
            "Reassignments whose new owner's on-call has been paged; each reassignment pages"
            " once, keyed by this count."
        ),
    )


class IncidentStatus(StatusModel):
    """The observed state of an Incident."""

    observed_generation: Count | None = Field(
        default=None, description="The .metadata.generation this status was computed from."
    )
    conditions: list[Condition] = conditions_field()
    phase: IncidentPhase | None = Field(
        default=None, description="Triggered, Acknowledged or Resolved; derived from conditions."
    )
    triggered_time: datetime | None = Field(
        default=None, description="When the incident was opened (RFC 3339)."
    )
    acknowledged_time: datetime | None = Field(
        default=None, description="When it was first acknowledged (RFC 3339)."
    )
    acknowledged_by: UserName | None = Field(default=None, description="Who acknowledged it first.")
    resolved_time: datetime | None = Field(
        default=None, description="When it was resolved (RFC 3339)."
    )
    time_to_acknowledge_seconds: Seconds | None = Field(
        default=None,
        description=(
            "Seconds from the Incident's creation (triggered) to its first acknowledgement;"
            " absent while never acknowledged."
        ),
    )
    time_to_resolve_seconds: Seconds | None = Field(
        default=None,
        description=(
            "Seconds from when its alert started firing (the earliest alert it lists; the"
            " trigger time for an incident declared by hand) to its resolution."
        ),
    )
    pages: list[Page] = Field(
        default_factory=list,
        max_length=64,
        description="Pages and notices sent, oldest first; the oldest entries drop off.",
    )
    escalation: IncidentEscalation | None = Field(
        default=None,
        description="The escalation policy as it was when the incident triggered, and its progress.",
    )
    external_ticket: ExternalTicket | None = Field(
        default=None,
        description=(
            "The ServiceNow incident mirroring this one (number, link and state) when the"
            " service's integrations.serviceNow is set; delivery of each step is in status.sync."
        ),
    )
    sync: list[SyncState] = sync_field()
    timeline: list[AuditEntry] = Field(
        default_factory=list,
        max_length=128,
        description="What happened, oldest first; the oldest entries drop off.",
    )
    alerts: list[IncidentAlert] = Field(
        default_factory=list,
        max_length=1000,
        description="Alertmanager alerts of the incident by fingerprint, firing ones first.",
        json_schema_extra=list_map("fingerprint"),
    )
    previous_episode_end_time: datetime | None = Field(
        default=None,
        description=(
            "When the previous incident of the same alert group ended, by its alerts' times;"
            " alerts that started before it belong to the past and are ignored."
        ),
    )
    dashboards: list[Link] = Field(
        default_factory=list,
        max_length=16,
        description="Dashboards for the incident: from the alerts' annotations, then the service's.",
    )
    runbooks: list[Link] = Field(
        default_factory=list,
        max_length=16,
        description="Runbooks for the incident: from the alerts' annotations, then the service's.",
    )
    suspect_changes: list[SuspectChange] = Field(
        default_factory=list,
        max_length=16,
        description="The service's rollouts that finished in the 24 hours before the alert started, newest first.",
    )


class Incident(CustomResource):
    """Incident records one incident of a service, from trigger to resolution."""

    plural: ClassVar[str] = "incidents"
    singular: ClassVar[str] = "incident"
    short_names: ClassVar[tuple[str, ...]] = ("inc",)
    selectable_fields: ClassVar[tuple[str, ...]] = (".spec.service", ".spec.severity")
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Service", "string", ".spec.service", "Service that owns it."),
        PrinterColumn("Severity", "string", ".spec.severity", "How bad it is."),
        PrinterColumn("Phase", "string", ".status.phase", "Triggered, Acknowledged or Resolved."),
        PrinterColumn("Major", "boolean", ".spec.major", "Whether it is a major incident."),
        PrinterColumn("Assignee", "string", ".spec.assignee", "Who works on it."),
        PrinterColumn("Summary", "string", ".spec.summary", "What is wrong.", 1),
        AGE_COLUMN,
    )

    kind: Literal["Incident"] = Field(default="Incident", description="Kind.")
    spec: IncidentSpec = Field(
        description=(
            "What is wrong, how bad, and who is on it. The alert intake opens and"
            " auto-resolves Incidents from Alertmanager; people acknowledge, note, assign,"
            " reassign, declare major and resolve here (each act stamped by the admission"
            " webhook); the controller pages and escalates from it, and a major incident with"
            " freezeChanges refuses Normal and Standard rollouts of its services."
        )
    )
    status: IncidentStatus = Field(
        default_factory=IncidentStatus,
        description=(
            "What the operator observed and did: phase and times, the alerts, every page sent,"
            " the escalation's progress, suspect changes, dashboards, runbooks and the timeline."
        ),
    )
