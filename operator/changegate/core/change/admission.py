"""The admission decision for workload rollouts: allow or deny, why, and what to record.

A pure function of (request, service policy, changes, clock). The webhook
gathers these from its in-memory indexes, calls `decide_rollout`, and turns
the Decision into an AdmissionReview response, an Event and metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from changegate.api.v1alpha1.changerequest import ChangePhase
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.images import image_matches
from changegate.core.change.workloads import Workload, is_restart, is_rollout, only_images_changed
from changegate.core.common import User

BREAK_GLASS = "changegate.io/break-glass"
CHANGE_ANNOTATION = "changegate.io/change-request"
DEPLOYER_ANNOTATION = "changegate.io/deployer"
ADMISSION_ANNOTATION = "changegate.io/admission"
ADMITTED_AT_ANNOTATION = "changegate.io/admitted-at"
# Annotations only the webhook writes; a user's edit of them is undone.
STAMPED = (CHANGE_ANNOTATION, DEPLOYER_ANNOTATION, ADMISSION_ANNOTATION, ADMITTED_AT_ANNOTATION)


class Reason(StrEnum):
    """Why a workload request was allowed or denied; a label of the decisions metric."""

    UNGOVERNED = "Ungoverned"
    NOT_A_ROLLOUT = "NotARollout"
    APPROVED_CHANGE = "ApprovedChange"
    RESTART = "Restart"
    ROLLBACK = "Rollback"
    BREAK_GLASS = "BreakGlass"
    NO_SERVICE = "NoServiceOnCall"
    NO_CHANGE = "NoApprovedChange"
    FREEZE = "Freeze"
    BREAK_GLASS_REFUSED = "BreakGlassRefused"


@dataclass(frozen=True, slots=True)
class WorkloadRequest:
    """One admission request for a Deployment, StatefulSet or DaemonSet."""

    operation: str  # CREATE or UPDATE
    new: Workload
    old: Workload | None
    user: User
    namespace_labelled: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason
    message: str
    near_misses: tuple[str, ...] = ()
    fix: str | None = None
    change: ChangeFacts | None = None
    service: ServicePolicy | None = None
    # Annotations to set on the workload (the mutating webhook applies them).
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def recorded(self) -> bool:
        """Whether this decision is evidence worth an Event and an audit line."""
        return not self.allowed or self.reason in (
            Reason.APPROVED_CHANGE,
            Reason.RESTART,
            Reason.ROLLBACK,
            Reason.BREAK_GLASS,
        )

    def explain(self) -> str:
        """The refusal as one line, then the near misses, then the fix."""
        lines = [self.message]
        lines += [f"  - {miss}" for miss in self.near_misses]
        if self.fix:
            lines.append(f"  To proceed: {self.fix}")
        return "\n".join(lines)


def _allow(reason: Reason, message: str, **kw: object) -> Decision:
    return Decision(True, reason, message, **kw)  # type: ignore[arg-type]


def _deny(reason: Reason, message: str, **kw: object) -> Decision:
    return Decision(False, reason, message, **kw)  # type: ignore[arg-type]


def _stamp(
    request: WorkloadRequest, how: Reason, now: datetime, change: str | None
) -> dict[str, str]:
    # Start from the old values, so that a stamp this decision does not set (the change
    # of a restart or a break-glass) keeps its old value instead of one the user wrote.
    stamp = _kept_stamps(request) | {
        DEPLOYER_ANNOTATION: request.user.username,
        ADMISSION_ANNOTATION: how.value,
        ADMITTED_AT_ANNOTATION: now.isoformat().replace("+00:00", "Z"),
    }
    if change:
        stamp[CHANGE_ANNOTATION] = change
    return stamp


def _kept_stamps(request: WorkloadRequest) -> dict[str, str]:
    """On a request that is not a rollout, the webhook's annotations keep their old values."""
    old = request.old.annotations if request.old else {}
    new = request.new.annotations
    return {k: old[k] for k in STAMPED if k in old and new.get(k) != old[k]} | {
        k: "" for k in STAMPED if k in new and k not in old
    }


