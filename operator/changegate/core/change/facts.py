"""Compact, immutable views of ServiceOnCalls and ChangeRequests for the decision core.

The webhook keeps thousands of these in its indexes, so they hold only what
the rules read. They are built from the API models once, when an object is
indexed; the rules never see raw bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from changegate.api.v1alpha1.changerequest import (
    TERMINAL_PHASES,
    Approval,
    ApprovalDecision,
    ChangePhase,
    ChangeRequest,
    RolloutResult,
)
from changegate.api.v1alpha1.common import ChangeType
from changegate.api.v1alpha1.serviceoncall import (
    ApprovalPlace,
    Enforcement,
    ExecPolicy,
    PassThrough,
    ServiceOnCall,
)
from changegate.core.common import User


@dataclass(frozen=True, slots=True)
class FreezeFacts:
    name: str
    start: datetime
    end: datetime
    reason: str
    change_types: frozenset[ChangeType]

    def applies(self, moment: datetime, change_type: ChangeType) -> bool:
        return self.start <= moment < self.end and change_type in self.change_types


@dataclass(frozen=True, slots=True)
class ServicePolicy:
    """What admission needs of a ServiceOnCall."""

    namespace: str
    name: str
    service: str
    production_namespaces: frozenset[str]
    approver_users: frozenset[str]
    approver_groups: frozenset[str]
    required_approvals: int
    emergency_groups: frozenset[str]
    allow_rollback: bool
    allow_restart: bool
    freezes: tuple[FreezeFacts, ...]
    # spec.changePolicy.rollbackHorizonSeconds: how far back a rollback may go.
    rollback_horizon_seconds: int = 30 * 24 * 3600
    # spec.changePolicy.exec: Refuse (exec and attach into the service's pods are refused).
    refuse_exec: bool = False
    # spec.team.members users: who may act on the service's Incidents (core/incident/review.py).
    team_members: frozenset[str] = frozenset()
    # spec.changePolicy.enforcement: Audit (what would be refused is admitted and reported).
    audit_only: bool = False
    # spec.changePolicy.approvalsIn: ServiceNow (approvals arrive only via the controller).
    approvals_in_servicenow: bool = False
    # (contact value, user) of team members: how a ServiceNow user name is one of ours.
    aliases: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def from_model(
        cls, soc: ServiceOnCall, default_approver_groups: tuple[str, ...] = ("change-managers",)
    ) -> ServicePolicy:
        """The policy of a ServiceOnCall; with no approvers named, the chart's default groups."""
        spec = soc.spec
        policy = spec.change_policy
        named = bool(policy.approvers.users or policy.approvers.groups)
        return cls(
            namespace=soc.metadata.namespace or "",
            name=soc.metadata.name or "",
            service=spec.service.name,
            production_namespaces=frozenset(e.namespace for e in spec.environments if e.production),
            approver_users=frozenset(policy.approvers.users),
            approver_groups=frozenset(
                policy.approvers.groups if named else default_approver_groups
            ),
            # In ServiceNow, its own rules say how many approvers must agree: its verdict is one.
            required_approvals=(
                1 if policy.approvals_in is ApprovalPlace.SERVICE_NOW else policy.required_approvals
            ),
            emergency_groups=frozenset(policy.emergency_groups),
            allow_rollback=policy.rollback is PassThrough.ALLOW,
            allow_restart=policy.restart is PassThrough.ALLOW,
            freezes=tuple(
                FreezeFacts(f.name, f.start_time, f.end_time, f.reason, frozenset(f.change_types))
                for f in policy.freezes
            ),
            rollback_horizon_seconds=policy.rollback_horizon_seconds,
            refuse_exec=policy.exec is ExecPolicy.REFUSE,
            team_members=frozenset(m.user for m in spec.team.members),
            audit_only=policy.enforcement is Enforcement.AUDIT,
            approvals_in_servicenow=policy.approvals_in is ApprovalPlace.SERVICE_NOW,
            aliases=frozenset(
                (c.value.casefold(), m.user) for m in spec.team.members for c in m.contacts
            ),
        )

    def identity(self, external_user: str) -> str:
        """A ServiceNow user as our user: a team member whose user name or contact matches."""
        wanted = external_user.casefold()
        return next((u for v, u in self.aliases if v == wanted), external_user)

    def may_approve(self, user: User) -> bool:
        return user.username in self.approver_users or user.in_any(self.approver_groups)

    def is_emergency_member(self, user: User) -> bool:
        return user.in_any(self.emergency_groups)

    def freeze_at(self, moment: datetime, change_type: ChangeType) -> FreezeFacts | None:
        return next((f for f in self.freezes if f.applies(moment, change_type)), None)


