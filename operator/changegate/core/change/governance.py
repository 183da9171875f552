"""Rules for changegate's own kinds: who may write what, stamped with who they are.

The mutating webhook calls the `review_*` functions with the authenticated user
from the admission request. Each runs a chain of small named rules (the `*_RULES`
tuples; the first that decides wins) and returns a Verdict: refuse with a reason,
or accept with the JSON patch that stamps identities and times. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from changegate.api.v1alpha1.changerequest import (
    TERMINAL_PHASES,
    Approval,
    ApprovalDecision,
    ChangePhase,
    ChangeRequest,
    Review,
)
from changegate.api.v1alpha1.changetemplate import ChangeTemplate
from changegate.api.v1alpha1.common import ChangeType
from changegate.api.v1alpha1.serviceoncall import ChangePolicy, ServiceOnCall
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.raised import operator_marks
from changegate.core.common import User, timestamp


@dataclass(frozen=True, slots=True)
class Authorities:
    """The groups and users the chart names; read once from settings."""

    change_manager_groups: frozenset[str]
    platform_admin_groups: frozenset[str]
    operator_users: frozenset[str]

    def is_change_manager(self, user: User) -> bool:
        return user.in_any(self.change_manager_groups)

    def may_govern(self, user: User) -> bool:
        return user.in_any(self.change_manager_groups | self.platform_admin_groups)

    def is_platform_admin(self, user: User) -> bool:
        return user.in_any(self.platform_admin_groups)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the webhook answers for a write of one of our kinds."""

    allowed: bool
    message: str = ""
    reason: str = "Accepted"
    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: tuple[str, ...] = ()


# Spec fields that never change after creation (mirrors the CRD's CEL rules).
IMMUTABLE = ("service", "type", "targets", "window", "source")
# Who activated a ChangeTemplate, and when: stamped by the webhook, read by the controller.
ACTIVATED_BY = "changegate.io/activated-by"
ACTIVATED_AT = "changegate.io/activated-at"
# Labels and annotations under this key say whether an (emergency) change was reviewed.
REVIEW = "changegate.io/review"


def refuse(reason: str, message: str) -> Verdict:
    return Verdict(False, message, reason)


Subject = TypeVar("Subject")


def first_verdict(
    rules: Sequence[Callable[[Subject], Verdict | None]], subject: Subject
) -> Verdict:
    """The verdict of the first rule that decides; each chain ends in a rule that always does."""
    return next(verdict for rule in rules if (verdict := rule(subject)) is not None)


def accept(_: object) -> Verdict:
    """The last rule of a chain: nothing refused the write."""
    return Verdict(True)


# -- ChangeRequest: create ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewChange:
    """A ChangeRequest being created: by whom, under which policy, and whether by the operator."""

    change: ChangeRequest
    user: User
    policy: ServicePolicy | None
    operator: bool
    may_review: bool = False  # a change manager (or the operator): may set review state


def no_reviews_on_create(new: NewChange) -> Verdict | None:
    """A change is reviewed after it exists, never born reviewed."""
    if not new.change.spec.reviews:
        return None
    return refuse(
        "ReviewsOnCreate",
        "a new ChangeRequest carries no reviews; a change manager appends one afterwards",
    )


def raised_by_operator(new: NewChange) -> Verdict | None:
    """The operator raises changes on behalf of the person who deployed (break-glass, promotion)."""
    if new.operator and not new.change.spec.approvals:
        return Verdict(True, reason="RaisedByOperator")
    return None


def review_state(change: ChangeRequest) -> dict[tuple[str, str], str]:
    """The review labels and annotations of a change (keys under changegate.io/review)."""
    metadata = change.metadata
    return {
        (where, key): value
        for where, values in (("label", metadata.labels), ("annotation", metadata.annotations))
        for key, value in values.items()
        if key == REVIEW or key.startswith(REVIEW + "-") or key.startswith(REVIEW + ".")
    }


def _review_refusal(user: User) -> Verdict:
    return refuse(
        "ReviewStateByChangeManagers",
        f"the review state of a change (label or annotation {REVIEW}) is set only by change"
        f" managers; {user.username} may not set, change or remove it",
    )


def review_state_on_create(new: NewChange) -> Verdict | None:
    """Nobody but a change manager marks a change as reviewed, not even when raising it."""
    if new.may_review or not review_state(new.change):
        return None
    return _review_refusal(new.user)


