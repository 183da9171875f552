"""The compliance report: every rollout of a period with its evidence, the exceptions
an auditor must look at, and what runs where now.

Pure: the evidence, a period and a scope in; a ComplianceReport out, which
`changegate report compliance` prints as a table, JSON, CSV, Markdown or HTML.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import msgspec

from changegate.core.report.dora import lead_time_seconds
from changegate.core.report.evidence import (
    AUDIT_ONLY,
    BREAK_GLASS,
    EMERGENCY,
    EVERYTHING,
    Change,
    Evidence,
    Period,
    Record,
    Scope,
)


# The report's rows are msgspec structs, not dataclasses: a year of a large cluster is
# 100,000 rows, which they build several times faster, keep in less memory, and which
# `-o json` encodes in C.
class ApprovalSeen(msgspec.Struct, frozen=True, gc=False):
    approver: str
    time: datetime | None


class ComplianceRow(msgspec.Struct, frozen=True, gc=False):
    """One rollout and the evidence behind it."""

    record: str
    finish_time: datetime
    start_time: datetime
    service: str
    environment: str
    namespace: str
    workload: str
    images: tuple[str, ...]
    basis: str
    change: str | None
    change_type: str | None
    template: str | None
    requester: str | None
    approvals: tuple[ApprovalSeen, ...]
    deployer: str | None
    repository: str | None
    commit: str | None
    pull_request: str | None
    pipeline_run: str | None
    lead_time_seconds: float | None
    result: str


class ExceptionKind(StrEnum):
    """What an auditor must look at."""

    BREAK_GLASS = "BreakGlass"
    UNREVIEWED_EMERGENCY = "UnreviewedEmergency"
    AUDIT_ONLY = "AuditOnly"
    FAILED_ROLLOUT = "FailedRollout"


class ComplianceException(msgspec.Struct, frozen=True, gc=False):
    kind: ExceptionKind
    subject: str
    """The DeploymentRecord, or namespace/name of the ChangeRequest."""
    service: str
    time: datetime | None
    detail: str


class Running(msgspec.Struct, frozen=True, gc=False):
    """What runs in one workload of a service's environment now, since when, under what."""

    service: str
    environment: str
    namespace: str
    workload: str
    images: tuple[str, ...]
    since: datetime
    change: str | None
    record: str


@dataclass(frozen=True)
class ComplianceReport:
    period: Period
    rows: tuple[ComplianceRow, ...]
    exceptions: tuple[ComplianceException, ...]
    running: tuple[Running, ...]


def approvals_of(record: Record, change: Change | None) -> tuple[ApprovalSeen, ...]:
    """The approvers the record names, with the times their approvals carry on the change."""
    times = {}
    if change is not None:
        times = {a.approver: a.time for a in change.spec.approvals if a.decision == "Approved"}
    return tuple(ApprovalSeen(who, times.get(who)) for who in record.spec.approvers)


def row(record: Record, change: Change | None) -> ComplianceRow:
    spec, source = record.spec, record.spec.source
    template = change.spec.template_ref if change is not None else None
    return ComplianceRow(
        record=record.name,
        finish_time=spec.finish_time,
        start_time=spec.start_time,
        service=spec.service,
        environment=spec.environment,
        namespace=spec.namespace,
        workload=f"{spec.workload.kind}/{spec.workload.name}",
        images=tuple(image.text() for image in spec.images),
        basis=spec.admission,
        change=spec.change_request.name if spec.change_request else None,
        change_type=spec.change_type,
        template=template.name if template else None,
        requester=spec.requester,
        approvals=approvals_of(record, change),
        deployer=spec.deployer,
        repository=source.repository if source else None,
        commit=source.commit if source else None,
        pull_request=source.pull_request if source else None,
        pipeline_run=source.pipeline_run if source else None,
        lead_time_seconds=lead_time_seconds(record),
        result=spec.result,
    )


