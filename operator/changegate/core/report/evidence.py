"""The evidence as the reports read it: the few fields of each object they use.

DeploymentRecords, ChangeRequests and Incidents are read into these slim,
frozen structs once, at the boundary: `changegate report` decodes each page of
a list straight from the API server's bytes into them (msgspec), so a report
over a year of a large cluster holds about 1.5 KB per object and only what it
prints. They take the API's camelCase JSON and ignore every other field.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Self

import msgspec
from pydantic_core import ValidationError

# The admission bases of a DeploymentRecord (api.v1alpha1.AdmissionBasis), as text so
# that a basis added later still reads.
CHANGE = "Change"
ROLLBACK = "Rollback"
RESTART = "Restart"
BREAK_GLASS = "BreakGlass"
AUDIT_ONLY = "AuditOnly"
EMERGENCY = "Emergency"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
DUPLICATE = "Duplicate"

_SNAKE = re.compile(r"_([a-z0-9])")
_CAMEL = re.compile(r"([A-Z])")


def _renamed(value: Any, pattern: re.Pattern[str], spell: Any) -> Any:
    if isinstance(value, Mapping):
        return {pattern.sub(spell, k): _renamed(v, pattern, spell) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_renamed(v, pattern, spell) for v in value]
    return value


class Seen(msgspec.Struct, frozen=True, kw_only=True, rename="camel", gc=False):
    """Base of the slim structs: camelCase JSON, other fields ignored, immutable, and
    left out of the garbage collector's walks (they hold no cycles).

    `model_validate` and `model_dump` are the pydantic-style entry points the
    controller's indexes (one object at a time, from Kopf's dicts) and their tests
    use; they raise and return as the API models do."""

    @classmethod
    def model_validate(cls, obj: Any) -> Self:
        """From a dict with the API's camelCase keys or the fields' own names."""
        try:
            return msgspec.convert(
                _renamed(obj, _SNAKE, lambda m: m.group(1).upper()), cls, strict=False
            )
        except msgspec.ValidationError as error:
            raise ValidationError.from_exception_data(
                cls.__name__,
                [{"type": "value_error", "loc": (), "input": obj, "ctx": {"error": error}}],
            ) from None

    def model_dump(
        self,
        *,
        mode: Literal["python", "json"] = "python",
        by_alias: bool = False,
        exclude: Iterable[str] = (),
    ) -> dict[str, Any]:
        """As a dict: nested structs as dicts, times as datetimes (strings in json mode),
        camelCase keys when by_alias, the fields named in exclude left out."""
        kept = (datetime,) if mode == "python" else ()
        data: dict[str, Any] = msgspec.to_builtins(self, builtin_types=kept)
        if not by_alias:
            data = _renamed(data, _CAMEL, lambda m: "_" + m.group(1).lower())
        for name in exclude:
            data.pop(_SNAKE.sub(lambda m: m.group(1).upper(), name) if by_alias else name, None)
        return data


class Meta(Seen, frozen=True, kw_only=True):
    name: str
    namespace: str | None = None
    creation_timestamp: datetime | None = None


class Named(Seen, frozen=True, kw_only=True):
    name: str
    namespace: str | None = None


class Image(Seen, frozen=True, kw_only=True):
    container: str
    image: str
    digest: str | None = None

    def text(self) -> str:
        """`container=image@digest`, the digest where known."""
        pinned = f"{self.image}@{self.digest}" if self.digest else self.image
        return f"{self.container}={pinned}"


class Source(Seen, frozen=True, kw_only=True):
    repository: str | None = None
    commit: str | None = None
    commit_time: datetime | None = None
    pull_request: str | None = None
    pipeline_run: str | None = None


class Workload(Seen, frozen=True, kw_only=True):
    kind: str
    name: str


class RecordSpec(Seen, frozen=True, kw_only=True):
    service: str
    environment: str
    namespace: str
    production: bool = False
    workload: Workload
    images: tuple[Image, ...] = ()
    admission: str
    audit_reason: str | None = None
    change_request: Named | None = None
    change_type: str | None = None
    requester: str | None = None
    approvers: tuple[str, ...] = ()
    deployer: str | None = None
    source: Source | None = None
    start_time: datetime
    finish_time: datetime
    result: str
    lead_time_seconds: int | None = None


class Record(Seen, frozen=True, kw_only=True):
    """A DeploymentRecord: one finished rollout."""

    metadata: Meta
    spec: RecordSpec

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def succeeded(self) -> bool:
        return self.spec.result == SUCCEEDED


class Approval(Seen, frozen=True, kw_only=True):
    approver: str | None = None
    decision: str
    time: datetime | None = None


class Review(Seen, frozen=True, kw_only=True):
    reviewer: str | None = None
    time: datetime | None = None


class ChangeSpec(Seen, frozen=True, kw_only=True):
    service: str
    type: str
    template_ref: Named | None = None
    summary: str = ""
    requester: str | None = None
    approvals: tuple[Approval, ...] = ()
    incident_ref: Named | None = None
    source: Source | None = None
    reviews: tuple[Review, ...] = ()


class RolloutSeen(Seen, frozen=True, kw_only=True):
    kind: str
    name: str
    images: tuple[Image, ...] = ()
    deployer: str | None = None
    start_time: datetime
    finish_time: datetime | None = None
    result: str
    deployment_record: str | None = None


class ChangeStatus(Seen, frozen=True, kw_only=True):
    phase: str | None = None
    approved_by: tuple[str, ...] = ()
    rollouts: tuple[RolloutSeen, ...] = ()


class Change(Seen, frozen=True, kw_only=True):
    """A ChangeRequest: the change behind a rollout."""

    metadata: Meta
    spec: ChangeSpec
    status: ChangeStatus = ChangeStatus()

    @property
    def key(self) -> tuple[str, str]:
        return (self.metadata.namespace or "", self.metadata.name)

    @property
    def reviewed(self) -> bool:
        """Reviewed after the fact by a change manager (an emergency change's review)."""
        return bool(self.spec.reviews)


class Resolution(Seen, frozen=True, kw_only=True):
    code: str
    time: datetime | None = None


class IncidentSpec(Seen, frozen=True, kw_only=True):
    service: str
    resolution: Resolution | None = None
    caused_by: str | None = None


class IncidentStatus(Seen, frozen=True, kw_only=True):
    triggered_time: datetime | None = None
    resolved_time: datetime | None = None


class Incident(Seen, frozen=True, kw_only=True):
    """An Incident: what may mark a rollout failed (causedBy) and what recovery ends."""

    metadata: Meta
    spec: IncidentSpec
    status: IncidentStatus = IncidentStatus()

    @property
    def duplicate(self) -> bool:
        """A duplicate of another incident, which never counts a second time."""
        return self.spec.resolution is not None and self.spec.resolution.code == DUPLICATE

    @property
    def started(self) -> datetime | None:
        return self.status.triggered_time or self.metadata.creation_timestamp

    @property
    def resolved(self) -> datetime | None:
        if self.status.resolved_time is not None:
            return self.status.resolved_time
        return self.spec.resolution.time if self.spec.resolution else None


class EnvironmentSeen(Seen, frozen=True, kw_only=True):
    name: str
    namespace: str
    production: bool = False


class ServiceSpec(Seen, frozen=True, kw_only=True):
    environments: tuple[EnvironmentSeen, ...] = ()


class ServiceEnvironments(Seen, frozen=True, kw_only=True):
    """A ServiceOnCall, for which environment each namespace is."""

    spec: ServiceSpec


def share_strings(item: Seen) -> None:
    """Intern, in place, the strings that repeat across objects (services, namespaces,
    environments, people, kinds, results), so that 100,000 records hold one copy of each
    rather than 100,000: a third of their memory, for about 3 µs a record. For structs
    just decoded, which nothing else holds yet (a frozen struct changed in place would be
    a surprise anywhere else)."""
    if isinstance(item, Record):
        _share(item.spec, _RECORD_FIELDS)
        _share(item.spec.workload, ("kind", "name"))
        for image in item.spec.images:
            _share(image, ("container",))
        if item.spec.change_request is not None:
            _share(item.spec.change_request, ("namespace",))
        if item.spec.approvers:
            _set(item.spec, "approvers", tuple(map(sys.intern, item.spec.approvers)))
    elif isinstance(item, Change):
        _share(item.metadata, ("namespace",))
        _share(item.spec, ("service", "type", "requester"))
        for approval in item.spec.approvals:
            _share(approval, ("approver", "decision"))
    elif isinstance(item, Incident):
        _share(item.metadata, ("namespace",))
        _share(item.spec, ("service",))
    source = getattr(item.spec, "source", None) if isinstance(item, Record | Change) else None
    if source is not None:
        _share(source, ("repository",))


_RECORD_FIELDS = (
    "service", "environment", "namespace", "admission", "change_type", "requester",
    "deployer", "result",
)  # fmt: skip
_set = msgspec.structs.force_setattr


def _share(item: Seen, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(item, name)
        if value is not None:
            _set(item, name, sys.intern(value))


@dataclass(frozen=True)
class Environments:
    """Namespace -> its environment, from the ServiceOnCalls."""

    by_namespace: dict[str, EnvironmentSeen]

    @classmethod
    def of(cls, services: Iterable[ServiceEnvironments]) -> Environments:
        return cls({e.namespace: e for s in services for e in s.spec.environments})


def records_from_changes(changes: Iterable[Change], environments: Environments) -> list[Record]:
    """The finished rollouts the ChangeRequests recorded, as records: what a product team,
    which cannot list the cluster-scoped DeploymentRecords, reads of its own namespaces.
    Rollbacks and restarts, which no change covers, are not among them."""
    found = []
    for change in changes:
        namespace = change.metadata.namespace or ""
        environment = environments.by_namespace.get(namespace)
        for rollout in change.status.rollouts:
            if rollout.finish_time is None or environment is None:
                continue
            found.append(record_of(change, rollout, environment))
    return found


def record_of(change: Change, rollout: RolloutSeen, environment: EnvironmentSeen) -> Record:
    spec = change.spec
    return Record(
        metadata=Meta(name=rollout.deployment_record or f"{change.metadata.name}-{rollout.name}"),
        spec=RecordSpec(
            service=spec.service,
            environment=environment.name,
            namespace=environment.namespace,
            production=environment.production,
            workload=Workload(kind=rollout.kind, name=rollout.name),
            images=rollout.images,
            admission=CHANGE,
            change_request=Named(name=change.metadata.name, namespace=environment.namespace),
            change_type=spec.type,
            requester=spec.requester,
            approvers=change.status.approved_by,
            deployer=rollout.deployer,
            source=spec.source,
            start_time=rollout.start_time,
            finish_time=rollout.finish_time or rollout.start_time,
            result=rollout.result,
        ),
    )


@dataclass(frozen=True)
class Period:
    """[since, until): what a report covers."""

    since: datetime
    until: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.since <= moment < self.until

    @property
    def days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400


@dataclass(frozen=True)
class Scope:
    """Which services, namespaces and environments a report covers (None: all)."""

    services: frozenset[str] | None = None
    namespaces: frozenset[str] | None = None
    environment: str | None = None

    def matches(self, spec: RecordSpec) -> bool:
        """Whether a record is in scope, in any environment when none is named."""
        if self.services is not None and spec.service not in self.services:
            return False
        if self.namespaces is not None and spec.namespace not in self.namespaces:
            return False
        return self.environment is None or spec.environment == self.environment

    def covers(self, spec: RecordSpec) -> bool:
        """Whether a record counts in a report: in scope, and production when no
        environment is named."""
        return self.matches(spec) and (self.environment is not None or spec.production)


EVERYTHING = Scope()
"""Every service, namespace and (for counts) production."""


@dataclass(frozen=True)
class Evidence:
    """Everything a report reads, already in the slim models."""

    records: tuple[Record, ...] = ()
    changes: tuple[Change, ...] = ()
    incidents: tuple[Incident, ...] = ()
