"""Rules for changegate's own kinds: who may write what, stamped with who they are.

The mutating webhook calls these with the authenticated user from the
admission request. Each returns a Verdict: refuse with a reason, or accept with
the JSON patch that stamps identities and times. Pure: no I/O, time is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from changegate.api.v1alpha1.changerequest import (
    TERMINAL_PHASES,
    ApprovalDecision,
    ChangePhase,
    ChangeRequest,
)
from changegate.api.v1alpha1.changetemplate import ChangeTemplate
from changegate.api.v1alpha1.common import ChangeType
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.common import User


@dataclass(frozen=True, slots=True)
class Authorities:
    """The groups and users the chart names; read once from settings."""

    change_manager_groups: frozenset[str]
    platform_admin_groups: frozenset[str]
    operator_users: frozenset[str]

    def is_change_manager(self, user: User) -> bool:
        return user.in_any(tuple(self.change_manager_groups))

    def may_govern(self, user: User) -> bool:
        return user.in_any(tuple(self.change_manager_groups | self.platform_admin_groups))


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    message: str = ""
    reason: str = "Accepted"
    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: tuple[str, ...] = ()


# Spec fields that never change after creation (mirrors the CRD's CEL rules).
IMMUTABLE = ("service", "type", "targets", "window", "source")


def refuse(reason: str, message: str) -> Verdict:
    return Verdict(False, message, reason)


ACTIVATED_BY = "changegate.io/activated-by"
ACTIVATED_AT = "changegate.io/activated-at"


def _set_annotations(
    current: dict[str, str], wanted: dict[str, str | None]
) -> list[dict[str, Any]]:
    """JSON patch ops that give the object these annotation values (None removes one)."""
    if not current:
        values = {k: v for k, v in wanted.items() if v is not None}
        return [{"op": "add", "path": "/metadata/annotations", "value": values}] if values else []
    ops: list[dict[str, Any]] = []
    for key, value in wanted.items():
        path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
        if value is not None:
            ops.append({"op": "add", "path": path, "value": value})
        elif key in current:
            ops.append({"op": "remove", "path": path})
    return ops


def _timestamp(now: datetime) -> str:
    return now.isoformat().replace("+00:00", "Z")


def review_change_request(
    operation: str,
    old: ChangeRequest | None,
    new: ChangeRequest,
    user: User,
    policy: ServicePolicy | None,
    now: datetime,
    *,
    operator: bool = False,
) -> Verdict:
    """Stamp the requester and approvals; enforce segregation of duties and the frozen spec.

    The operator itself raises changes after the fact (a break-glass rollout's
    emergency change, a promotion from pre-production) on behalf of the person
    who deployed: it alone may name a requester other than itself.
    """
    if operation == "CREATE" or old is None:
        if operator and not new.spec.approvals:
            return Verdict(True, reason="RaisedByOperator")
        return _review_new_change(new, user, policy)

    if new.spec.requester != old.spec.requester:
        return refuse("RequesterImmutable", "spec.requester cannot be changed")
    # The CRD's CEL rules say the same; the webhook must not depend on them, since
    # an approval counts here from the moment it is written.
    moved = [f for f in IMMUTABLE if getattr(old.spec, f) != getattr(new.spec, f)]
    if moved:
        return refuse(
            "Immutable",
            f"spec.{', spec.'.join(moved)} cannot be changed; raise a new ChangeRequest instead",
        )
    if new.spec.approvals[: len(old.spec.approvals)] != old.spec.approvals:
        return refuse(
            "ApprovalsAppendOnly",
            "approvals can only be appended: existing entries cannot be changed or removed",
        )
    if old.spec.cancel and not new.spec.cancel:
        return refuse("CancelIsFinal", "a cancelled change cannot be un-cancelled")

    facts = ChangeFacts.from_model(old)
    phase = facts.effective_phase(policy)
    if (
        new.spec.cancel
        and not old.spec.cancel
        and (phase is ChangePhase.IN_PROGRESS or phase in TERMINAL_PHASES)
    ):
        return refuse(
            "TooLateToCancel",
            f"ChangeRequest {facts.name} is {phase.value}: it can only be cancelled before its"
            " rollout starts",
        )
    if phase is not ChangePhase.PENDING:
        frozen_old = old.spec.model_copy(update={"cancel": False}).to_json()
        frozen_new = new.spec.model_copy(update={"cancel": False}).to_json()
        if frozen_old != frozen_new:
            return refuse(
                "SpecFrozen",
                f"ChangeRequest {facts.name} is {phase.value}: its spec is frozen, only"
                " spec.cancel may be set; raise a new ChangeRequest to change it",
            )
        return Verdict(True)

    added = new.spec.approvals[len(old.spec.approvals) :]
    if not added:
        return Verdict(True)
    if len(added) > 1:
        return refuse("OneApprovalAtATime", "append one approval at a time, as yourself")
    approval = added[0]
    index = len(old.spec.approvals)
    if approval.approver is not None and approval.approver != user.username:
        return refuse(
            "ApproverMismatch",
            f"an approval is recorded as the user who writes it: you are {user.username},"
            f" the approval names {approval.approver}",
        )
    if policy is None:
        return refuse(
            "NoServiceOnCall",
            f"no ServiceOnCall declares service {new.spec.service},"
            " so nobody may approve its changes",
        )
    if user.username == new.spec.requester:
        return refuse(
            "SegregationOfDuties",
            f"{user.username} requested ChangeRequest {facts.name} and cannot approve or reject it"
            " (segregation of duties)",
        )
    if not policy.may_approve(user):
        who = sorted(policy.approver_users) + [f"group {g}" for g in sorted(policy.approver_groups)]
        return refuse(
            "NotAnApprover",
            f"{user.username} is not an approver of service {policy.service}"
            f" (approvers: {', '.join(who) or 'none'})",
        )
    if user.username in facts.approvers or user.username in facts.rejected_by:
        return refuse("AlreadyDecided", f"{user.username} has already decided on {facts.name}")
    if approval.decision is ApprovalDecision.REJECTED and not approval.comment:
        return refuse("RejectionNeedsComment", "a rejection needs a comment that says why")
    path = f"/spec/approvals/{index}"
    return Verdict(
        True,
        reason="ApprovalStamped",
        patch=[
            {"op": "add", "path": f"{path}/approver", "value": user.username},
            {"op": "add", "path": f"{path}/time", "value": _timestamp(now)},
        ],
    )


def _review_new_change(new: ChangeRequest, user: User, policy: ServicePolicy | None) -> Verdict:
    if new.spec.requester is not None and new.spec.requester != user.username:
        return refuse(
            "RequesterMismatch",
            f"spec.requester is stamped from your identity: you are {user.username}, the body"
            f" names {new.spec.requester}; leave spec.requester empty",
        )
    if new.spec.approvals:
        return refuse(
            "ApprovalsOnCreate",
            "a new ChangeRequest carries no approvals; approvers append theirs afterwards",
        )
    if new.spec.type is ChangeType.EMERGENCY and (
        policy is None or not policy.is_emergency_member(user)
    ):
        groups = ", ".join(sorted(policy.emergency_groups)) if policy else "none"
        return refuse(
            "NotInEmergencyGroup",
            f"only members of the emergency groups of service {new.spec.service} ({groups}) may"
            " raise an emergency change",
        )
    return Verdict(
        True,
        reason="RequesterStamped",
        patch=[
            {"op": "add", "path": "/spec/requester", "value": user.username},
            # An empty list lets approvers append with a plain JSON patch ("/spec/approvals/-").
            {"op": "add", "path": "/spec/approvals", "value": []},
        ],
    )


def review_change_template(
    operation: str,
    old: ChangeTemplate | None,
    new: ChangeTemplate,
    user: User,
    authorities: Authorities,
    now: datetime,
) -> Verdict:
    """Only a change manager activates a template; any other edit of its spec deactivates it."""
    was_active = bool(old and old.spec.active)
    if new.spec.active and not was_active:
        if not authorities.is_change_manager(user):
            return refuse(
                "NotAChangeManager",
                f"only change managers ({', '.join(sorted(authorities.change_manager_groups))})"
                f" may activate a ChangeTemplate; {user.username} may not",
            )
        return Verdict(
            True,
            reason="Activated",
            patch=_set_annotations(
                new.metadata.annotations,
                {ACTIVATED_BY: user.username, ACTIVATED_AT: _timestamp(now)},
            ),
        )
    # Who activated the template is evidence: nobody edits it by hand.
    kept = {
        k: (old.metadata.annotations.get(k) if old else None) for k in (ACTIVATED_BY, ACTIVATED_AT)
    }
    if any(new.metadata.annotations.get(k) != v for k, v in kept.items()):
        return Verdict(
            True, reason="StampRestored", patch=_set_annotations(new.metadata.annotations, kept)
        )
    if old is not None and was_active and new.spec.active:
        before = old.spec.model_copy(update={"active": True}).to_json()
        after = new.spec.model_copy(update={"active": True}).to_json()
        if before != after:
            return Verdict(
                True,
                reason="Deactivated",
                patch=[{"op": "replace", "path": "/spec/active", "value": False}],
                warnings=(
                    "the template's spec changed, so it is no longer active; a change manager"
                    " must activate it again",
                ),
            )
    return Verdict(True)


def _governance(soc: ServiceOnCall | None) -> dict[str, Any]:
    if soc is None:
        return {}
    policy = soc.spec.change_policy
    return {
        "approvers": policy.approvers.to_json(),
        "requiredApprovals": policy.required_approvals,
        "emergencyGroups": sorted(policy.emergency_groups),
        "production": sorted((e.name, e.namespace) for e in soc.spec.environments if e.production),
    }


def review_service_on_call(
    old: ServiceOnCall | None, new: ServiceOnCall | None, user: User, authorities: Authorities
) -> Verdict:
    """Approvers, emergency groups and production environments change only by governance."""
    if _governance(old) == _governance(new) or authorities.may_govern(user):
        return Verdict(True)
    if new is None:
        what = "delete a ServiceOnCall, which takes its service out of governance"
    elif old is None:
        what = "create a ServiceOnCall that names its own approvers or emergency groups"
    else:
        what = "change approvers, required approvals, emergency groups or production environments"
    # A new ServiceOnCall that names no approvers and no emergency groups only adds
    # governance: its production namespaces fall to the chart's default approvers.
    if old is None and new is not None:
        policy = new.spec.change_policy
        if not (policy.approvers.users or policy.approvers.groups or policy.emergency_groups):
            return Verdict(True)
    groups = sorted(authorities.change_manager_groups | authorities.platform_admin_groups)
    return refuse(
        "GovernanceChange",
        f"only change managers or platform administrators ({', '.join(groups)}) may {what};"
        f" {user.username} may not",
    )


def review_deployment_record(user: User, authorities: Authorities) -> Verdict:
    if user.username in authorities.operator_users:
        return Verdict(True)
    return refuse(
        "EvidenceIsReadOnly",
        f"DeploymentRecords are evidence written only by the changegate controller;"
        f" {user.username} may not write or delete them",
    )
