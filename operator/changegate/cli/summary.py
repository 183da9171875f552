"""`changegate status` for people, and the progress lines `--wait` prints.

A kubectl-describe-like page of one change (phase, approvals, targets,
rollouts, delivery to external systems, lead time, audit trail), and a
Progress that reports only what is new each time the watch sees the change
again. Pure: models in, text out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from changegate.api.v1alpha1 import ChangeRequest, ChangeTarget, ChangeType, Rollout
from changegate.api.v1alpha1.common import ExternalTicket, SyncState
from changegate.cli.table import approvals_text, format_table, human_duration, phase_text

LABEL_WIDTH = 14
SYNC_COLUMNS = (
    "SYSTEM", "DELIVERED", "REFUSED", "ATTEMPTS", "NEXT ATTEMPT", "TICKET", "LAST ERROR",
)  # fmt: skip
SHOWN_STEPS = 3  # a long ServiceNow outbox (one step per note) shows its latest steps


def timestamp(moment: datetime | None) -> str:
    """RFC 3339 in UTC to the second, as Kubernetes prints times."""
    if moment is None:
        return "-"
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def field_line(label: str, value: str) -> str:
    return f"{label + ':':<{LABEL_WIDTH}} {value}"


def target_line(target: ChangeTarget) -> str:
    images = ", ".join(f"{i.container}={i.image}" for i in target.images) or "no image change"
    return f"  {target.kind.value}/{target.name}: {images}"


def rollout_line(rollout: Rollout) -> str:
    revision = f" revision {rollout.revision}" if rollout.revision is not None else ""
    by = f" by {rollout.deployer}" if rollout.deployer else ""
    finished = f", finished {timestamp(rollout.finish_time)}" if rollout.finish_time else ""
    record = f", record {rollout.deployment_record}" if rollout.deployment_record else ""
    return (
        f"  {rollout.kind.value}/{rollout.name}{revision}: {rollout.result.value}{by},"
        f" started {timestamp(rollout.start_time)}{finished}{record}"
    )


def approvals_line(change: ChangeRequest) -> str:
    approvers = change.status.approved_by
    return approvals_text(change) + (f" ({', '.join(approvers)})" if approvers else "")


def steps_text(steps: Sequence[str]) -> str:
    """The latest steps, oldest first, and how many came before them."""
    if not steps:
        return "-"
    earlier = len(steps) - SHOWN_STEPS
    shown = ", ".join(steps[-SHOWN_STEPS:])
    return f"+{earlier} earlier, {shown}" if earlier > 0 else shown


def ticket_of(state: SyncState, ticket: ExternalTicket | None) -> tuple[str | None, str | None]:
    """The ticket's number and link: status.externalTicket's for its system, else the outbox's."""
    if ticket is not None and ticket.system is state.system:
        return ticket.id, ticket.url or state.ticket_url
    return state.ticket_id, state.ticket_url


def sync_row(state: SyncState, ticket: ExternalTicket | None) -> list[str]:
    number, _ = ticket_of(state, ticket)
    return [
        state.system.value,
        steps_text(state.delivered),
        steps_text(state.failed),
        str(state.attempts),
        timestamp(state.next_attempt_time),
        number or "-",
        state.last_error or "-",
    ]


def sync_lines(states: Sequence[SyncState], ticket: ExternalTicket | None) -> list[str]:
    """The "Sync:" section of `incident show` and `status`: each external system's outbox
    (steps delivered and refused, failed attempts, next try, ticket, last error), then links."""
    if not states:
        return []
    table = format_table(SYNC_COLUMNS, [sync_row(s, ticket) for s in states])
    links = [(s.system.value, *ticket_of(s, ticket)) for s in states]
    return [
        "Sync:",
        *(f"  {line}" for line in table),
        *(f"  {system} {number or 'ticket'}: {url}" for system, number, url in links if url),
    ]


