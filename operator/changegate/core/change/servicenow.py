"""A production ChangeRequest as a ServiceNow `change_request`, and ServiceNow's approvals back.

Out: `plan` lists the steps the change's phase calls for (create, assess,
approved, implement, review, close, cancel) and `fields_for` what each sets;
the sync runner delivers what is not yet delivered, in order. In: when the
service's approvals happen in ServiceNow, `approvals_to_record` turns the
approvers' decisions there into Approvals to append "via ServiceNow" (the
admission webhook still applies segregation of duties). Pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from changegate.api.v1alpha1.changerequest import (
    ApprovalDecision,
    ChangePhase,
    ChangeRequest,
)
from changegate.api.v1alpha1.common import ActSource, ChangeType, Level

SN = ActSource.SERVICE_NOW

MODEL: Mapping[ChangeType, str] = {
    ChangeType.STANDARD: "standard",
    ChangeType.NORMAL: "normal",
    ChangeType.EMERGENCY: "emergency",
}
# change_request state codes.
NEW, ASSESS, SCHEDULED, IMPLEMENT, REVIEW, CLOSED, CANCELED = (
    "-5",
    "-4",
    "-2",
    "-1",
    "0",
    "3",
    "4",
)
STEP_STATE: Mapping[str, str] = {
    "assess": ASSESS,
    "approved": SCHEDULED,
    "implement": IMPLEMENT,
    "review": REVIEW,
    "close": CLOSED,
    "cancel": CANCELED,
}
CLOSE_CODE: Mapping[ChangePhase, str] = {
    ChangePhase.COMPLETED: "successful",
    ChangePhase.FAILED: "unsuccessful",
}
# ServiceNow's risk choices (2 High, 3 Moderate, 4 Low) and impact (1 High .. 3 Low).
RISK: Mapping[Level, str] = {Level.HIGH: "2", Level.MEDIUM: "3", Level.LOW: "4"}
IMPACT: Mapping[Level, str] = {Level.HIGH: "1", Level.MEDIUM: "2", Level.LOW: "3"}
APPROVED_PHASES = frozenset(
    {ChangePhase.APPROVED, ChangePhase.IN_PROGRESS, ChangePhase.COMPLETED, ChangePhase.FAILED}
)
STARTED_PHASES = frozenset({ChangePhase.IN_PROGRESS, ChangePhase.COMPLETED, ChangePhase.FAILED})
FINISHED_PHASES = frozenset({ChangePhase.COMPLETED, ChangePhase.FAILED})
ENDED_UNUSED = frozenset({ChangePhase.REJECTED, ChangePhase.CANCELLED, ChangePhase.EXPIRED})


def plan(change: ChangeRequest, approvals_in_servicenow: bool = False) -> list[str]:
    """The steps the change's phase calls for, in the order ServiceNow's state model takes them."""
    phase = change.status.phase or ChangePhase.PENDING
    steps = ["create"]
    if approvals_in_servicenow and change.spec.type is ChangeType.NORMAL:
        steps.append("assess")
    if phase in APPROVED_PHASES:
        steps.append("approved")
    if phase in STARTED_PHASES:
        steps.append("implement")
    if phase in FINISHED_PHASES:
        steps += ["review", "close"]
    if phase in ENDED_UNUSED:
        steps.append("cancel")
    return steps


def glide(moment: dt.datetime) -> str:
    """A datetime as ServiceNow's yyyy-MM-dd HH:mm:ss (UTC)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _targets(change: ChangeRequest) -> str:
    lines = []
    for target in change.spec.targets:
        images = ", ".join(f"{i.container}={i.image}" for i in target.images) or "configuration"
        lines.append(f"{target.kind.value} {target.name}: {images}")
    return "\n".join(lines)


def _source(change: ChangeRequest) -> list[str]:
    source = change.spec.source
    if source is None:
        return []
    lines = [f"Source: {source.repository} @ {source.commit}"]
    lines += [f"Pipeline run: {source.pipeline_run}"] if source.pipeline_run else []
    lines += [f"Pull request: {source.pull_request}"] if source.pull_request else []
    return lines