def change_of(record: Record, changes: dict[tuple[str, str], Change]) -> Change | None:
    ref = record.spec.change_request
    if ref is None:
        return None
    return changes.get((ref.namespace or record.spec.namespace, ref.name))


def record_exceptions(record: Record) -> list[ComplianceException]:
    spec = record.spec
    found = []
    if spec.admission == BREAK_GLASS:
        found.append(
            ComplianceException(
                ExceptionKind.BREAK_GLASS,
                record.name,
                spec.service,
                spec.start_time,
                f"break-glass rollout of {spec.workload.kind}/{spec.workload.name} by"
                f" {spec.deployer or 'unknown'}",
            )
        )
    if spec.admission == AUDIT_ONLY:
        found.append(
            ComplianceException(
                ExceptionKind.AUDIT_ONLY,
                record.name,
                spec.service,
                spec.start_time,
                f"admitted in audit-only mode; enforcement would have refused it: {spec.audit_reason or ''}",
            )
        )
    if not record.succeeded:
        found.append(
            ComplianceException(
                ExceptionKind.FAILED_ROLLOUT,
                record.name,
                spec.service,
                spec.finish_time,
                f"rollout of {spec.workload.kind}/{spec.workload.name} failed",
            )
        )
    return found


def unreviewed(
    changes: Iterable[Change], period: Period, scope: Scope
) -> list[ComplianceException]:
    """Emergency changes raised in the period and not yet reviewed after the fact."""
    return [
        ComplianceException(
            ExceptionKind.UNREVIEWED_EMERGENCY,
            f"{change.key[0]}/{change.key[1]}",
            change.spec.service,
            change.metadata.creation_timestamp,
            f"emergency change not yet reviewed: {change.spec.summary}",
        )
        for change in changes
        if change.spec.type == EMERGENCY
        and (scope.services is None or change.spec.service in scope.services)
        and (scope.namespaces is None or change.key[0] in scope.namespaces)
        and (
            change.metadata.creation_timestamp is None
            or change.metadata.creation_timestamp in period
        )
        and not change.reviewed
    ]


def running_now(records: Iterable[Record], scope: Scope, until: datetime) -> list[Running]:
    """The last successful rollout of each workload before `until`, in every environment
    of the scope (not only production)."""
    latest: dict[tuple[str, str, str], Record] = {}
    for record in records:
        spec = record.spec
        if not record.succeeded or spec.finish_time >= until or not scope.matches(spec):
            continue
        key = (spec.namespace, spec.workload.kind, spec.workload.name)
        if key not in latest or latest[key].spec.finish_time <= spec.finish_time:
            latest[key] = record
    return sorted(
        (running(r) for r in latest.values()), key=lambda r: (r.service, r.environment, r.workload)
    )


def running(record: Record) -> Running:
    spec = record.spec
    return Running(
        service=spec.service,
        environment=spec.environment,
        namespace=spec.namespace,
        workload=f"{spec.workload.kind}/{spec.workload.name}",
        images=tuple(image.text() for image in spec.images),
        since=spec.finish_time,
        change=spec.change_request.name if spec.change_request else None,
        record=record.name,
    )


def compliance_report(
    evidence: Evidence,
    period: Period,
    scope: Scope = EVERYTHING,
) -> ComplianceReport:
    """Rows (oldest first), exceptions and what runs where, for the period and scope."""
    changes = {change.key: change for change in evidence.changes}
    chosen: Sequence[Record] = sorted(
        (r for r in evidence.records if scope.covers(r.spec) and r.spec.finish_time in period),
        key=lambda r: (r.spec.finish_time, r.name),
    )
    exceptions = [e for r in chosen for e in record_exceptions(r)]
    exceptions += unreviewed(evidence.changes, period, scope)
    exceptions.sort(key=lambda e: (e.time is None, e.time or period.since, e.subject))
    return ComplianceReport(
        period,
        tuple(row(r, change_of(r, changes)) for r in chosen),
        tuple(exceptions),
        tuple(running_now(evidence.records, scope, period.until)),
    )