def describe_change(change: ChangeRequest) -> list[str]:
    """The human-readable page `changegate status NAME` prints."""
    spec, status = change.spec, change.status
    lines = [
        field_line("Name", change.metadata.name or ""),
        field_line("Namespace", change.metadata.namespace or ""),
        field_line("Service", spec.service),
        field_line("Type", spec.type.value),
        field_line("Summary", spec.summary),
        field_line("Requester", spec.requester or "-"),
        field_line("Phase", phase_text(change)),
        field_line("Approvals", approvals_line(change)),
    ]
    if spec.template_ref:
        lines.append(field_line("Template", spec.template_ref.name))
    if spec.window:
        window = f"{timestamp(spec.window.start_time)} to {timestamp(spec.window.end_time)}"
        lines.append(field_line("Window", window))
    if spec.source:
        source = spec.source
        committed = f" (committed {timestamp(source.commit_time)})" if source.commit_time else ""
        lines.append(field_line("Source", f"{source.repository} @ {source.commit}{committed}"))
        if source.pipeline_run:
            lines.append(field_line("Pipeline run", source.pipeline_run))
    if status.lead_time_seconds is not None:
        lines.append(field_line("Lead time", human_duration(status.lead_time_seconds)))
    if spec.cancel:
        lines.append(field_line("Cancel", "requested"))
    lines += ["Targets:", *(target_line(t) for t in spec.targets)]
    if spec.approvals:
        lines.append("Decisions:")
        lines += [f"  {decision_line(change, i)}" for i in range(len(spec.approvals))]
    if spec.reviews:
        lines.append("Reviews:")
        lines += [f"  {timestamp(r.time)} by {r.reviewer or '?'}: {r.note}" for r in spec.reviews]
    elif spec.type is ChangeType.EMERGENCY:
        lines.append(field_line("Review", "not yet reviewed (changegate review NAME --note ...)"))
    if status.rollouts:
        lines += ["Rollouts:", *(rollout_line(r) for r in status.rollouts)]
    lines += sync_lines(status.sync, status.external_ticket)
    if status.conditions:
        lines.append("Conditions:")
        lines += [f"  {c.type}={c.status.value} {c.reason}: {c.message}" for c in status.conditions]
    if status.audit_trail:
        lines.append("Audit trail:")
        lines += [f"  {audit_line(change, i)}" for i in range(len(status.audit_trail))]
    return lines


def decision_line(change: ChangeRequest, index: int) -> str:
    approval = change.spec.approvals[index]
    comment = f": {approval.comment}" if approval.comment else ""
    who = approval.approver or "?"
    return f"{timestamp(approval.time)} {approval.decision.value} by {who}{comment}"


def audit_line(change: ChangeRequest, index: int) -> str:
    entry = change.status.audit_trail[index]
    message = f": {entry.message}" if entry.message else ""
    return f"{timestamp(entry.time)} {entry.actor} {entry.action}{message}"


@dataclass
class Progress:
    """What `--wait` has already reported, so that each line says something new."""

    state: tuple[str, str] | None = None
    decisions: int = 0
    # The trail is bounded and drops its oldest entries, so remember lines, not a count.
    audit_seen: set[str] = field(default_factory=set)
    rollouts: tuple[str, ...] = ()

    def report(self, change: ChangeRequest) -> list[str]:
        """The lines that describe what changed since the last report."""
        lines: list[str] = []
        state = (phase_text(change), approvals_text(change))
        if state != self.state:
            lines.append(f"{change.metadata.name}: {state[0]}, approvals {state[1]}")
            self.state = state
        lines += [
            f"  {decision_line(change, i)}"
            for i in range(self.decisions, len(change.spec.approvals))
        ]
        self.decisions = len(change.spec.approvals)
        trail = [audit_line(change, i) for i in range(len(change.status.audit_trail))]
        lines += [f"  {line}" for line in trail if line not in self.audit_seen]
        self.audit_seen.update(trail)
        rollouts = tuple(rollout_line(r) for r in change.status.rollouts)
        lines += [line for line in rollouts if line not in self.rollouts]
        self.rollouts = rollouts
        return lines
