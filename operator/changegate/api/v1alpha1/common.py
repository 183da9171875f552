"""Types shared by every changegate.io/v1alpha1 kind.

The base models (camelCase JSON, strict specs), the bounded string types, the
metav1.Condition shape, references and time windows live here, next to the
class-level CRD metadata that `changegate.api.crdgen` turns into YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "changegate.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "changegate"

# Patterns follow Kubernetes' own validation (RE2 syntax, no look-around).
DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
URL_PATTERN = r"^https?://[^\s]+$"
COMMIT_PATTERN = r"^[0-9a-f]{7,64}$"
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
_IMAGE_COMPONENT = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*"
IMAGE_PATTERN = (
    rf"^{_IMAGE_COMPONENT}(:[0-9]+)?(/{_IMAGE_COMPONENT})*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"

DNSLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL_PATTERN)]
ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN_PATTERN)]
UserName = Annotated[str, Field(min_length=1, max_length=256)]
GroupName = Annotated[str, Field(min_length=1, max_length=256)]
ShortText = Annotated[str, Field(max_length=256)]
Title = Annotated[str, Field(min_length=1, max_length=256)]
Text = Annotated[str, Field(max_length=4096)]
Url = Annotated[str, Field(max_length=2048, pattern=URL_PATTERN)]
ImageRef = Annotated[str, Field(min_length=1, max_length=512, pattern=IMAGE_PATTERN)]
Digest = Annotated[str, Field(max_length=71, pattern=DIGEST_PATTERN)]
CommitSha = Annotated[str, Field(min_length=7, max_length=64, pattern=COMMIT_PATTERN)]
Clock = Annotated[str, Field(min_length=5, max_length=5, pattern=CLOCK_PATTERN)]
TimeZone = Annotated[str, Field(min_length=1, max_length=64, pattern=TIME_ZONE_PATTERN)]
Reason = Annotated[str, Field(min_length=1, max_length=1024, pattern=REASON_PATTERN)]
Seconds = Annotated[int, Field(ge=0, le=10 * 365 * 24 * 3600)]
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]


def cel(rule: str, message: str, **extra: str) -> dict[str, str]:
    """One `x-kubernetes-validations` entry; `extra` may set `reason` or `fieldPath`."""
    return {"rule": rule, "message": message, **extra}


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """`json_schema_extra` that attaches CEL rules to a model or a field."""
    return {"x-kubernetes-validations": list(rules)}


def list_map(*keys: str) -> dict[str, Any]:
    """`json_schema_extra` for a list that merges by key (server-side apply, CEL)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


LIST_SET: dict[str, Any] = {"x-kubernetes-list-type": "set"}


def end_after_start(start: str = "startTime", end: str = "endTime") -> dict[str, str]:
    """CEL rule: when both ends are given, the end comes after the start."""
    return cel(
        f"!has(self.{start}) || !has(self.{end}) || self.{end} > self.{start}",
        f"{end} must be after {start}",
    )


def append_only(field: str, what: str) -> dict[str, str]:
    """Transition rule on the parent object: entries of `field` may only be appended.

    Placed on the parent, not on the list, so that dropping the whole list is
    refused too. Two-variable comprehensions keep the cost linear.
    """
    return cel(
        f"!has(oldSelf.{field}) || (has(self.{field})"
        f" && size(self.{field}) >= size(oldSelf.{field})"
        f" && oldSelf.{field}.all(i, old, self.{field}[i] == old))",
        f"{what} can only be appended: existing entries cannot be changed or removed",
        fieldPath=f".{field}",
    )


class ApiModel(BaseModel):
    """Base of every spec type: camelCase JSON, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
    )

    def to_json(self) -> dict[str, Any]:
        """The object as the Kubernetes API expects it: camelCase, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(ApiModel):
    """Base of every status type: written by the operator, tolerant of newer fields."""

    model_config = ConfigDict(extra="ignore")


class ConditionStatus(StrEnum):
    """The status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """One aspect of the object's current state, in the shape of metav1.Condition."""

    type: str = Field(
        min_length=1,
        max_length=316,
        pattern=CONDITION_TYPE_PATTERN,
        description="Type of condition in CamelCase, for example Ready or Approved.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    observed_generation: Count | None = Field(
        default=None,
        description=(
            "The .metadata.generation the condition was set from. If it is older than"
            " .metadata.generation, the condition is out of date."
        ),
    )
    last_transition_time: datetime = Field(
        description="Last time the condition changed from one status to another."
    )
    reason: Reason = Field(
        description="Programmatic identifier in CamelCase for the last transition of the condition."
    )
    message: str = Field(
        max_length=32768,
        description="Human-readable message with details about the last transition.",
    )