@dataclass(frozen=True, slots=True)
class TargetFacts:
    kind: str
    name: str
    # (container, image, digest or None)
    images: tuple[tuple[str, str, str | None], ...]
    # spec.targets[].podTemplateHash: the whole template declared; None for images only.
    pod_template_hash: str | None = None


@dataclass(frozen=True, slots=True)
class DeployedFacts:
    """A rollout the change finished successfully: where, when, and the exact references."""

    kind: str
    name: str
    # When it finished (its start when no finish was recorded: the horizon errs short).
    finished: datetime
    # (container, image, digest or None), as status.rollouts recorded them.
    images: tuple[tuple[str, str, str | None], ...]


def approval_identity(approval: Approval) -> str | None:
    """Who an approval counts as: its approver, or "<user> via ServiceNow" for one made there."""
    if approval.via is not None:
        if not approval.external_user:
            return None
        return f"{approval.external_user} via {approval.via.value}"
    return approval.approver


@dataclass(frozen=True, slots=True)
class ChangeFacts:
    """What admission needs of a ChangeRequest."""

    namespace: str
    name: str
    uid: str
    service: str
    type: ChangeType
    phase: ChangePhase
    requester: str | None
    targets: tuple[TargetFacts, ...]
    window_start: datetime | None
    window_end: datetime | None
    expiration: datetime | None
    approvers: tuple[str, ...]
    rejected_by: tuple[str, ...]
    cancelled: bool
    # (kind, name) of workloads this change rolled out successfully.
    deployed: frozenset[tuple[str, str]]
    # The same rollouts with their finish times and references, for rollbacks.
    deployed_refs: tuple[DeployedFacts, ...] = ()

    @classmethod
    def from_model(cls, change: ChangeRequest) -> ChangeFacts:
        spec, status = change.spec, change.status
        approved: list[str] = []
        rejected: list[str] = []
        for approval in spec.approvals:
            who = approval_identity(approval)
            if who is None or who == spec.requester or approval.external_user == spec.requester:
                continue
            bucket = approved if approval.decision is ApprovalDecision.APPROVED else rejected
            if who not in bucket:
                bucket.append(who)
        return cls(
            namespace=change.metadata.namespace or "",
            name=change.metadata.name or "",
            uid=change.metadata.uid or "",
            service=spec.service,
            type=spec.type,
            phase=status.phase or ChangePhase.PENDING,
            requester=spec.requester,
            targets=tuple(
                TargetFacts(
                    t.kind.value,
                    t.name,
                    tuple((i.container, i.image, i.digest) for i in t.images),
                    t.pod_template_hash,
                )
                for t in spec.targets
            ),
            window_start=spec.window.start_time if spec.window else None,
            window_end=spec.window.end_time if spec.window else None,
            expiration=status.expiration_time,
            approvers=tuple(approved),
            rejected_by=tuple(rejected),
            cancelled=spec.cancel,
            deployed=frozenset(
                (r.kind.value, r.name)
                for r in status.rollouts
                if r.result is RolloutResult.SUCCEEDED
            ),
            deployed_refs=tuple(
                DeployedFacts(
                    r.kind.value,
                    r.name,
                    r.finish_time or r.start_time,
                    tuple((i.container, i.image, i.digest) for i in r.images),
                )
                for r in status.rollouts
                if r.result is RolloutResult.SUCCEEDED
            ),
        )

    def target(self, kind: str, name: str) -> TargetFacts | None:
        return next((t for t in self.targets if t.kind == kind and t.name == name), None)

    def effective_phase(self, policy: ServicePolicy | None) -> ChangePhase:
        """The phase admission trusts, without waiting for the controller to catch up.

        Approvals are vetted by the webhook when they are written, so counting
        them here gives the same answer the controller will write to status.
        """
        if self.phase in TERMINAL_PHASES or self.phase is ChangePhase.IN_PROGRESS:
            return self.phase
        if self.cancelled:
            return ChangePhase.CANCELLED
        if self.phase is ChangePhase.APPROVED:
            return self.phase
        if self.type is ChangeType.EMERGENCY:
            # Only members of the emergency group can create one (admission checks it).
            return ChangePhase.APPROVED
        if self.type is ChangeType.NORMAL and policy is not None:
            if self.rejected_by:
                return ChangePhase.REJECTED
            if len(self.approvers) >= policy.required_approvals:
                return ChangePhase.APPROVED
        return ChangePhase.PENDING