def _marks_refusal(user: User) -> Verdict:
    return refuse(
        "OperatorMarks",
        "the labels and annotations that link a change to what raised it (changegate.io/"
        f"raised-for, deployment-record, promoted-from, requester-unverified) are written only"
        f" by the operator; {user.username} may not set, change or remove them",
    )


def operator_marks_on_create(new: NewChange) -> Verdict | None:
    """Nobody but the operator raises a change that claims to be one it raised."""
    if new.operator or not operator_marks(new.change):
        return None
    return _marks_refusal(new.user)


def requester_is_the_writer(new: NewChange) -> Verdict | None:
    requester = new.change.spec.requester
    if requester is None or requester == new.user.username:
        return None
    return refuse(
        "RequesterMismatch",
        f"spec.requester is stamped from your identity: you are {new.user.username}, the body"
        f" names {requester}; leave spec.requester empty",
    )


def no_approvals_on_create(new: NewChange) -> Verdict | None:
    if not new.change.spec.approvals:
        return None
    return refuse(
        "ApprovalsOnCreate",
        "a new ChangeRequest carries no approvals; approvers append theirs afterwards",
    )


def emergency_by_its_group(new: NewChange) -> Verdict | None:
    """Only members of the service's emergency groups raise an emergency change."""
    policy = new.policy
    if new.change.spec.type is not ChangeType.EMERGENCY or (
        policy is not None and policy.is_emergency_member(new.user)
    ):
        return None
    groups = ", ".join(sorted(policy.emergency_groups)) if policy else "none"
    return refuse(
        "NotInEmergencyGroup",
        f"only members of the emergency groups of service {new.change.spec.service} ({groups})"
        " may raise an emergency change",
    )


def _flag_for_review(change: ChangeRequest) -> list[dict[str, Any]]:
    """An emergency change raised by hand is reviewed after the fact, like a break-glass one."""
    if change.spec.type is not ChangeType.EMERGENCY:
        return []
    if not change.metadata.labels:
        return [{"op": "add", "path": "/metadata/labels", "value": {REVIEW: "required"}}]
    return [{"op": "add", "path": "/metadata/labels/changegate.io~1review", "value": "required"}]


def stamp_requester(new: NewChange) -> Verdict:
    return Verdict(
        True,
        reason="RequesterStamped",
        patch=[
            {"op": "add", "path": "/spec/requester", "value": new.user.username},
            # An empty list lets approvers append with a plain JSON patch ("/spec/approvals/-").
            {"op": "add", "path": "/spec/approvals", "value": []},
            *_flag_for_review(new.change),
        ],
    )


# -- ChangeRequest: update --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeEdit:
    """An update of a ChangeRequest, with the phase admission trusts for it before the edit."""

    old: ChangeRequest
    new: ChangeRequest
    user: User
    policy: ServicePolicy | None
    now: datetime
    facts: ChangeFacts  # of the old object
    phase: ChangePhase
    may_review: bool = False  # a change manager (or the operator): may change review state
    operator: bool = False  # the operator's own identity

    @classmethod
    def of(
        cls,
        old: ChangeRequest,
        new: ChangeRequest,
        user: User,
        policy: ServicePolicy | None,
        now: datetime,
        may_review: bool = False,
        operator: bool = False,
    ) -> ChangeEdit:
        facts = ChangeFacts.from_model(old)
        phase = facts.effective_phase(policy)
        return cls(old, new, user, policy, now, facts, phase, may_review, operator)

    @property
    def added(self) -> list[Approval]:
        return self.new.spec.approvals[len(self.old.spec.approvals) :]

    @property
    def approval(self) -> Approval | None:
        """The one approval this edit appends, if it appends exactly one."""
        added = self.added
        return added[0] if len(added) == 1 else None


def review_state_by_change_managers(edit: ChangeEdit) -> Verdict | None:
    """Whether an emergency change was reviewed is the change managers' to say."""
    if edit.may_review or review_state(edit.old) == review_state(edit.new):
        return None
    return _review_refusal(edit.user)


def operator_marks_by_operator(edit: ChangeEdit) -> Verdict | None:
    """The operator's marks stay as it wrote them: nobody else adds, moves or removes one."""
    if edit.operator or operator_marks(edit.old) == operator_marks(edit.new):
        return None
    return _marks_refusal(edit.user)


def requester_immutable(edit: ChangeEdit) -> Verdict | None:
    if edit.new.spec.requester == edit.old.spec.requester:
        return None
    return refuse("RequesterImmutable", "spec.requester cannot be changed")


