"""ServiceOnCall: one digital service as its team operates it.

The team, its environments, its change policy (approvers, emergency group,
freezes), its on-call schedule and escalation, and its integrations. Status
says who is on call now, what runs in each environment, and the DORA figures.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from changegate.api.v1alpha1.common import (
    AGE_COLUMN,
    LIST_SET,
    ApiModel,
    ChangeType,
    Clock,
    Condition,
    ContainerImage,
    Count,
    CustomResource,
    DNSLabel,
    GroupName,
    ObjectName,
    ObjectRef,
    PrinterColumn,
    Seconds,
    SecretKeyRef,
    SecretRef,
    ShortText,
    StatusModel,
    Text,
    TimeZone,
    Title,
    Url,
    UserName,
    Weekday,
    cel,
    conditions_field,
    end_after_start,
    list_map,
    validations,
)


class ServiceTier(StrEnum):
    """How critical a service is to the business; Tier1 is the most critical."""

    TIER1 = "Tier1"
    TIER2 = "Tier2"
    TIER3 = "Tier3"
    TIER4 = "Tier4"


class ServiceInfo(ApiModel):
    """The digital service itself."""

    name: DNSLabel = Field(
        description=(
            "Identifier of the service, unique in the cluster. ChangeRequests, ChangeTemplates,"
            " Incidents and DeploymentRecords name the service by it."
        )
    )
    display_name: ShortText | None = Field(
        default=None, description="Human-readable name of the service."
    )
    tier: ServiceTier = Field(
        default=ServiceTier.TIER2,
        description="Business criticality of the service, Tier1 (most critical) to Tier4.",
    )
    description: Text | None = Field(
        default=None, description="What the service does, and for whom."
    )


class ContactType(StrEnum):
    """A way to reach a person."""

    EMAIL = "Email"
    PHONE = "Phone"
    SMS = "SMS"
    SLACK = "Slack"
    PAGER_DUTY = "PagerDuty"


class ContactMethod(ApiModel):
    """One way to reach a person."""

    type: ContactType = Field(description="Kind of contact: Email, Phone, SMS, Slack or PagerDuty.")
    value: str = Field(
        min_length=1,
        max_length=256,
        description="Address, number, Slack member ID or PagerDuty user ID.",
    )


class Member(ApiModel):
    """A person, identified by the user name the Kubernetes API server authenticates."""

    user: UserName = Field(
        description="Kubernetes user name of the person, as the API server authenticates it."
    )
    display_name: ShortText | None = Field(default=None, description="The person's name.")
    contacts: list[ContactMethod] = Field(
        default_factory=list,
        max_length=8,
        description=(
            "How to reach the person, in order of preference, for people to read and to match"
            " the person in external systems; pages go out on the service's channels"
            " (spec.integrations and Kubernetes Events) naming the user."
        ),
    )


class Team(ApiModel):
    """The team that builds and runs the service."""

    name: Title = Field(description="Name of the team.")
    email: str | None = Field(default=None, max_length=256, description="Team mailbox.")
    chat_channel: ShortText | None = Field(
        default=None, description="Chat channel where the team discusses the service."
    )
    product_manager: Member | None = Field(
        default=None,
        description=(
            "Product manager of the service, who creates its ChangeTemplates; for people to"
            " read: who may create ChangeTemplates is up to RBAC."
        ),
    )
    members: list[Member] = Field(
        default_factory=list,
        max_length=64,
        description="Members of the team.",
        json_schema_extra=list_map("user"),
    )


class Environment(ApiModel):
    """One environment of the service: a namespace it runs in."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!(self.production && self.raisesProductionChanges)",
                "a production environment cannot also be the stage that raises production changes",
            )
        )
    )

    name: DNSLabel = Field(
        description="Name of the environment, for example staging or production."
    )
    namespace: DNSLabel = Field(description="Namespace the service runs in for this environment.")
    production: bool = Field(
        default=False,
        description="Whether this is a production environment, whose rollouts need a change.",
    )
    raises_production_changes: bool = Field(
        default=False,
        description=(
            "Whether a finished rollout here raises a ChangeRequest for production with the"
            " same images and source (the pre-production stage)."
        ),
    )


