"""The controller's in-memory views of the cluster (Kopf indexes) and typed reads of them.

Kopf keeps each index current from its watch, before any handler of the same
event runs. `Indexes.of(kwargs)` wraps the ones a handler received, so the
rest of the controller asks questions ("the change named X", "the records
that exist") instead of walking Kopf's stores.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from changegate.api.v1alpha1 import (
    GROUP,
    VERSION,
    ChangePhase,
    ChangeRequest,
    ChangeTemplate,
    ChangeType,
    ServiceOnCall,
)
from changegate.api.v1alpha1.deploymentrecord import DeploymentRecord
from changegate.api.v1alpha1.incident import Incident
from changegate.core.change.facts import ServicePolicy
from changegate.core.change.raised import RAISED_FOR
from changegate.core.change.retention import finish_time
from changegate.core.change.revisions import ControllerRevisionFact, controller_revision_of
from changegate.core.change.workloads import workload_images
from changegate.core.common import parse_time
from changegate.core.incident.latest import Opening
from changegate.core.incident.suspects import DeploymentFact, fact_of
from changegate.core.report.evidence import Record as ReportRecord
from changegate.handlers.controller.registry import registry
from changegate.handlers.controller.state import parse

WORKLOAD_PLURALS = ("deployments", "statefulsets", "daemonsets")
DEFAULT_VALIDITY_SECONDS = 86400

Store = Mapping[Any, Iterable[Any]]  # what Kopf hands a handler: key -> the values of each object


@dataclass(frozen=True, slots=True)
class Environment:
    """One environment of a service, as the namespace it runs in sees it."""

    soc_namespace: str
    soc_name: str
    service: str
    environment: str
    production: bool
    raises_production: bool
    production_namespace: str | None


@kopf.index(GROUP, VERSION, "serviceoncalls", registry=registry)
def environments_by_namespace(body: kopf.Body, **_: Any) -> dict[str, Environment]:
    soc = parse(ServiceOnCall, body)
    if soc is None:
        return {}
    production = next((e.namespace for e in soc.spec.environments if e.production), None)
    return {
        e.namespace: Environment(
            soc.metadata.namespace or "",
            soc.metadata.name or "",
            soc.spec.service.name,
            e.name,
            e.production,
            e.raises_production_changes,
            production,
        )
        for e in soc.spec.environments
    }


@kopf.index(GROUP, VERSION, "serviceoncalls", registry=registry)
def service_on_calls(
    body: kopf.Body, namespace: str, name: str, **_: Any
) -> dict[Any, ServiceOnCall]:
    soc = parse(ServiceOnCall, body)
    return {(namespace, name): soc} if soc else {}


@kopf.index(GROUP, VERSION, "serviceoncalls", registry=registry)
def policies_by_service(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[str, ServicePolicy]:
    soc = parse(ServiceOnCall, body)
    if soc is None:
        return {}
    return {
        soc.spec.service.name: ServicePolicy.from_model(soc, memo.settings.change_manager_groups)
    }


@kopf.index(GROUP, VERSION, "serviceoncalls", registry=registry)
def validity_by_service(body: kopf.Body, **_: Any) -> dict[str, int]:
    soc = parse(ServiceOnCall, body)
    if soc is None:
        return {}
    return {soc.spec.service.name: soc.spec.change_policy.approval_validity_seconds}


@kopf.index(GROUP, VERSION, "serviceoncalls", registry=registry)
def service_on_calls_by_service(body: kopf.Body, **_: Any) -> dict[str, ServiceOnCall]:
    """Each ServiceOnCall under its service's name: whom a page of that service goes to."""
    soc = parse(ServiceOnCall, body)
    return {soc.spec.service.name: soc} if soc else {}