def immutable_fields(edit: ChangeEdit) -> Verdict | None:
    # The CRD's CEL rules say the same; the webhook must not depend on them, since
    # an approval counts here from the moment it is written.
    moved = [f for f in IMMUTABLE if getattr(edit.old.spec, f) != getattr(edit.new.spec, f)]
    if not moved:
        return None
    return refuse(
        "Immutable",
        f"spec.{', spec.'.join(moved)} cannot be changed; raise a new ChangeRequest instead",
    )


def approvals_append_only(edit: ChangeEdit) -> Verdict | None:
    old = edit.old.spec.approvals
    if edit.new.spec.approvals[: len(old)] == old:
        return None
    return refuse(
        "ApprovalsAppendOnly",
        "approvals can only be appended: existing entries cannot be changed or removed",
    )


def needs_review(change: ChangeRequest) -> bool:
    """An emergency change (raised by hand or after a break-glass rollout) that no change
    manager has reviewed yet: an exception in the compliance report."""
    return change.spec.type is ChangeType.EMERGENCY and not change.spec.reviews


def _added_reviews(edit: ChangeEdit) -> list[Review]:
    return edit.new.spec.reviews[len(edit.old.spec.reviews) :]


def reviews_append_only(edit: ChangeEdit) -> Verdict | None:
    old = edit.old.spec.reviews
    if edit.new.spec.reviews[: len(old)] == old:
        return None
    return refuse(
        "ReviewsAppendOnly",
        "reviews can only be appended: existing entries cannot be changed or removed",
    )


def reviews_by_change_managers(edit: ChangeEdit) -> Verdict | None:
    """Only a change manager reviews a change after the fact (not the operator either)."""
    if not _added_reviews(edit) or (edit.may_review and not edit.operator):
        return None
    return refuse(
        "NotAChangeManager",
        f"only change managers review a change after the fact; {edit.user.username} may not",
    )


def one_review_at_a_time(edit: ChangeEdit) -> Verdict | None:
    if len(_added_reviews(edit)) <= 1:
        return None
    return refuse("OneReviewAtATime", "append one review at a time, as yourself")


def reviews_of_emergencies(edit: ChangeEdit) -> Verdict | None:
    if not _added_reviews(edit) or edit.new.spec.type is ChangeType.EMERGENCY:
        return None
    return refuse(
        "NotAnEmergency",
        f"ChangeRequest {edit.facts.name} is a {edit.new.spec.type.value} change: only emergency"
        " changes are reviewed after the fact",
    )


def review_alone(edit: ChangeEdit) -> Verdict | None:
    """A review changes nothing else in the spec (it passes a frozen spec by itself)."""
    if not _added_reviews(edit):
        return None
    before = edit.old.spec.model_copy(update={"reviews": []}).to_json()
    if before == edit.new.spec.model_copy(update={"reviews": []}).to_json():
        return None
    return refuse(
        "ReviewAlone", "append a review on its own: change nothing else in the same write"
    )


def _marked_reviewed(change: ChangeRequest) -> dict[str, Any]:
    if not change.metadata.labels:
        return {"op": "add", "path": "/metadata/labels", "value": {REVIEW: "done"}}
    return {"op": "add", "path": "/metadata/labels/changegate.io~1review", "value": "done"}


def stamp_review(edit: ChangeEdit) -> Verdict | None:
    """Who reviewed and when, from the authenticated user; the change is marked reviewed."""
    if not _added_reviews(edit):
        return None
    path = f"/spec/reviews/{len(edit.old.spec.reviews)}"
    return Verdict(
        True,
        reason="ReviewStamped",
        patch=[
            {"op": "add", "path": f"{path}/reviewer", "value": edit.user.username},
            {"op": "add", "path": f"{path}/time", "value": timestamp(edit.now)},
            _marked_reviewed(edit.new),
        ],
    )


def cancel_is_final(edit: ChangeEdit) -> Verdict | None:
    if edit.old.spec.cancel and not edit.new.spec.cancel:
        return refuse("CancelIsFinal", "a cancelled change cannot be un-cancelled")
    return None


def too_late_to_cancel(edit: ChangeEdit) -> Verdict | None:
    """A change can be cancelled only before its rollout starts."""
    cancelling = edit.new.spec.cancel and not edit.old.spec.cancel
    started = edit.phase is ChangePhase.IN_PROGRESS or edit.phase in TERMINAL_PHASES
    if not (cancelling and started):
        return None
    return refuse(
        "TooLateToCancel",
        f"ChangeRequest {edit.facts.name} is {edit.phase.value}: it can only be cancelled before"
        " its rollout starts",
    )