class Approvers(ApiModel):
    """Who may approve a normal change: users or members of groups."""

    users: list[UserName] = Field(
        default_factory=list,
        max_length=32,
        description="User names that may approve.",
        json_schema_extra=LIST_SET,
    )
    groups: list[GroupName] = Field(
        default_factory=list,
        max_length=16,
        description="Groups whose members may approve.",
        json_schema_extra=LIST_SET,
    )


class PassThrough(StrEnum):
    """How a rollout that is not a new change (a rollback, a restart) is treated."""

    ALLOW = "Allow"
    REQUIRE_CHANGE = "RequireChange"


class ExecPolicy(StrEnum):
    """What `kubectl exec` and `kubectl attach` into the service's pods get."""

    RECORD = "Record"
    REFUSE = "Refuse"


class ApprovalPlace(StrEnum):
    """Where the approvers of a service's normal changes decide."""

    KUBERNETES = "Kubernetes"
    SERVICE_NOW = "ServiceNow"


class Enforcement(StrEnum):
    """Whether admission refuses rollouts no approved change covers, or only reports them."""

    ENFORCE = "Enforce"
    AUDIT = "Audit"


class Freeze(ApiModel):
    """A period in which changes are blocked (a blackout window)."""

    model_config = ConfigDict(json_schema_extra=validations(end_after_start()))

    name: DNSLabel = Field(description="Name of the freeze, for example year-end.")
    start_time: datetime = Field(description="When the freeze begins (RFC 3339).")
    end_time: datetime = Field(description="When the freeze ends (RFC 3339).")
    reason: Text = Field(min_length=1, description="Why changes are frozen.")
    change_types: list[ChangeType] = Field(
        default_factory=lambda: [ChangeType.STANDARD, ChangeType.NORMAL],
        min_length=1,
        max_length=3,
        description=(
            "Types of change the freeze blocks; Standard and Normal when not given."
            " Emergency changes pass a freeze unless listed."
        ),
        json_schema_extra=LIST_SET,
    )


class ChangePolicy(ApiModel):
    """How changes to the service are approved and admitted."""

    approvers: Approvers = Field(
        default_factory=Approvers,
        description="Who may approve a normal change. The requester never approves their own.",
    )
    required_approvals: int = Field(
        default=1, ge=1, le=5, description="Approvals a normal change needs, 1 to 5."
    )
    emergency_groups: list[GroupName] = Field(
        default_factory=list,
        max_length=8,
        description="Groups whose members may raise an emergency change or break glass.",
        json_schema_extra=LIST_SET,
    )
    rollback: PassThrough = Field(
        default=PassThrough.ALLOW,
        description=(
            "Allow: a rollback to a revision that was itself deployed under an approved change"
            " passes without a new change (and is recorded). RequireChange: it needs a change."
        ),
    )
    rollback_horizon_seconds: Seconds = Field(
        default=30 * 24 * 3600,
        description=(
            "How long after a change's rollout finished a rollback may return to it: only to"
            " the exact images (digests included where recorded) that rollout ran, and only"
            " within this many seconds of its finishTime. Default 30 days."
        ),
    )
    restart: PassThrough = Field(
        default=PassThrough.ALLOW,
        description=(
            "Allow: `kubectl rollout restart` passes without a change (and is recorded)."
            " RequireChange: it needs a change."
        ),
    )
    approval_validity_seconds: Seconds = Field(
        default=86400,
        description=(
            "How long an approved change without a window stays usable before it expires."
        ),
    )
    freezes: list[Freeze] = Field(
        default_factory=list,
        max_length=32,
        description="Periods in which changes are blocked.",
        json_schema_extra=list_map("name"),
    )
    exec: ExecPolicy = Field(
        default=ExecPolicy.RECORD,
        description=(
            "`kubectl exec` and `kubectl attach` into pods of the production namespaces."
            " Record (the default): allowed, with an Event on the pod and a metric."
            " Refuse: refused for everyone; `kubectl debug` by the emergency groups"
            " remains the recorded way in."
        ),
    )
    approvals_in: ApprovalPlace = Field(
        default=ApprovalPlace.KUBERNETES,
        description=(
            "Kubernetes (the default): approvers append their approvals to the ChangeRequest."
            " ServiceNow: a production change's approvers decide on its change record in"
            " ServiceNow (integrations.serviceNow is required); the controller records each"
            " decision there on the ChangeRequest as an approval via ServiceNow by the"
            " approver, still refused when the approver is the requester, and a rejection"
            " there rejects. Approvals written in Kubernetes are then refused. Only change"
            " managers set or change it."
        ),
    )
    enforcement: Enforcement = Field(
        default=Enforcement.ENFORCE,
        description=(
            "Enforce (the default): a rollout of the production namespaces that no approved"
            " change covers is refused. Audit (for adoption): it is admitted with an admission"
            " warning that says why Enforce would refuse it, a Warning Event on the workload, the"
            " changegate_audit_only_admissions_total metric and a DeploymentRecord with admission"
            " AuditOnly. Audit relaxes only the rollout gate: every other refusal (policy edits,"
            " approvals, debug, exec) stays. Only change managers and platform admins set it."
        ),
    )