def conditions_field() -> Any:
    """The `status.conditions` field, a list keyed by `type`, as every kind has it."""
    return Field(
        default_factory=list,
        max_length=16,
        description="The latest observations of the object's state, keyed by type.",
        json_schema_extra=list_map("type"),
    )


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of the given type, if any."""
    return next((c for c in conditions if c.type == type_), None)


class LocalObjectRef(ApiModel):
    """A reference to an object in the same namespace."""

    name: ObjectName = Field(description="Name of the referenced object.")


class ObjectRef(ApiModel):
    """A reference to a namespaced object, possibly in another namespace."""

    name: ObjectName = Field(description="Name of the referenced object.")
    namespace: DNSLabel | None = Field(
        default=None,
        description="Namespace of the referenced object; defaults to the referrer's namespace.",
    )
    uid: str | None = Field(
        default=None, max_length=36, description="UID of the referenced object, when known."
    )


class SecretKeyRef(ApiModel):
    """A key of a Secret in the same namespace. Secret values never appear in a resource."""

    name: ObjectName = Field(description="Name of the Secret.")
    key: str = Field(
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY_PATTERN,
        description="Key within the Secret whose value is used.",
    )


class SecretRef(ApiModel):
    """A Secret in the same namespace whose documented keys are used."""

    name: ObjectName = Field(description="Name of the Secret.")


class TimeWindow(ApiModel):
    """A window in time, from startTime to endTime (RFC 3339)."""

    model_config = ConfigDict(json_schema_extra=validations(end_after_start()))

    start_time: datetime = Field(description="When the window opens (RFC 3339).")
    end_time: datetime = Field(description="When the window closes (RFC 3339).")

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` lies inside the window (start inclusive, end exclusive)."""
        return self.start_time <= moment < self.end_time


class Weekday(StrEnum):
    """A day of the week."""

    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    SUNDAY = "Sunday"


class WorkloadKind(StrEnum):
    """A kind of workload whose rollouts changegate governs."""

    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"
    # Kinds that run code outside the three above; a change may declare them too.
    POD = "Pod"
    REPLICA_SET = "ReplicaSet"
    JOB = "Job"
    CRON_JOB = "CronJob"


class ContainerImage(ApiModel):
    """The image of one container of a workload."""

    container: DNSLabel = Field(description="Name of the container in the pod template.")
    image: ImageRef = Field(
        description="Image reference, for example registry.example.com/team/app:1.4.2."
    )
    digest: Digest | None = Field(
        default=None,
        description="Content digest (sha256:...) of the image, where known.",
    )


class ChangeType(StrEnum):
    """The ITIL change type."""

    STANDARD = "Standard"
    NORMAL = "Normal"
    EMERGENCY = "Emergency"


class Level(StrEnum):
    """A three-step scale, as ITIL uses for risk and impact."""

    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"


class TicketSystem(StrEnum):
    """An external system that holds a ticket mirroring a changegate object."""

    SERVICE_NOW = "ServiceNow"
    PAGER_DUTY = "PagerDuty"
    WEBHOOK = "Webhook"


class ActSource(StrEnum):
    """The external system a person acted in, when an act reached changegate from there."""

    PAGER_DUTY = "PagerDuty"
    SERVICE_NOW = "ServiceNow"


# Who acted in an external system, as that system names them (display only).
ExternalUser = Annotated[str, Field(min_length=1, max_length=256)]


class ExternalTicket(StatusModel):
    """The ticket that mirrors this object in an external system."""

    system: TicketSystem = Field(description="System that holds the ticket.")
    id: str = Field(
        min_length=1,
        max_length=128,
        description="Ticket number or identifier in that system, for example CHG0030001.",
    )
    url: Url | None = Field(default=None, description="Link to the ticket.")
    state: ShortText | None = Field(
        default=None, description="Last state of the ticket seen in that system."
    )
    synced_time: datetime | None = Field(
        default=None, description="When the ticket was last brought up to date."
    )


# A step of an outbox: what one external system still owes, e.g. trigger, note/3, review/close.
STEP_PATTERN = r"^[a-z][-a-z0-9]*(/[^/\s]+)*$"
StepId = Annotated[str, Field(min_length=1, max_length=128, pattern=STEP_PATTERN)]