def frozen_once_decided(edit: ChangeEdit) -> Verdict | None:
    """Once a change is no longer pending, only spec.cancel may move."""
    if edit.phase is ChangePhase.PENDING:
        return None
    before = edit.old.spec.model_copy(update={"cancel": False}).to_json()
    after = edit.new.spec.model_copy(update={"cancel": False}).to_json()
    if before == after:
        return Verdict(True)
    return refuse(
        "SpecFrozen",
        f"ChangeRequest {edit.facts.name} is {edit.phase.value}: its spec is frozen, only"
        " spec.cancel may be set; raise a new ChangeRequest to change it",
    )


def nothing_to_stamp(edit: ChangeEdit) -> Verdict | None:
    """An edit of a pending change that adds no approval."""
    return None if edit.added else Verdict(True)


def one_approval_at_a_time(edit: ChangeEdit) -> Verdict | None:
    if len(edit.added) <= 1:
        return None
    return refuse("OneApprovalAtATime", "append one approval at a time, as yourself")


def approver_is_the_writer(edit: ChangeEdit) -> Verdict | None:
    """An approval is recorded as the user who writes it; naming anyone else is a forgery."""
    approval = edit.approval
    if approval is None or approval.approver in (None, edit.user.username):
        return None
    return refuse(
        "ApproverMismatch",
        f"an approval is recorded as the user who writes it: you are {edit.user.username},"
        f" the approval names {approval.approver}",
    )


def approvals_where_the_policy_says(edit: ChangeEdit) -> Verdict | None:
    """Under approvalsIn ServiceNow approvals arrive only from there, through the controller;
    otherwise none claims to come from there."""
    approval, policy = edit.approval, edit.policy
    if approval is None:
        return None
    in_sn = policy is not None and policy.approvals_in_servicenow
    if approval.via is not None and not (edit.operator and in_sn):
        return refuse(
            "ViaServiceNowByController",
            "an approval via ServiceNow is recorded only by changegate's controller, and only"
            " for a service whose changePolicy.approvalsIn is ServiceNow",
        )
    if approval.via is None and in_sn:
        return refuse(
            "ApprovalsInServiceNow",
            f"approvals of service {edit.new.spec.service} happen in ServiceNow"
            " (changePolicy.approvalsIn): decide on the change record there",
        )
    return None


def servicenow_approval(edit: ChangeEdit) -> Verdict | None:
    """An approval made in ServiceNow: never by the requester, once per approver, then stamped."""
    approval, policy = edit.approval, edit.policy
    if approval is None or approval.via is None or policy is None:
        return None
    external = approval.external_user or ""
    if not external:
        return refuse("ExternalUserMissing", "an approval via ServiceNow names its approver")
    if policy.identity(external) == edit.new.spec.requester:
        return refuse(
            "SegregationOfDuties",
            f"{external} requested ChangeRequest {edit.facts.name} and cannot approve or reject"
            " it, in ServiceNow or anywhere (segregation of duties)",
        )
    who = f"{external} via {approval.via.value}"
    if who in edit.facts.approvers or who in edit.facts.rejected_by:
        return refuse("AlreadyDecided", f"{who} has already decided on {edit.facts.name}")
    return stamp_approval(edit)


def approvals_need_a_service(edit: ChangeEdit) -> Verdict | None:
    if edit.policy is not None:
        return None
    return refuse(
        "NoServiceOnCall",
        f"no ServiceOnCall declares service {edit.new.spec.service},"
        " so nobody may approve its changes",
    )


def segregation_of_duties(edit: ChangeEdit) -> Verdict | None:
    user = edit.user.username
    if user != edit.new.spec.requester:
        return None
    return refuse(
        "SegregationOfDuties",
        f"{user} requested ChangeRequest {edit.facts.name} and cannot approve or reject it"
        " (segregation of duties)",
    )


def approver_of_the_service(edit: ChangeEdit) -> Verdict | None:
    policy = edit.policy  # None was refused by approvals_need_a_service
    if policy is None or policy.may_approve(edit.user):
        return None
    who = sorted(policy.approver_users) + [f"group {g}" for g in sorted(policy.approver_groups)]
    return refuse(
        "NotAnApprover",
        f"{edit.user.username} is not an approver of service {policy.service}"
        f" (approvers: {', '.join(who) or 'none'})",
    )


def decides_once(edit: ChangeEdit) -> Verdict | None:
    user = edit.user.username
    if user not in edit.facts.approvers and user not in edit.facts.rejected_by:
        return None
    return refuse("AlreadyDecided", f"{user} has already decided on {edit.facts.name}")