class RotationType(StrEnum):
    """How often the on-call shift hands over."""

    HOURLY = "Hourly"
    DAILY = "Daily"
    WEEKLY = "Weekly"
    MONTHLY = "Monthly"


class Coverage(StrEnum):
    """When a rotation is on call."""

    ALWAYS = "Always"
    WORKING_HOURS = "WorkingHours"
    OUT_OF_HOURS = "OutOfHours"


class Rotation(ApiModel):
    """Participants taking turns on call, handing over at a fixed time."""

    name: DNSLabel = Field(description="Name of the rotation, for example primary.")
    type: RotationType = Field(description="Length of a shift: Hourly, Daily, Weekly or Monthly.")
    shift_length: int = Field(
        default=1, ge=1, le=52, description="Number of hours, days, weeks or months per shift."
    )
    participants: list[UserName] = Field(
        min_length=1,
        max_length=64,
        description="User names in the order they take the shift.",
    )
    handoff_at: Clock = Field(
        default="09:00", description="Time of day (HH:MM) at which a shift hands over."
    )
    start_time: datetime = Field(
        description="When the first participant's first shift began; anchors the rotation."
    )
    time_zone: TimeZone | None = Field(
        default=None,
        description="IANA time zone of handoffAt; the on-call time zone when not given.",
    )
    coverage: Coverage = Field(
        default=Coverage.ALWAYS,
        description="When this rotation is on call: Always, WorkingHours or OutOfHours.",
    )


# A date is always ten characters; the bound keeps CEL cost estimates low too.
CalendarDate = Annotated[date, Field(json_schema_extra={"maxLength": 10})]