def _description(change: ChangeRequest) -> str:
    spec, meta = change.spec, change.metadata
    lines = [spec.description or spec.summary, ""]
    lines.append(f"changegate ChangeRequest {meta.namespace}/{meta.name} ({spec.type.value})")
    lines.append(f"Service: {spec.service}; requested by {spec.requester or 'unknown'}")
    lines += ["Targets:", _targets(change), *_source(change)]
    return "\n".join(lines)[:4000]


def _optional(change: ChangeRequest) -> dict[str, str]:
    spec = change.spec
    fields: dict[str, str] = {}
    if spec.window is not None:
        fields["start_date"] = glide(spec.window.start_time)
        fields["end_date"] = glide(spec.window.end_time)
    if spec.risk is not None:
        fields["risk"] = RISK[spec.risk]
    if spec.impact is not None:
        fields["impact"] = IMPACT[spec.impact]
    if spec.backout_plan:
        fields["backout_plan"] = spec.backout_plan
    if spec.emergency_reason:
        fields["justification"] = spec.emergency_reason
    if spec.requester:
        fields["requested_by"] = spec.requester
    if spec.source is not None and spec.source.pipeline_run:
        fields["test_plan"] = f"Built and tested by {spec.source.pipeline_run}"
    return fields


def create_fields(
    change: ChangeRequest, assignment_group: str | None, configuration_item: str | None
) -> dict[str, str]:
    """The new change record's fields (correlation_id is added by the adapter)."""
    fields = {
        "short_description": change.spec.summary[:160],
        "description": _description(change),
        "implementation_plan": _targets(change),
        "correlation_display": "changegate",
        **_optional(change),
    }
    if assignment_group:
        fields["assignment_group"] = assignment_group
    if configuration_item:
        fields["cmdb_ci"] = configuration_item
    return fields


def _close_notes(change: ChangeRequest) -> str:
    phase = change.status.phase or ChangePhase.PENDING
    rollouts = [
        f"{r.kind.value} {r.name}: {r.result.value}"
        + (f" (DeploymentRecord {r.deployment_record})" if r.deployment_record else "")
        for r in change.status.rollouts
    ]
    return "\n".join([f"Change {phase.value} in changegate.", *rollouts])[:4000]


def fields_for(step: str, change: ChangeRequest) -> dict[str, str]:
    """What a step after create sets on the change record."""
    fields = {"state": STEP_STATE[step]}
    phase = change.status.phase or ChangePhase.PENDING
    if step in ("review", "close") and phase in CLOSE_CODE:
        fields["close_code"] = CLOSE_CODE[phase]
        fields["close_notes"] = _close_notes(change)
    if step == "approved" and change.status.approved_by:
        fields["work_notes"] = f"Approved in changegate by {', '.join(change.status.approved_by)}"
    return fields


# ---- Approvals made in ServiceNow ----


@dataclass(frozen=True, slots=True)
class RemoteDecision:
    """One approver's decision in ServiceNow: who (mapped to our user where known), what, why."""

    approver: str
    state: str
    comments: str


@dataclass(frozen=True, slots=True)
class ApprovalToRecord:
    """An approval to append to the ChangeRequest, via ServiceNow by `approver`."""

    approver: str
    decision: ApprovalDecision
    comment: str


def _recorded(change: ChangeRequest) -> set[str]:
    return {a.external_user or "" for a in change.spec.approvals if a.via is SN}


def approvals_to_record(
    change: ChangeRequest, approval: str, decisions: Sequence[RemoteDecision]
) -> list[ApprovalToRecord]:
    """ServiceNow's verdict on the change (its `approval` field) as Approvals not yet recorded.

    A rejection is recorded as soon as one approver rejects (ServiceNow rejects
    then); approvals only once ServiceNow says the change is approved, that is
    when every approver its rules asked has approved.
    """
    if (change.status.phase or ChangePhase.PENDING) is not ChangePhase.PENDING:
        return []
    wanted = {"rejected": "rejected", "approved": "approved"}.get(approval)
    if wanted is None:
        return []
    done = _recorded(change)
    decision = ApprovalDecision.APPROVED if wanted == "approved" else ApprovalDecision.REJECTED
    return [
        ApprovalToRecord(d.approver, decision, d.comments or f"{wanted} in ServiceNow")
        for d in decisions
        if d.state == wanted and d.approver and d.approver not in done
    ]