def rejection_says_why(edit: ChangeEdit) -> Verdict | None:
    approval = edit.approval
    if approval is None or approval.decision is not ApprovalDecision.REJECTED or approval.comment:
        return None
    return refuse("RejectionNeedsComment", "a rejection needs a comment that says why")


def stamp_approval(edit: ChangeEdit) -> Verdict:
    path = f"/spec/approvals/{len(edit.old.spec.approvals)}"
    return Verdict(
        True,
        reason="ApprovalStamped",
        patch=[
            {"op": "add", "path": f"{path}/approver", "value": edit.user.username},
            {"op": "add", "path": f"{path}/time", "value": timestamp(edit.now)},
        ],
    )


# The reviews of a ChangeRequest, in order: the first rule that decides wins.
CREATE_RULES: tuple[Callable[[NewChange], Verdict | None], ...] = (
    no_reviews_on_create,
    raised_by_operator,
    review_state_on_create,
    operator_marks_on_create,
    requester_is_the_writer,
    no_approvals_on_create,
    emergency_by_its_group,
    stamp_requester,
)
UPDATE_RULES: tuple[Callable[[ChangeEdit], Verdict | None], ...] = (
    review_state_by_change_managers,
    operator_marks_by_operator,
    requester_immutable,
    immutable_fields,
    approvals_append_only,
    reviews_append_only,
    reviews_by_change_managers,
    one_review_at_a_time,
    reviews_of_emergencies,
    review_alone,
    stamp_review,
    cancel_is_final,
    too_late_to_cancel,
    frozen_once_decided,
    nothing_to_stamp,
    one_approval_at_a_time,
    approver_is_the_writer,
    approvals_where_the_policy_says,
    approvals_need_a_service,
    servicenow_approval,
    segregation_of_duties,
    approver_of_the_service,
    decides_once,
    rejection_says_why,
    stamp_approval,
)


def review_change_request(
    operation: str,
    old: ChangeRequest | None,
    new: ChangeRequest,
    user: User,
    policy: ServicePolicy | None,
    now: datetime,
    *,
    operator: bool = False,
    may_review: bool = False,
) -> Verdict:
    """Stamp the requester and approvals; enforce segregation of duties and the frozen spec.

    The operator itself raises changes after the fact (a break-glass rollout's
    emergency change, a promotion from pre-production) on behalf of the person
    who deployed: it alone may name a requester other than itself. Only those
    who `may_review` (change managers, the operator) touch the review state.
    """
    if operation == "CREATE" or old is None:
        return first_verdict(CREATE_RULES, NewChange(new, user, policy, operator, may_review))
    edit = ChangeEdit.of(old, new, user, policy, now, may_review, operator)
    return first_verdict(UPDATE_RULES, edit)


# -- ChangeTemplate -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateEdit:
    """A write of a ChangeTemplate (old is None on create)."""

    old: ChangeTemplate | None
    new: ChangeTemplate
    user: User
    authorities: Authorities
    now: datetime

    @property
    def was_active(self) -> bool:
        return bool(self.old and self.old.spec.active)

    @property
    def activating(self) -> bool:
        return self.new.spec.active and not self.was_active

    @property
    def spec_edited(self) -> bool:
        """An active template stays active and its spec (apart from `active`) changed."""
        if self.old is None or not (self.was_active and self.new.spec.active):
            return False
        before = self.old.spec.model_copy(update={"active": True}).to_json()
        return before != self.new.spec.model_copy(update={"active": True}).to_json()

    @property
    def by_change_manager(self) -> bool:
        return self.authorities.is_change_manager(self.user)


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


def only_change_managers_activate(edit: TemplateEdit) -> Verdict | None:
    if not edit.activating or edit.authorities.is_change_manager(edit.user):
        return None
    return refuse(
        "NotAChangeManager",
        f"only change managers ({', '.join(sorted(edit.authorities.change_manager_groups))})"
        f" may activate a ChangeTemplate; {edit.user.username} may not",
    )


def _activation_stamp(edit: TemplateEdit) -> list[dict[str, Any]]:
    wanted: dict[str, str | None] = {
        ACTIVATED_BY: edit.user.username,
        ACTIVATED_AT: timestamp(edit.now),
    }
    return _set_annotations(edit.new.metadata.annotations, wanted)


def _stamp_kept(edit: TemplateEdit) -> list[dict[str, Any]]:
    """Patch ops that put back the activation stamp the stored template carries."""
    old = edit.old.metadata.annotations if edit.old else {}
    kept = {k: old.get(k) for k in (ACTIVATED_BY, ACTIVATED_AT)}
    current = edit.new.metadata.annotations
    if all(current.get(k) == v for k, v in kept.items()):
        return []
    return _set_annotations(current, kept)