def image_mismatches(
    change: ChangeFacts, workload: Workload, previous: Workload | None = None
) -> list[str]:
    """Containers whose new image is not the one the change declared.

    A container the change does not list must keep the image it had in `previous`
    (the workload before the request); on a new workload every container is declared.
    """
    target = change.target(workload.kind, workload.name)
    if target is None:
        return [f"{workload.kind}/{workload.name} is not a target"]
    declared = {container: (image, digest) for container, image, digest in target.images}
    kept = previous.images if previous else {}
    problems = []
    for container, actual in sorted(workload.images.items()):
        if container not in declared:
            if kept.get(container) != actual:
                problems.append(f"container {container}: not declared (actual {actual})")
            continue
        image, digest = declared[container]
        if not image_matches(image, actual, digest):
            problems.append(f"container {container}: expected {image}, actual {actual}")
    return problems


def _window_problem(change: ChangeFacts, now: datetime) -> str | None:
    if change.window_start and now < change.window_start:
        return f"window opens at {change.window_start.isoformat()}"
    if change.window_end and now >= change.window_end:
        return f"window closed at {change.window_end.isoformat()}"
    if change.expiration and now >= change.expiration:
        return f"approval expired at {change.expiration.isoformat()}"
    return None


def _fix_command(workload: Workload, service: ServicePolicy, pending: ChangeFacts | None) -> str:
    """The command that would let this rollout through (the CLI is also `kubectl changegate`)."""
    if pending is not None:
        approvers = sorted(service.approver_users) + [
            f"a member of {g}" for g in sorted(service.approver_groups)
        ]
        return (
            f"ask {' or '.join(approvers) or 'an approver'} to approve it:"
            f" kubectl changegate approve -n {pending.namespace} {pending.name}"
            f" (or kubectl -n {pending.namespace} patch changerequest {pending.name} --type=json -p"
            """ '[{"op":"add","path":"/spec/approvals/-","value":{"decision":"Approved"}}]')"""
        )
    images = " ".join(f"--image {c}={i}" for c, i in sorted(workload.images.items()))
    return (
        f"raise a ChangeRequest and have it approved: kubectl changegate request"
        f" -n {workload.namespace} --service {service.service}"
        f" --target {workload.kind}/{workload.name} {images}"
    )


def _is_rollback(
    request: WorkloadRequest, service: ServicePolicy, changes: Iterable[ChangeFacts]
) -> ChangeFacts | None:
    """A change that already rolled these exact images out on this workload.

    Only the images may move: the statuses record images, not whole pod templates,
    so any other edit of the template is a new change, not a rollback.
    """
    workload = request.new
    deployed = [
        c
        for c in changes
        if c.service == service.service and (workload.kind, workload.name) in c.deployed
    ]
    # Comparing whole templates costs more than the rest of the decision: do it last.
    if not deployed or not only_images_changed(request.old, workload):
        return None
    return next((c for c in deployed if not image_mismatches(c, workload, request.old)), None)