class WorkingHours(ApiModel):
    """The team's working hours, which split WorkingHours from OutOfHours cover."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel("self.endAt > self.startAt", "endAt must be after startAt")
        )
    )

    days: list[Weekday] = Field(
        default_factory=lambda: [
            Weekday.MONDAY,
            Weekday.TUESDAY,
            Weekday.WEDNESDAY,
            Weekday.THURSDAY,
            Weekday.FRIDAY,
        ],
        max_length=7,
        description="Working days; Monday to Friday when not given.",
        json_schema_extra=LIST_SET,
    )
    start_at: Clock = Field(default="09:00", description="Start of the working day (HH:MM).")
    end_at: Clock = Field(default="17:00", description="End of the working day (HH:MM).")
    holidays: list[CalendarDate] = Field(
        default_factory=list,
        max_length=128,
        description=(
            "Dates (YYYY-MM-DD, in the on-call time zone) that count as out of hours all day,"
            " for example bank holidays: WorkingHours rotations are off and OutOfHours"
            " rotations are on call from midnight to midnight."
        ),
        json_schema_extra=LIST_SET,
    )


class Override(ApiModel):
    """A person on call for a window, in place of the rotation; overrides always win."""

    model_config = ConfigDict(json_schema_extra=validations(end_after_start()))

    user: UserName = Field(description="User name of the person on call during the override.")
    replaces: UserName | None = Field(
        default=None,
        description="User replaced by the override; everyone on call when not given.",
    )
    start_time: datetime = Field(description="When the override begins (RFC 3339).")
    end_time: datetime = Field(description="When the override ends (RFC 3339).")
    reason: ShortText | None = Field(default=None, description="Why, for example a swap.")


class EscalationTargetType(StrEnum):
    """Who an escalation step notifies."""

    ON_CALL = "OnCall"
    ROTATION = "Rotation"
    USER = "User"
    INCIDENT_MANAGER = "IncidentManager"


class EscalationTarget(ApiModel):
    """One recipient of an escalation step."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "(self.type == 'Rotation' || self.type == 'User') == has(self.name)",
                "name is required for Rotation and User targets, and only for them",
            )
        )
    )

    type: EscalationTargetType = Field(
        description=(
            "OnCall: whoever is on call now. Rotation: whoever is on call in the named"
            " rotation. User: the named user. IncidentManager: the incident manager."
        )
    )
    name: UserName | None = Field(
        default=None, description="Rotation name or user name, for Rotation and User."
    )


class EscalationStep(ApiModel):
    """A step of the escalation policy."""

    delay_seconds: Seconds = Field(
        description="Seconds after the previous step (or the trigger) before this step fires."
    )
    targets: list[EscalationTarget] = Field(
        min_length=1, max_length=8, description="Who this step notifies."
    )


class Escalation(ApiModel):
    """The ordered steps that page people until an incident is acknowledged."""

    steps: list[EscalationStep] = Field(
        min_length=1, max_length=8, description="Steps in order; the first fires at once."
    )
    repeat: int = Field(
        default=0, ge=0, le=5, description="Times the whole policy repeats when nobody answers."
    )


class OnCall(ApiModel):
    """The on-call schedule and escalation of the service."""

    time_zone: TimeZone = Field(
        default="UTC", description="IANA time zone of the schedule, for example Europe/Berlin."
    )
    rotations: list[Rotation] = Field(
        default_factory=list,
        max_length=8,
        description="Rotations that make up the schedule.",
        json_schema_extra=list_map("name"),
    )
    working_hours: WorkingHours | None = Field(
        default=None, description="Working hours; required when a rotation covers only part."
    )
    overrides: list[Override] = Field(
        default_factory=list,
        max_length=32,
        description="Temporary replacements that win over the rotations.",
    )
    escalation: Escalation | None = Field(
        default=None,
        description=(
            "Who is paged, and when, until an incident is acknowledged: the controller follows"
            " the steps (and repeats) as they were when the incident triggered, recorded in"
            " the Incident's status.escalation; the first acknowledgement or the resolution"
            " stops them. Without it, the on-call is paged once."
        ),
    )
    incident_manager: Member | None = Field(
        default=None,
        description=(
            "Person paged for a major incident of the service (and for escalation steps that"
            " name the incident manager) when the chart names no incident-management"
            " ServiceOnCall; when it does, that service's incident manager on call is paged."
        ),
    )


class Link(ApiModel):
    """A named link."""

    name: Title = Field(description="Label of the link.")
    url: Url = Field(description="Address of the link (http or https).")


class PagerDutyIntegration(ApiModel):
    """Paging through PagerDuty Events API v2."""

    secret_ref: SecretKeyRef = Field(description="Secret key holding the 32-character routing key.")
    send_change_events: bool = Field(
        default=True,
        description=(
            "Whether every finished production rollout (each DeploymentRecord of a production"
            " environment) is sent to PagerDuty as a change event (/v2/change/enqueue), so"
            " PagerDuty shows recent changes beside its incidents. Delivery is recorded in the"
            " DeploymentRecord's status.sync."
        ),
    )