@kopf.index(GROUP, VERSION, "incidents", registry=registry)
def incidents_by_name(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[Any, Incident]:
    """Every Incident: what escalation timers and open-incident counts derive from."""
    incident = parse(Incident, body)
    return {(namespace, name): incident} if incident else {}


@kopf.index(GROUP, VERSION, "incidents", registry=registry)
def incident_openings(body: kopf.Body, **_: Any) -> dict[str, Opening]:
    """When each Incident opened, under its service: what lastIncident is chosen from,
    without going over every Incident of the cluster on each event. Read from the body
    as stored (always with its creationTimestamp), without parsing it once more."""
    service = (body.get("spec") or {}).get("service")
    opened = parse_time(body.metadata.get("creationTimestamp"))
    if not isinstance(service, str) or opened is None:
        return {}
    return {
        service: Opening(
            opened, body.metadata.name or "", body.metadata.namespace or "", body.metadata.uid
        )
    }


@kopf.index(GROUP, VERSION, "deploymentrecords", registry=registry)
def deployments_by_service(body: kopf.Body, **_: Any) -> dict[str, DeploymentFact]:
    """Each DeploymentRecord's service and finish time: an incident's suspect changes."""
    record = parse(DeploymentRecord, body)
    return {record.spec.service: fact_of(record)} if record else {}


@dataclass(frozen=True, slots=True)
class RecordFact:
    """A production DeploymentRecord reduced to what the DORA figures read.

    The controller holds one for every record: a few hundred bytes each (repeated
    strings interned), where even the reports' slim model takes about 5 KB.
    """

    name: str
    created: dt.datetime | None
    service: str
    environment: str
    namespace: str
    workload: tuple[str, str]
    admission: str
    change_type: str | None
    change: tuple[str, str] | None
    start: dt.datetime
    finish: dt.datetime
    result: str
    lead_time_seconds: int | None
    commit_time: dt.datetime | None

    @classmethod
    def of(cls, record: ReportRecord) -> RecordFact:
        spec, ref = record.spec, record.spec.change_request
        return cls(
            record.name,
            record.metadata.creation_timestamp,
            sys.intern(spec.service),
            sys.intern(spec.environment),
            sys.intern(spec.namespace),
            (sys.intern(spec.workload.kind), sys.intern(spec.workload.name)),
            sys.intern(spec.admission),
            sys.intern(spec.change_type) if spec.change_type else None,
            (sys.intern(ref.namespace or ""), ref.name) if ref else None,
            spec.start_time,
            spec.finish_time,
            sys.intern(spec.result),
            spec.lead_time_seconds,
            spec.source.commit_time if spec.source else None,
        )

    def record(self) -> ReportRecord:
        """The record as core.report reads it (images and people left out: DORA needs none)."""
        change = {"name": self.change[1], "namespace": self.change[0]} if self.change else None
        spec = {
            "service": self.service, "environment": self.environment,
            "namespace": self.namespace, "production": True,
            "workload": {"kind": self.workload[0], "name": self.workload[1]},
            "admission": self.admission, "change_type": self.change_type,
            "change_request": change, "start_time": self.start, "finish_time": self.finish,
            "result": self.result, "lead_time_seconds": self.lead_time_seconds,
            "source": {"commit_time": self.commit_time} if self.commit_time else None,
        }  # fmt: skip
        metadata = {"name": self.name, "creation_timestamp": self.created}
        return ReportRecord.model_validate({"metadata": metadata, "spec": spec})


@kopf.index(GROUP, VERSION, "deploymentrecords", registry=registry)
def production_records_by_service(body: kopf.Body, **_: Any) -> dict[str, RecordFact]:
    """Each production DeploymentRecord, as a fact, under its service: what DORA reads."""
    record = parse(ReportRecord, body)
    if record is None or not record.spec.production:
        return {}
    return {record.spec.service: RecordFact.of(record)}


@kopf.index(GROUP, VERSION, "changerequests", registry=registry)
def changes_by_name(
    body: kopf.Body, namespace: str, name: str, **_: Any
) -> dict[Any, ChangeRequest]:
    change = parse(ChangeRequest, body)
    return {(namespace, name): change} if change else {}


@kopf.index(GROUP, VERSION, "changerequests", registry=registry)
def standard_changes_by_template(
    body: kopf.Body, namespace: str, **_: Any
) -> dict[Any, ChangeRequest]:
    """Standard changes under the template they name: what the template's usage counts."""
    change = parse(ChangeRequest, body)
    if (
        change is None
        or change.spec.type is not ChangeType.STANDARD
        or not change.spec.template_ref
    ):
        return {}
    return {(namespace, change.spec.template_ref.name): change}


@kopf.index(GROUP, VERSION, "changerequests", registry=registry)
def expiry_by_change(
    body: kopf.Body, namespace: str, name: str, **_: Any
) -> dict[Any, dt.datetime]:
    """Approved changes and when they expire: what the scheduler wakes up for."""
    change = parse(ChangeRequest, body)
    if change is None or change.status.phase is not ChangePhase.APPROVED:
        return {}
    expires = change.status.expiration_time
    return {(namespace, name): expires} if expires else {}


@kopf.index(GROUP, VERSION, "changerequests", registry=registry)
def raised_changes(body: kopf.Body, namespace: str, **_: Any) -> dict[Any, ChangeRequest]:
    """Changes the operator raised, by the hash of what raised them (their raised-for label).

    Only the operator may write that label (the changerequests review refuses anyone else).
    """
    change = parse(ChangeRequest, body)
    mark = change.metadata.labels.get(RAISED_FOR) if change else None
    return {(namespace, mark): change} if change and mark else {}


@kopf.index("apps", "v1", "controllerrevisions", registry=registry)
def controller_revisions(body: kopf.Body, namespace: str, **_: Any) -> dict[Any, Any]:
    """StatefulSets' and DaemonSets' ControllerRevisions, by (namespace, owner uid)."""
    found = controller_revision_of(body)
    return {(namespace, found[0]): found[1]} if found else {}


@kopf.index(GROUP, VERSION, "changetemplates", registry=registry)
def templates_by_name(
    body: kopf.Body, namespace: str, name: str, **_: Any
) -> dict[Any, ChangeTemplate]:
    template = parse(ChangeTemplate, body)
    return {(namespace, name): template} if template else {}


@kopf.index(GROUP, VERSION, "deploymentrecords", registry=registry)
def records_by_name(body: kopf.Body, name: str, **_: Any) -> dict[str, dt.datetime | None]:
    """Every DeploymentRecord and when its rollout finished: evidence that exists, and its age."""
    return {name: finish_time(body)}


def running_workload(
    body: kopf.Body, namespace: str, name: str, **_: Any
) -> dict[Any, tuple[dict[str, str], dict[str, str]]]:
    """A workload's images (init containers too) and labels, for template fits."""
    labels = dict(body.get("metadata", {}).get("labels") or {})
    return {(namespace, body.get("kind"), name): (workload_images(body), labels)}


for _plural in WORKLOAD_PLURALS:
    kopf.index("apps", "v1", _plural, id=f"running_{_plural}", registry=registry)(running_workload)


def _first(store: Store, key: Any) -> Any:
    return next(iter(store.get(key) or ()), None)


def snapshot(index: Store) -> list[tuple[Any, list[Any]]]:
    """Each key of an index with its values, copied at once.

    Handlers in threads (Kopf's sync handlers, the scheduler) read indexes that Kopf
    changes meanwhile on its event loop: iterating one through Python code (`.values()`,
    `.items()`) may fail with "dictionary changed size during iteration". `list()` over
    the keys and over each key's values runs in C without letting another thread in;
    a key gone in between is skipped.
    """
    keys = list(index)
    return [(key, values) for key in keys if (values := list(index.get(key) or ()))]


@dataclass(frozen=True, slots=True)
class Indexes:
    """The controller's indexes as a handler received them, with the questions it asks."""

    environments: Store
    service_on_calls: Store
    policies: Store
    validity: Store
    changes: Store
    standard_changes: Store
    expiries: Store
    templates: Store
    records: Store
    running: Mapping[str, Store]
    socs_by_service: Store
    incidents: Store
    deployments: Store
    raised: Store = field(default_factory=dict)
    openings: Store = field(default_factory=dict)
    revisions: Store = field(default_factory=dict)
    production_records_by_service: Store = field(default_factory=dict)

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> Indexes:
        return cls(
            environments=kwargs["environments_by_namespace"],
            service_on_calls=kwargs["service_on_calls"],
            policies=kwargs["policies_by_service"],
            validity=kwargs["validity_by_service"],
            changes=kwargs["changes_by_name"],
            standard_changes=kwargs["standard_changes_by_template"],
            expiries=kwargs["expiry_by_change"],
            templates=kwargs["templates_by_name"],
            records=kwargs["records_by_name"],
            running={p: kwargs[f"running_{p}"] for p in WORKLOAD_PLURALS},
            socs_by_service=kwargs.get("service_on_calls_by_service", {}),
            incidents=kwargs.get("incidents_by_name", {}),
            openings=kwargs.get("incident_openings", {}),
            deployments=kwargs.get("deployments_by_service", {}),
            raised=kwargs.get("raised_changes", {}),
            revisions=kwargs.get("controller_revisions", {}),
            production_records_by_service=kwargs.get("production_records_by_service", {}),
        )

    def environment(self, namespace: str) -> Environment | None:
        found: Environment | None = _first(self.environments, namespace)
        return found

    def service_on_call(self, namespace: str, name: str) -> ServiceOnCall | None:
        found: ServiceOnCall | None = _first(self.service_on_calls, (namespace, name))
        return found

    def policy(self, service: str) -> ServicePolicy | None:
        found: ServicePolicy | None = _first(self.policies, service)
        return found

    def validity_seconds(self, service: str) -> int:
        found: int | None = _first(self.validity, service)
        return DEFAULT_VALIDITY_SECONDS if found is None else found

    def change(self, namespace: str, name: str) -> ChangeRequest | None:
        found: ChangeRequest | None = _first(self.changes, (namespace, name))
        return found

    def incident(self, namespace: str, name: str) -> Incident | None:
        found: Incident | None = _first(self.incidents, (namespace, name))
        return found

    def template(self, namespace: str, name: str) -> ChangeTemplate | None:
        found: ChangeTemplate | None = _first(self.templates, (namespace, name))
        return found

    def all_templates(self) -> Iterator[ChangeTemplate]:
        for _, values in snapshot(self.templates):
            yield from values

    def changes_under(self, namespace: str, template: str) -> list[ChangeRequest]:
        return list(self.standard_changes.get((namespace, template)) or ())

    def raised_change(self, namespace: str, mark: str) -> ChangeRequest | None:
        """The change the operator raised for this mark (see core/change/raised.py)."""
        found: ChangeRequest | None = _first(self.raised, (namespace, mark))
        return found

    def controller_revisions(self, namespace: str, uid: str) -> list[ControllerRevisionFact]:
        return list(self.revisions.get((namespace, uid)) or ())

    def record_exists(self, name: str) -> bool:
        return name in self.records

    def record_finishes(self) -> Iterator[tuple[str, dt.datetime | None]]:
        for name, values in snapshot(self.records):
            yield name, next(iter(values), None)

    def expiries_due(self) -> Iterator[tuple[tuple[str, str], dt.datetime]]:
        for key, values in snapshot(self.expiries):
            for expires in values:
                yield key, expires

    def workload_labels(self, namespace: str) -> dict[tuple[str, str], dict[str, str]]:
        """The labels of every workload of a namespace, by (kind, name): a selector's scope."""
        labels: dict[tuple[str, str], dict[str, str]] = {}
        for store in self.running.values():
            for (ns, kind, name), found in snapshot(store):
                entry = next(iter(found), None)
                if ns == namespace and entry is not None:
                    labels[(kind, name)] = entry[1]
        return labels

    def running_workloads(
        self, namespace: str, workloads: Iterable[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], dict[str, str]], dict[tuple[str, str], dict[str, str]]]:
        """What runs now of each (kind, name): its images and its labels, by (kind, name)."""
        images: dict[tuple[str, str], dict[str, str]] = {}
        labels: dict[tuple[str, str], dict[str, str]] = {}
        for kind, name in workloads:
            found = _first(self.running[f"{kind.lower()}s"], (namespace, kind, name))
            if found is not None:
                images[(kind, name)], labels[(kind, name)] = found
        return images, labels

    def service(self, service: str) -> ServiceOnCall | None:
        """The ServiceOnCall of a service, by the service's name."""
        found: ServiceOnCall | None = _first(self.socs_by_service, service)
        return found

    def all_service_on_calls(self) -> Iterator[ServiceOnCall]:
        for _, values in snapshot(self.service_on_calls):
            yield from values

    def incident_openings(self, service: str) -> list[Opening]:
        return list(self.openings.get(service) or ())

    def all_incidents(self) -> Iterator[Incident]:
        for _, values in snapshot(self.incidents):
            yield from values

    def all_changes(self) -> Iterator[ChangeRequest]:
        for _, values in snapshot(self.changes):
            yield from values

    def deployment_facts(self, service: str) -> list[DeploymentFact]:
        return list(self.deployments.get(service) or ())

    def production_records(self, service: str) -> list[RecordFact]:
        """The service's production DeploymentRecords, as facts."""
        return list(self.production_records_by_service.get(service) or ())