class SyncState(StatusModel):
    """The outbox of one external system for this object: which steps reached it, what failed."""

    system: TicketSystem = Field(description="System the steps go to: PagerDuty or ServiceNow.")
    key: Annotated[str, Field(min_length=1, max_length=255)] = Field(
        description=(
            "Idempotency key the system knows the object by (PagerDuty dedup_key, ServiceNow"
            " correlation_id): the object's UID, so a repeated call finds what the first made."
        )
    )
    delivered: list[StepId] = Field(
        default_factory=list,
        max_length=160,
        description="Steps the system accepted, in order (for example trigger, acknowledge).",
    )
    failed: list[StepId] = Field(
        default_factory=list,
        max_length=160,
        description="Steps the system refused for good (a 4xx other than 408 and 429); not retried.",
    )
    attempts: Count = Field(
        default=0, description="Failed attempts at the next step since the last success."
    )
    next_attempt_time: datetime | None = Field(
        default=None, description="Not before this time is the next step tried again (RFC 3339)."
    )
    last_attempt_time: datetime | None = Field(
        default=None, description="When a step was last tried (RFC 3339)."
    )
    synced_time: datetime | None = Field(
        default=None, description="When a step was last accepted (RFC 3339)."
    )
    last_error: ShortText | None = Field(
        default=None,
        description="Why the last attempt failed, in words that never carry a credential.",
    )
    ticket_id: Annotated[str, Field(max_length=128)] | None = Field(
        default=None, description="The system's own number for the ticket, where it gives one."
    )
    ticket_url: Url | None = Field(default=None, description="Link to the ticket, where known.")


def sync_field() -> Any:
    """The `status.sync` field: one outbox per external system, a list keyed by `system`."""
    return Field(
        default_factory=list,
        max_length=4,
        description=(
            "Delivery to each external system the service's ServiceOnCall configures: steps"
            " accepted and refused, attempts, the next try and the last error."
        ),
        json_schema_extra=list_map("system"),
    )


class AuditEntry(StatusModel):
    """One entry of a bounded, oldest-first history kept in status."""

    time: datetime = Field(description="When it happened (RFC 3339).")
    actor: UserName = Field(
        description="Who did it: an authenticated user name, or changegate for the operator."
    )
    action: str = Field(
        min_length=1,
        max_length=64,
        pattern=REASON_PATTERN,
        description="What happened, in CamelCase, for example Approved or RolloutFinished.",
    )
    message: str = Field(default="", max_length=1024, description="Details for people.")


class LabelSelectorRequirement(ApiModel):
    """A label key, an operator and values, as in metav1.LabelSelectorRequirement."""

    key: str = Field(min_length=1, max_length=317, description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn, Exists or DoesNotExist."
    )
    values: list[Annotated[str, Field(max_length=63)]] = Field(
        default_factory=list,
        max_length=32,
        description="Values for In and NotIn; empty for Exists and DoesNotExist.",
    )


class LabelSelector(ApiModel):
    """A label query over workloads, as in metav1.LabelSelector."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict,
        max_length=16,
        description="Labels a workload must carry, all of them.",
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list,
        max_length=8,
        description="Requirements a workload's labels must meet, all of them.",
    )

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether a set of labels satisfies the selector."""
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
            if req.operator == "In" and labels.get(req.key) not in req.values:
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
        return True


class ObjectMeta(BaseModel):
    """The parts of Kubernetes' ObjectMeta that changegate reads; other keys are kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class PrinterColumn:
    """One column of `kubectl get`, declared on the kind's class."""

    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str
    priority: int = 0

    def to_crd(self) -> dict[str, Any]:
        """The column as an `additionalPrinterColumns` entry."""
        column: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "jsonPath": self.json_path,
            "description": self.description,
        }
        if self.priority:
            column["priority"] = self.priority
        return column


AGE_COLUMN = PrinterColumn(
    "Age", "date", ".metadata.creationTimestamp", "Time since the object was created."
)


class CustomResource(ApiModel):
    """Base of the five top-level kinds; subclasses declare their CRD names and columns."""

    plural: ClassVar[str]
    singular: ClassVar[str]
    scope: ClassVar[Literal["Namespaced", "Cluster"]] = "Namespaced"
    short_names: ClassVar[tuple[str, ...]] = ()
    categories: ClassVar[tuple[str, ...]] = (CATEGORY,)
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = ()
    selectable_fields: ClassVar[tuple[str, ...]] = ()

    api_version: Literal["changegate.io/v1alpha1"] = Field(
        default="changegate.io/v1alpha1", description="API version of the object."
    )
    kind: str = Field(description="Kind of the object; each subclass fixes it.")
    metadata: ObjectMeta = Field(
        default_factory=ObjectMeta, description="Standard object metadata."
    )
    spec: ApiModel = Field(description="What people declare; each subclass narrows it.")
    status: StatusModel = Field(description="What the operator observed; narrowed likewise.")

    @classmethod
    def crd_name(cls) -> str:
        """The CustomResourceDefinition's name, `<plural>.<group>`."""
        return f"{cls.plural}.{GROUP}"