class ServiceNowAuth(StrEnum):
    """How changegate authenticates to ServiceNow, and so which keys its Secret holds."""

    BASIC = "Basic"
    OAUTH_CLIENT_CREDENTIALS = "OAuthClientCredentials"
    TOKEN = "Token"


class ServiceNowIntegration(ApiModel):
    """Mirroring changes and incidents into ServiceNow."""

    authentication: ServiceNowAuth = Field(
        default=ServiceNowAuth.BASIC,
        description=(
            "Basic: the Secret's username and password. OAuthClientCredentials: its clientId"
            " and clientSecret, exchanged at /oauth_token.do for tokens. Token: its token, an"
            " OAuth bearer token made elsewhere."
        ),
    )

    instance_url: Url = Field(description="Base address of the ServiceNow instance.")
    secret_ref: SecretRef = Field(
        description=(
            "Secret with keys username and password (basic auth), or clientId and clientSecret"
            " (OAuth client credentials, tokens fetched from /oauth_token.do), or token (an"
            " OAuth bearer token made elsewhere). Read when needed, never logged."
        )
    )
    assignment_group: ShortText | None = Field(
        default=None, description="Assignment group of the tickets."
    )
    configuration_item: ShortText | None = Field(
        default=None, description="CMDB configuration item (cmdb_ci) of the service."
    )
    major_incident_fields: dict[str, ShortText] = Field(
        default_factory=dict,
        max_length=16,
        description=(
            "Fields (name: value) set on the incident record when an Incident is declared"
            " major; major_incident_state: accepted (the Major Incident Management plugin)"
            " when empty."
        ),
    )


class SlackIntegration(ApiModel):
    """Notices to a Slack channel through an incoming webhook."""

    secret_ref: SecretKeyRef = Field(description="Secret key holding the incoming webhook URL.")
    channel: ShortText | None = Field(default=None, description="Channel name, for display only.")


class WebhookIntegration(ApiModel):
    """Notices as JSON to a generic HTTP endpoint."""

    secret_ref: SecretKeyRef = Field(
        description="Secret key holding the endpoint URL, which may carry a token."
    )
    signing_secret_ref: SecretKeyRef = Field(
        description=(
            "Secret key holding the signing key: each request carries"
            " X-Changegate-Signature: sha256=<hex HMAC-SHA256 of the raw body with it>."
        )
    )


class Integrations(ApiModel):
    """External systems for this service; credentials only by Secret reference."""

    pager_duty: PagerDutyIntegration | None = Field(
        default=None,
        description=(
            "PagerDuty Events API v2: each Incident of the service is triggered, acknowledged"
            " and resolved there under one dedup_key (the Incident's UID), recorded in the"
            " Incident's status.sync."
        ),
    )
    service_now: ServiceNowIntegration | None = Field(
        default=None,
        description=(
            "ServiceNow: each Incident of the service becomes an incident record (acknowledge,"
            " notes, reassignment, major and resolution follow it; state, assignee and work"
            " notes changed there are read back on a poll) and each production ChangeRequest"
            " a change_request that follows its phases. Delivery is recorded in status.sync."
        ),
    )
    slack: SlackIntegration | None = Field(
        default=None,
        description=(
            "Slack incoming webhook: every page of the service's incidents is posted there"
            " (severity, service, summary, who is on call, dashboards, runbooks and the"
            " acknowledge command), recorded in the Incident's status.pages."
        ),
    )
    webhook: WebhookIntegration | None = Field(
        default=None,
        description=(
            "Generic webhook: every page of the service's incidents is POSTed there as JSON"
            " signed with HMAC-SHA256, recorded in the Incident's status.pages."
        ),
    )