def stamp_activation(edit: TemplateEdit) -> Verdict | None:
    """Who activated the template, and when, from the authenticated user."""
    if not edit.activating:
        return None
    return Verdict(True, reason="Activated", patch=_activation_stamp(edit))


def activation_stamp_kept(edit: TemplateEdit) -> Verdict | None:
    """Who activated the template is evidence: nobody edits it by hand."""
    patch = _stamp_kept(edit)
    return Verdict(True, reason="StampRestored", patch=patch) if patch else None


def edit_deactivates(edit: TemplateEdit) -> Verdict | None:
    """An edit of an active template's spec by anyone but a change manager deactivates it,
    whatever else the same write does (the activation stamp is put back as it was)."""
    if not edit.spec_edited or edit.by_change_manager:
        return None
    return Verdict(
        True,
        reason="Deactivated",
        patch=[{"op": "replace", "path": "/spec/active", "value": False}, *_stamp_kept(edit)],
        warnings=(
            "the template's spec changed, so it is no longer active; a change manager"
            " must activate it again",
        ),
    )


def change_manager_edit_reactivates(edit: TemplateEdit) -> Verdict | None:
    """A change manager's edit of an active template activates it anew, as them, now:
    the controller records the (new) selector scope for the new activation."""
    if not edit.spec_edited:
        return None
    return Verdict(True, reason="Reactivated", patch=_activation_stamp(edit))


# The review of a ChangeTemplate, in order: the first rule that decides wins.
TEMPLATE_RULES: tuple[Callable[[TemplateEdit], Verdict | None], ...] = (
    only_change_managers_activate,
    stamp_activation,
    edit_deactivates,
    change_manager_edit_reactivates,
    activation_stamp_kept,
    accept,
)


def review_change_template(
    operation: str,
    old: ChangeTemplate | None,
    new: ChangeTemplate,
    user: User,
    authorities: Authorities,
    now: datetime,
) -> Verdict:
    """Only a change manager activates a template; anyone else's edit of its spec deactivates it."""
    return first_verdict(TEMPLATE_RULES, TemplateEdit(old, new, user, authorities, now))


# -- ServiceOnCall --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claims:
    """What the webhook found out about the namespaces and service name a write claims.

    Gathered by the handler (from its ServiceOnCall cache and SubjectAccessReviews)
    for what the write newly claims; ServiceOnCalls of namespaces being deleted
    do not count.
    """

    # "namespace/name" of other ServiceOnCalls that declare the same service name.
    same_service: tuple[str, ...] = ()
    # namespace -> "namespace/name" of another ServiceOnCall whose production it is
    # (claimed as any environment), or that lists it (claimed as production).
    taken: Mapping[str, str] = field(default_factory=dict)
    # Newly claimed namespaces where the writer may not update Deployments.
    without_rights: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ServiceEdit:
    """A write of a ServiceOnCall: old is None on create, new is None on delete."""

    old: ServiceOnCall | None
    new: ServiceOnCall | None
    user: User
    authorities: Authorities
    namespace_terminating: bool
    claims: Claims = Claims()


# A new service's policy may be declared by its team when it is no weaker than this.
DEFAULT_POLICY = ChangePolicy()


def claimed_namespaces(old: ServiceOnCall | None, new: ServiceOnCall | None) -> dict[str, bool]:
    """Namespace -> production, for what `new` claims that `old` did not (or not so)."""
    before = {(e.namespace, e.production) for e in old.spec.environments} if old else set()
    after = {(e.namespace, e.production) for e in new.spec.environments} if new else set()
    return {namespace: production for namespace, production in after - before}


def _policy_without_freezes(soc: ServiceOnCall) -> dict[str, Any]:
    return soc.spec.change_policy.model_copy(update={"freezes": []}).to_json()


def _environments(soc: ServiceOnCall) -> list[dict[str, Any]]:
    return [e.to_json() for e in soc.spec.environments]


def _weakened_freezes(old: ServiceOnCall, new: ServiceOnCall) -> list[str]:
    """Names of freezes removed, shortened or narrowed to fewer change types."""
    after = {f.name: f for f in new.spec.change_policy.freezes}
    weakened = []
    for freeze in old.spec.change_policy.freezes:
        kept = after.get(freeze.name)
        if (
            kept is None
            or kept.start_time > freeze.start_time
            or kept.end_time < freeze.end_time
            or not set(freeze.change_types) <= set(kept.change_types)
        ):
            weakened.append(freeze.name)
    return weakened