def decide_rollout(
    request: WorkloadRequest,
    service: ServicePolicy | None,
    changes: Iterable[ChangeFacts],
    now: datetime,
) -> Decision:
    """Allow or deny a workload request in a namespace, and say why."""
    workload = request.new
    if service is None:
        if request.namespace_labelled and is_rollout(request.old, workload):
            return _deny(
                Reason.NO_SERVICE,
                f"namespace {workload.namespace} is marked governed, but no ServiceOnCall declares"
                " it as a production environment, so no change can be approved for it",
                fix="declare the namespace in a ServiceOnCall's spec.environments with"
                " production: true, or remove the changegate.io/governed label",
            )
        return _allow(Reason.UNGOVERNED, f"namespace {workload.namespace} is not governed")

    if not is_rollout(request.old, workload):
        return _allow(
            Reason.NOT_A_ROLLOUT,
            "the pod template did not change",
            service=service,
            annotations=_kept_stamps(request),
        )

    # Targets live in the ChangeRequest's namespace: a change authorises only those.
    changes = [
        c for c in changes if c.service == service.service and c.namespace == workload.namespace
    ]
    label = f"{workload.kind}/{workload.name} in {workload.namespace}"

    glass = workload.annotations.get(BREAK_GLASS, "").strip()
    old_glass = request.old.annotations.get(BREAK_GLASS, "") if request.old else ""
    if glass and glass != old_glass:
        if service.is_emergency_member(request.user):
            return _allow(
                Reason.BREAK_GLASS,
                f"break-glass rollout of {label} by {request.user.username}: {glass}",
                service=service,
                annotations=_stamp(request, Reason.BREAK_GLASS, now, None),
            )
        return _deny(
            Reason.BREAK_GLASS_REFUSED,
            f"break-glass refused: {request.user.username} is not in an emergency group of"
            f" service {service.service} ({', '.join(sorted(service.emergency_groups)) or 'none'})",
            service=service,
            fix="ask a member of the emergency group, or raise a change",
        )

    if service.allow_restart and is_restart(request.old, workload):
        return _allow(
            Reason.RESTART,
            f"rollout restart of {label} allowed by the policy of {service.service}",
            service=service,
            annotations=_stamp(request, Reason.RESTART, now, None),
        )

    near_misses: list[str] = []
    pending: ChangeFacts | None = None
    frozen = 0  # near misses that only a freeze stopped
    for change in sorted(changes, key=lambda c: c.name):
        if change.target(workload.kind, workload.name) is None:
            continue
        phase = change.effective_phase(service)
        ref = f"ChangeRequest {change.name}"
        if phase not in (ChangePhase.APPROVED, ChangePhase.IN_PROGRESS):
            if phase is ChangePhase.PENDING:
                pending = pending or change
                count = f"{len(change.approvers)} of {service.required_approvals}"
                near_misses.append(f"{ref}: pending approval {count}")
            else:
                near_misses.append(f"{ref}: {phase.value}")
            continue
        window = _window_problem(change, now)
        if window:
            near_misses.append(f"{ref}: {window}")
            continue
        mismatches = image_mismatches(change, workload, request.old)
        if mismatches:
            near_misses.append(f"{ref}: image mismatch: {'; '.join(mismatches)}")
            continue
        freeze = service.freeze_at(now, change.type)
        if freeze:
            frozen += 1
            near_misses.append(
                f"{ref}: freeze {freeze.name} until {freeze.end.isoformat()}: {freeze.reason}"
            )
            continue
        return _allow(
            Reason.APPROVED_CHANGE,
            f"{label} admitted under {ref} ({change.type.value})",
            change=change,
            service=service,
            annotations=_stamp(request, Reason.APPROVED_CHANGE, now, change.name),
        )

    if service.allow_rollback and request.old is not None:
        previous = _is_rollback(request, service, changes)
        if previous is not None:
            freeze = service.freeze_at(now, previous.type)
            if freeze is None:
                return _allow(
                    Reason.ROLLBACK,
                    f"rollback of {label} to the images deployed under ChangeRequest"
                    f" {previous.name}, allowed by the policy of {service.service}",
                    change=previous,
                    service=service,
                    annotations=_stamp(request, Reason.ROLLBACK, now, previous.name),
                )

    freeze = next((f for f in service.freezes if f.start <= now < f.end), None)
    if freeze and not near_misses:
        frozen += 1
        near_misses.append(f"freeze {freeze.name} until {freeze.end.isoformat()}: {freeze.reason}")
    # Freeze is the reason only when nothing but a freeze stands in the way.
    reason = Reason.FREEZE if near_misses and frozen == len(near_misses) else Reason.NO_CHANGE
    if not near_misses:
        near_misses.append(f"no ChangeRequest of service {service.service} targets {label}")
    return _deny(
        reason,
        f"changegate: rollout of {label} refused: no approved ChangeRequest of service"
        f" {service.service} covers it",
        near_misses=tuple(near_misses),
        fix=_fix_command(workload, service, pending),
        service=service,
    )