class ServiceOnCallSpec(ApiModel):
    """The desired state of a ServiceOnCall: who runs the service and by which rules."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "self.environments.exists(e, e.production)",
                "at least one environment must be production",
                fieldPath=".environments",
            ),
        )
    )

    service: ServiceInfo = Field(description="The service.")
    team: Team = Field(description="The team that builds and runs the service.")
    environments: list[Environment] = Field(
        min_length=1,
        max_length=16,
        description="Environments of the service, each a namespace.",
        json_schema_extra=list_map("name"),
    )
    change_policy: ChangePolicy = Field(
        default_factory=ChangePolicy, description="How changes are approved and admitted."
    )
    on_call: OnCall = Field(
        default_factory=OnCall,
        description=(
            "On-call schedule and escalation: the controller works out who is on call from it"
            " (status.onCall, refreshed at handoffs; `changegate oncall`) and pages them and"
            " the escalation's targets for the service's incidents."
        ),
    )
    dashboards: list[Link] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Dashboards of the service: they travel with its Incidents (status.dashboards)"
            " and every page, after the alert's own."
        ),
    )
    runbooks: list[Link] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Runbooks of the service: they travel with its Incidents (status.runbooks) and"
            " every page, after the alert's own."
        ),
    )
    integrations: Integrations = Field(
        default_factory=Integrations,
        description=(
            "External systems for this service: the channels its incidents' pages go out on"
            " (always Kubernetes Events too) and the systems its tickets are mirrored in;"
            " without any, ChangeRequests and Incidents are the tickets."
        ),
    )

    def production_namespaces(self) -> list[str]:
        """Namespaces of the production environments."""
        return [e.namespace for e in self.environments if e.production]


class OnCallNow(StatusModel):
    """The person on call at the time of the last reconcile."""

    user: UserName = Field(description="User name of the person on call.")
    rotation: DNSLabel | None = Field(
        default=None, description="Rotation the person is on call from, unless an override."
    )
    override: bool = Field(default=False, description="Whether an override put them on call.")
    until_time: datetime | None = Field(
        default=None, description="When their shift ends (RFC 3339)."
    )


class EnvironmentStatus(StatusModel):
    """What runs in one environment."""

    name: DNSLabel = Field(description="Name of the environment.")
    namespace: DNSLabel = Field(description="Namespace of the environment.")
    images: list[ContainerImage] = Field(
        default_factory=list, max_length=32, description="Images of the last finished rollout."
    )
    change_request: ObjectName | None = Field(
        default=None, description="ChangeRequest behind the last finished rollout, if any."
    )
    deployment_record: ObjectName | None = Field(
        default=None, description="DeploymentRecord of the last finished rollout."
    )
    deployed_time: datetime | None = Field(
        default=None, description="When the last rollout finished (RFC 3339)."
    )


class DeploymentFrequency(StrEnum):
    """DORA's deployment frequency bucket: how often production is deployed, on average."""

    DAILY = "Daily"
    WEEKLY = "Weekly"
    MONTHLY = "Monthly"
    YEARLY = "Yearly"
    NONE = "None"


Rate = Annotated[float, Field(ge=0)]
Percent = Annotated[float, Field(ge=0, le=100)]