def governed_fields_changed(old: ServiceOnCall, new: ServiceOnCall) -> list[str]:
    """The governed fields an update changes; a freeze added or lengthened is no change."""
    changed = []
    before, after = _policy_without_freezes(old), _policy_without_freezes(new)
    changed += [
        f"spec.changePolicy.{k}"
        for k in sorted(before.keys() | after.keys())
        if before.get(k) != after.get(k)
    ]
    weakened = _weakened_freezes(old, new)
    if weakened:
        changed.append(
            f"spec.changePolicy.freezes ({', '.join(weakened)}: removed or shortened;"
            " a team may only add a freeze or lengthen one)"
        )
    if _environments(old) != _environments(new):
        changed.append("spec.environments")
    return changed


def weaker_than_default(new: ServiceOnCall) -> list[str]:
    """What a new ServiceOnCall declares beyond what its team may declare alone."""
    policy = new.spec.change_policy
    beyond = []
    if policy.approvers.users or policy.approvers.groups:
        beyond.append("spec.changePolicy.approvers")
    if policy.emergency_groups:
        beyond.append("spec.changePolicy.emergencyGroups")
    if policy.approval_validity_seconds > DEFAULT_POLICY.approval_validity_seconds:
        beyond.append(
            "spec.changePolicy.approvalValiditySeconds (above"
            f" {DEFAULT_POLICY.approval_validity_seconds})"
        )
    return beyond


def _governors(authorities: Authorities) -> str:
    groups = sorted(authorities.change_manager_groups | authorities.platform_admin_groups)
    return f"change managers or platform administrators ({', '.join(groups)})"


def namespace_going_away(edit: ServiceEdit) -> Verdict | None:
    """The deletion of a namespace must never hang on us."""
    if edit.new is None and edit.namespace_terminating:
        return Verdict(True, reason="NamespaceTerminating")
    return None


def service_name_unique(edit: ServiceEdit) -> Verdict | None:
    """Changes, templates and records name the service: one ServiceOnCall per name."""
    if edit.new is None or not edit.claims.same_service:
        return None
    return refuse(
        "ServiceNameTaken",
        f"service {edit.new.spec.service.name} is already declared by ServiceOnCall"
        f" {', '.join(edit.claims.same_service)}; service names are unique in the cluster",
    )


def namespace_listed_once(edit: ServiceEdit) -> Verdict | None:
    """One entry per namespace: a second entry would decide which environment a rollout is."""
    if edit.new is None:
        return None
    namespaces = [e.namespace for e in edit.new.spec.environments]
    twice = sorted({ns for ns in namespaces if namespaces.count(ns) > 1})
    if not twice:
        return None
    return refuse(
        "NamespaceListedTwice",
        f"spec.environments lists namespace {', '.join(twice)} more than once;"
        " each namespace is one environment of a service",
    )


def production_of_one_service(edit: ServiceEdit) -> Verdict | None:
    """A production namespace belongs to exactly one ServiceOnCall."""
    if not edit.claims.taken:
        return None
    taken = "; ".join(
        f"namespace {ns} is already claimed by ServiceOnCall {owner}"
        for ns, owner in sorted(edit.claims.taken.items())
    )
    return refuse(
        "NamespaceTaken",
        f"{taken}: a namespace is production for at most one ServiceOnCall, and no other"
        " ServiceOnCall lists it",
    )


def claims_need_rights(edit: ServiceEdit) -> Verdict | None:
    """Claiming a namespace needs the right to deploy there, or a platform administrator."""
    missing = edit.claims.without_rights
    if not missing or edit.authorities.is_platform_admin(edit.user):
        return None
    return refuse(
        "NoRightsInNamespace",
        f"{edit.user.username} may not update Deployments in namespace"
        f" {', '.join(sorted(missing))}, so may not claim it as an environment; a platform"
        f" administrator ({', '.join(sorted(edit.authorities.platform_admin_groups))}) may",
    )


def approvals_place_by_change_managers(edit: ServiceEdit) -> Verdict | None:
    """Where approvals happen (changePolicy.approvalsIn) is set or changed by change managers only."""
    before = edit.old.spec.change_policy.approvals_in if edit.old else None
    after = edit.new.spec.change_policy.approvals_in if edit.new else None
    default = ChangePolicy().approvals_in
    if before == after or (edit.old is None and after == default) or edit.new is None:
        return None
    if edit.authorities.is_change_manager(edit.user):
        return None
    return refuse(
        "NotAChangeManager",
        "only change managers"
        f" ({', '.join(sorted(edit.authorities.change_manager_groups))}) may set or change"
        f" spec.changePolicy.approvalsIn; {edit.user.username} may not",
    )


def enforcement_by_governance(edit: ServiceEdit) -> Verdict | None:
    """Audit-only mode admits what the gate refuses: only governance sets or changes it."""
    if edit.new is None or edit.authorities.may_govern(edit.user):
        return None
    old = edit.old.spec.change_policy if edit.old else DEFAULT_POLICY
    before, after = old.enforcement, edit.new.spec.change_policy.enforcement
    if before is after:
        return None
    return refuse(
        "EnforcementByGovernance",
        f"only {_governors(edit.authorities)} may set spec.changePolicy.enforcement"
        f" ({before.value} to {after.value}): in Audit, rollouts no approved change covers are"
        f" admitted and only reported; {edit.user.username} may not",
    )


def governance_untouched(edit: ServiceEdit) -> Verdict | None:
    """An update that leaves policy and environments alone (or only adds or lengthens freezes)."""
    if edit.old is None or edit.new is None:
        return None
    return None if governed_fields_changed(edit.old, edit.new) else Verdict(True)


def by_governance(edit: ServiceEdit) -> Verdict | None:
    return Verdict(True) if edit.authorities.may_govern(edit.user) else None


def adds_governance_only(edit: ServiceEdit) -> Verdict | None:
    """A new ServiceOnCall no weaker than the defaults only adds governance.

    It names no approvers (its production falls to the chart's default approvers),
    no emergency groups, and keeps approvals valid no longer than the default.
    """
    if edit.old is not None or edit.new is None or weaker_than_default(edit.new):
        return None
    return Verdict(True)


def refuse_governance_change(edit: ServiceEdit) -> Verdict:
    if edit.new is None:
        what = "delete a ServiceOnCall, which takes its service out of governance"
    elif edit.old is None:
        what = f"create a ServiceOnCall that declares {', '.join(weaker_than_default(edit.new))}"
    else:
        what = f"change {', '.join(governed_fields_changed(edit.old, edit.new))}"
    return refuse(
        "GovernanceChange",
        f"only {_governors(edit.authorities)} may {what}; {edit.user.username} may not",
    )


# The review of a ServiceOnCall, in order: the first rule that decides wins.
SERVICE_RULES: tuple[Callable[[ServiceEdit], Verdict | None], ...] = (
    namespace_going_away,
    service_name_unique,
    namespace_listed_once,
    production_of_one_service,
    claims_need_rights,
    enforcement_by_governance,
    approvals_place_by_change_managers,
    governance_untouched,
    by_governance,
    adds_governance_only,
    refuse_governance_change,
)


def review_service_on_call(
    old: ServiceOnCall | None,
    new: ServiceOnCall | None,
    user: User,
    authorities: Authorities,
    *,
    namespace_terminating: bool = False,
    claims: Claims | None = None,
) -> Verdict:
    """Change policy and environments change only by governance (a team may add or lengthen
    a freeze); a service name and a production namespace belong to one ServiceOnCall.

    `new` is None on delete; a delete while the namespace terminates always passes.
    """
    edit = ServiceEdit(old, new, user, authorities, namespace_terminating, claims or Claims())
    return first_verdict(SERVICE_RULES, edit)


def review_change_request_deletion(
    change: ChangeRequest,
    user: User,
    authorities: Authorities,
    *,
    namespace_terminating: bool = False,
) -> Verdict:
    """A change still awaiting review is the record of a break-glass or emergency: only
    governance (or the operator) deletes it; the namespace's own deletion never hangs on it."""
    pending = (change.metadata.labels or {}).get(REVIEW) == "required"
    if (
        not pending
        or namespace_terminating
        or user.username in authorities.operator_users
        or authorities.may_govern(user)
    ):
        return Verdict(True)
    return refuse(
        "ReviewPending",
        f"ChangeRequest {change.metadata.name} awaits a change manager's review"
        f" ({REVIEW}=required); only change managers or platform admins may delete it",
    )


# -- DeploymentRecord -------------------------------------------------------------


def review_deployment_record(user: User, authorities: Authorities) -> Verdict:
    if user.username in authorities.operator_users:
        return Verdict(True)
    return refuse(
        "EvidenceIsReadOnly",
        f"DeploymentRecords are evidence written only by the changegate controller;"
        f" {user.username} may not write or delete them",
    )