class DoraMetrics(StatusModel):
    """DORA's figures for production over a trailing period (the README's Reports section
    defines each), as `changegate report dora --service` computes them."""

    period_seconds: Seconds = Field(description="Length of the period the figures cover.")
    horizon_seconds: Seconds | None = Field(
        default=None,
        description="How long after a deployment a rollback or emergency fix marks it failed.",
    )
    computed_time: datetime = Field(description="When the figures were computed.")
    deployments: Count = Field(
        default=0, description="Production rollouts that finished in the period, succeeded or not."
    )
    successful_deployments: Count = Field(
        default=0, description="Production rollouts in the period that succeeded."
    )
    deployments_per_week: Rate = Field(
        default=0, description="Successful production rollouts per week, on average."
    )
    deployment_frequency: DeploymentFrequency = Field(
        default=DeploymentFrequency.NONE,
        description="DORA's bucket: Daily, Weekly, Monthly, Yearly, or None without deployments.",
    )
    failed_deployments: Count = Field(
        default=0,
        description=(
            "Deployments that needed intervention: a failed rollout, a rollback or emergency fix"
            " within the horizon, or an Incident confirmed as caused by it (causedBy)."
        ),
    )
    change_fail_percent: Percent | None = Field(
        default=None,
        description="failedDeployments as a percentage of deployments; empty without any.",
    )
    median_lead_time_seconds: Seconds | None = Field(
        default=None, description="Median time from commit to the rollout finishing."
    )
    p90_lead_time_seconds: Seconds | None = Field(
        default=None, description="90th percentile of the lead time."
    )
    median_recovery_time_seconds: Seconds | None = Field(
        default=None,
        description=(
            "Median time from a failed deployment to the next successful one, or to the"
            " resolution of the incident it caused."
        ),
    )
    p90_recovery_time_seconds: Seconds | None = Field(
        default=None, description="90th percentile of the recovery time."
    )
    unrecovered_deployments: Count = Field(
        default=0, description="Failed deployments not recovered from yet."
    )
    rework_deployments: Count = Field(
        default=0, description="Unplanned deployments made because of an incident."
    )
    rework_percent: Percent | None = Field(
        default=None,
        description="reworkDeployments as a percentage of deployments; empty without any.",
    )


class ServiceOnCallStatus(StatusModel):
    """The observed state of a ServiceOnCall."""

    observed_generation: Count | None = Field(
        default=None, description="The .metadata.generation this status was computed from."
    )
    conditions: list[Condition] = conditions_field()
    on_call: OnCallNow | None = Field(
        default=None,
        description=(
            "Who is on call now and until when, refreshed at each handoff; the condition"
            " OnCall says when nobody is."
        ),
    )
    environments: list[EnvironmentStatus] = Field(
        default_factory=list,
        max_length=16,
        description="What runs in each environment.",
        json_schema_extra=list_map("name"),
    )
    dora: DoraMetrics | None = Field(
        default=None,
        description=(
            "DORA figures for production over the last 30 days, from the service's"
            " DeploymentRecords and Incidents; recomputed hourly and soon after a new record."
        ),
    )
    last_incident: ObjectRef | None = Field(
        default=None,
        description=(
            "The service's most recent Incident, open or resolved (the latest created, the"
            " name breaking a tie), whichever namespace it is in; empty when it has none."
            " Follows Incidents as they are created (within about 30 s: an alert storm"
            " writes it once) and deleted."
        ),
    )


class ServiceOnCall(CustomResource):
    """ServiceOnCall declares one digital service as its team operates it."""

    plural: ClassVar[str] = "serviceoncalls"
    singular: ClassVar[str] = "serviceoncall"
    short_names: ClassVar[tuple[str, ...]] = ("soc", "svconcall")
    selectable_fields: ClassVar[tuple[str, ...]] = (".spec.service.name",)
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Service", "string", ".spec.service.name", "Name of the service."),
        PrinterColumn("Team", "string", ".spec.team.name", "Team running the service."),
        PrinterColumn("On-Call", "string", ".status.onCall.user", "Who is on call now."),
        PrinterColumn(
            "Until", "string", ".status.onCall.untilTime", "When the current shift ends.", 1
        ),
        PrinterColumn(
            "Production",
            "string",
            ".spec.environments[?(@.production==true)].namespace",
            "Production namespace.",
        ),
        PrinterColumn("Tier", "string", ".spec.service.tier", "Business criticality.", 1),
        PrinterColumn(
            "Last-Incident", "string", ".status.lastIncident.name", "Most recent Incident.", 1
        ),
        AGE_COLUMN,
    )

    kind: Literal["ServiceOnCall"] = Field(default="ServiceOnCall", description="Kind.")
    spec: ServiceOnCallSpec = Field(description="Who runs the service, and by which rules.")
    status: ServiceOnCallStatus = Field(
        default_factory=ServiceOnCallStatus, description="What the operator observed."
    )
