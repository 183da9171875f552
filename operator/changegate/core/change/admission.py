"""The admission decision for workload rollouts: allow or deny, why, and what to record.

A pure function of (request, service policy, changes, clock), written as a chain
of small named rules (`RULES`, in order; the first that decides wins). The
webhook gathers the inputs from its in-memory indexes, calls `decide_rollout`,
and turns the Decision into an AdmissionReview response, an Event and metrics.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from changegate.api.v1alpha1.changerequest import ChangePhase
from changegate.api.v1alpha1.common import ChangeType
from changegate.core.change.controllers import acting_for_owner
from changegate.core.change.coverage import rollback_source, template_problem
from changegate.core.change.facts import ChangeFacts, FreezeFacts, ServicePolicy
from changegate.core.change.images import image_matches
from changegate.core.change.workloads import (
    Workload,
    is_restart,
    is_rollout,
    only_images_changed,
    releases,
)
from changegate.core.common import User, timestamp

BREAK_GLASS = "changegate.io/break-glass"
CHANGE_ANNOTATION = "changegate.io/change-request"
DEPLOYER_ANNOTATION = "changegate.io/deployer"
ADMISSION_ANNOTATION = "changegate.io/admission"
ADMITTED_AT_ANNOTATION = "changegate.io/admitted-at"
# On a rollout admitted in audit-only mode: why enforcement would have refused it.
AUDIT_ANNOTATION = "changegate.io/audit-refusal"
# On a StatefulSet rollout admitted with a partition: the partition it was admitted at, so
# each lowering is evidence of its own and a later raise of the partition is none.
PARTITION_ANNOTATION = "changegate.io/admitted-partition"
# Annotations only the webhook writes; a user's edit of them is undone.
STAMPED = (
    CHANGE_ANNOTATION,
    DEPLOYER_ANNOTATION,
    ADMISSION_ANNOTATION,
    ADMITTED_AT_ANNOTATION,
    AUDIT_ANNOTATION,
    PARTITION_ANNOTATION,
)
# What kubectl prints before the refusal a rollout admitted in audit-only mode would have had.
AUDIT_PREFIX = "changegate (audit mode): this rollout would be refused: "
AUDIT_REASON_LIMIT = 1024  # DeploymentRecord spec.auditReason's maxLength


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
    INCIDENT_FREEZE = "IncidentFreeze"
    BREAK_GLASS_REFUSED = "BreakGlassRefused"
    CONTROLLER = "ControllerWrite"
    DEBUG = "EphemeralContainer"
    DEBUG_REFUSED = "EphemeralContainerRefused"
    EXEC = "Exec"
    EXEC_REFUSED = "ExecRefused"
    GOVERNED_LABEL_KEPT = "GovernedLabelKept"
    GOVERNED_LABEL_REMOVED = "GovernedLabelRemoved"
    AUDIT_ONLY = "AuditOnly"
    ENFORCEMENT_CHANGED = "EnforcementChanged"
    ENFORCEMENT_KEPT = "EnforcementKept"


@dataclass(frozen=True, slots=True)
class WorkloadRequest:
    """One admission request for a Deployment, StatefulSet or DaemonSet."""

    operation: str  # CREATE or UPDATE
    new: Workload
    old: Workload | None
    user: User
    namespace_labelled: bool = False
    # The operator's own namespace, never governed (nor is kube-system).
    operator_namespace: str = ""
    # The namespace is governed in audit-only mode (core/change/namespaces.py).
    namespace_audit: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """What admission decided for one workload request, and why."""

    allowed: bool
    reason: Reason
    message: str
    near_misses: tuple[str, ...] = ()
    fix: str | None = None
    change: ChangeFacts | None = None
    service: ServicePolicy | None = None
    # Annotations to set on the workload (the mutating webhook applies them).
    annotations: dict[str, str] = field(default_factory=dict)
    # In audit-only mode: the refusal enforcement would have made, which this admits.
    refusal: Decision | None = None

    @property
    def recorded(self) -> bool:
        """Whether this decision is evidence worth an Event and an audit line."""
        return not self.allowed or self.reason in (
            Reason.APPROVED_CHANGE,
            Reason.RESTART,
            Reason.ROLLBACK,
            Reason.BREAK_GLASS,
            Reason.DEBUG,
            Reason.EXEC,
            Reason.GOVERNED_LABEL_REMOVED,
            Reason.ENFORCEMENT_CHANGED,
            Reason.AUDIT_ONLY,
        )

    def explain(self) -> str:
        """The refusal as one line, then the near misses, then the fix."""
        return "\n".join(self.lines())

    def lines(self) -> list[str]:
        lines = [self.message]
        lines += [f"  - {miss}" for miss in self.near_misses]
        if self.fix:
            lines.append(f"  To proceed: {self.fix}")
        return lines

    @property
    def warnings(self) -> tuple[str, ...]:
        """What kubectl prints for a rollout admitted in audit-only mode: the refusal it escaped.

        One warning per line of the refusal: the API server drops a warning that holds
        a control character, a newline included.
        """
        if self.refusal is None:
            return ()
        first, *rest = self.refusal.lines()
        return (AUDIT_PREFIX + first, *rest)

    @property
    def audit_reason(self) -> str:
        """Why enforcement would refuse it, for the workload's stamp and its DeploymentRecord."""
        if self.refusal is None:
            return ""
        refusal = self.refusal
        text = "; ".join([f"{refusal.reason.value}: {refusal.message}", *refusal.near_misses])
        return text[:AUDIT_REASON_LIMIT]


@dataclass(frozen=True, slots=True)
class Rollout:
    """What every rule reads: the request, its service's policy, the indexed changes, now."""

    request: WorkloadRequest
    service: ServicePolicy | None
    changes: tuple[ChangeFacts, ...]  # as the index found them: any service, any order
    now: datetime
    # (service, incident) of each open major Incident with spec.freezeChanges, as plain values:
    # the change half knows nothing of incidents but these names.
    incident_freezes: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        workload = self.request.new
        return f"{workload.kind}/{workload.name} in {workload.namespace}"

    @property
    def audit_mode(self) -> bool:
        """Audit-only: the namespace says so, or the service's changePolicy.enforcement does."""
        return self.request.namespace_audit or (
            self.service is not None and self.service.audit_only
        )

    def ours(self) -> list[ChangeFacts]:
        """The service's changes in the workload's namespace, by name.

        A change authorises only targets in its own namespace, and the first by name wins.
        Computed when a rule asks, not up front: most requests are not rollouts.
        """
        if self.service is None:
            return []
        service, namespace = self.service.service, self.request.new.namespace
        ours = [c for c in self.changes if c.service == service and c.namespace == namespace]
        return sorted(ours, key=lambda c: c.name)

    def targeting(self) -> list[ChangeFacts]:
        """Our changes that name this workload as a target, by name."""
        workload = self.request.new
        return [c for c in self.ours() if c.target(workload.kind, workload.name) is not None]


Rule = Callable[[Rollout], Decision | None]


def governed(rule: Callable[[Rollout, ServicePolicy], Decision | None]) -> Rule:
    """A rule for namespaces a ServiceOnCall governs; it says nothing of any other."""

    @functools.wraps(rule)
    def checked(rollout: Rollout) -> Decision | None:
        return None if rollout.service is None else rule(rollout, rollout.service)

    return checked


# -- the rules, in the order RULES runs them ----------------------------------


def exempt_namespace(rollout: Rollout) -> Decision | None:
    """kube-system and the operator's own namespace are never governed."""
    namespace = rollout.request.new.namespace
    # An unset operator namespace (as in tests) must not exempt a namespace-less body.
    own = rollout.request.operator_namespace
    if namespace == "kube-system" or (own and namespace == own):
        return _ungoverned(namespace)
    return None


def controller_write(rollout: Rollout) -> Decision | None:
    """A workload controller writing for the owner it manages: the owner's write was decided."""
    request = rollout.request
    if not acting_for_owner(request.user, request.new):
        return None
    owner_kind, owner = request.new.controller or ("", "")
    return Decision(
        True,
        Reason.CONTROLLER,
        f"{rollout.label} written by {request.user.username} for {owner_kind}/{owner}",
    )


def ungoverned(rollout: Rollout) -> Decision | None:
    """No ServiceOnCall: pass, unless the namespace is labelled governed and this is a rollout."""
    request = rollout.request
    workload = request.new
    if rollout.service is not None:
        return None
    if request.namespace_labelled and is_rollout(request.old, workload):
        return Decision(
            False,
            Reason.NO_SERVICE,
            f"namespace {workload.namespace} is marked governed, but no ServiceOnCall declares"
            " it as a production environment, so no change can be approved for it",
            fix="declare the namespace in a ServiceOnCall's spec.environments with"
            " production: true, or remove the changegate.io/governed label",
        )
    return _ungoverned(workload.namespace)


@governed
def not_a_rollout(rollout: Rollout, service: ServicePolicy) -> Decision | None:
    """Scaling and metadata edits pass; only the webhook's own stamps are put back."""
    request = rollout.request
    if is_rollout(request.old, request.new):
        return None
    return Decision(
        True,
        Reason.NOT_A_ROLLOUT,
        "the pod template did not change",
        service=service,
        annotations=_kept_stamps(request),
    )


@governed
def break_glass(rollout: Rollout, service: ServicePolicy) -> Decision | None:
    """A newly set break-glass annotation: an emergency member passes, anyone else is refused."""
    request = rollout.request
    glass = request.new.annotations.get(BREAK_GLASS, "").strip()
    old_glass = request.old.annotations.get(BREAK_GLASS, "") if request.old else ""
    if not glass or glass == old_glass:
        return None
    user = request.user.username
    if service.is_emergency_member(request.user):
        message = f"break-glass rollout of {rollout.label} by {user}: {glass}"
        return _admit(rollout, service, Reason.BREAK_GLASS, message)
    groups = ", ".join(sorted(service.emergency_groups)) or "none"
    return Decision(
        False,
        Reason.BREAK_GLASS_REFUSED,
        f"break-glass refused: {user} is not in an emergency group of"
        f" service {service.service} ({groups})",
        service=service,
        fix="ask a member of the emergency group, or raise a change",
    )


@governed
def restart(rollout: Rollout, service: ServicePolicy) -> Decision | None:
    """A `kubectl rollout restart` passes when the policy allows restarts."""
    request = rollout.request
    if not (service.allow_restart and is_restart(request.old, request.new)):
        return None
    message = f"rollout restart of {rollout.label} allowed by the policy of {service.service}"
    return _admit(rollout, service, Reason.RESTART, message)


@governed
def incident_freeze(rollout: Rollout, service: ServicePolicy) -> Decision | None:
    """An open major incident freezes its services: Normal and Standard rollouts wait.

    Break-glass and restarts were decided by earlier rules; rollbacks and Emergency
    changes still pass, since they are how an incident gets fixed.
    """
    incidents = sorted({name for svc, name in rollout.incident_freezes if svc == service.service})
    if not incidents:
        return None
    admitting = next(
        (c for c in rollout.targeting() if near_miss(rollout, service, c) is None), None
    )
    if admitting is not None and admitting.type is ChangeType.EMERGENCY:
        return None
    if rollback(rollout) is not None:
        return None
    named = ", ".join(incidents)
    return Decision(
        False,
        Reason.INCIDENT_FREEZE,
        f"changegate: rollout of {rollout.label} refused: service {service.service} is frozen"
        f" by major incident {named} (spec.freezeChanges) while it is open",
        near_misses=tuple(
            f"major incident {i} freezes changes to {service.service}" for i in incidents
        ),
        fix=f"roll back, restart or break glass (emergency groups), or ask an incident manager to"
        f" clear spec.freezeChanges on {named}",
        change=admitting,
        service=service,
    )


@governed
def approved_change(rollout: Rollout, service: ServicePolicy) -> Decision | None:
    """The first change, by name, that admits the rollout: approved, open, same images, no freeze."""
    change = next((c for c in rollout.targeting() if _admits(rollout, service, c)), None)
    if change is None:
        return None
    message = f"{rollout.label} admitted under ChangeRequest {change.name} ({change.type.value})"
    return _admit(rollout, service, Reason.APPROVED_CHANGE, message, change)


@governed
def rollback(rollout: Rollout, service: ServicePolicy) -> Decision | None:
    """Back to images a change already deployed here, when the policy allows it and no freeze.

    Resuming or lowering a partition is no rollback: it releases a template, whatever its images.
    """
    old = rollout.request.old
    if not service.allow_rollback or old is None or releases(old, rollout.request.new):
        return None
    previous = _rolled_back_to(rollout, service)
    if previous is None or service.freeze_at(rollout.now, previous.type) is not None:
        return None
    message = (
        f"rollback of {rollout.label} to the images deployed under ChangeRequest {previous.name},"
        f" allowed by the policy of {service.service}"
    )
    return _admit(rollout, service, Reason.ROLLBACK, message, previous)


@governed
def refuse(rollout: Rollout, service: ServicePolicy) -> Decision:
    """Nothing admitted the rollout: say why, list the near misses, and the fix."""
    targeting = rollout.targeting()
    misses = [m for c in targeting if (m := near_miss(rollout, service, c)) is not None]
    freeze = next((f for f in service.freezes if f.start <= rollout.now < f.end), None)
    if freeze and not misses:
        misses.append(NearMiss(_freeze_text(freeze), frozen=True))
    # Freeze is the reason only when nothing but a freeze stands in the way.
    frozen = bool(misses) and all(m.frozen for m in misses)
    texts = tuple(m.text for m in misses) or (
        f"no ChangeRequest of service {service.service} targets {rollout.label}",
    )
    pending = next(
        (c for c in targeting if c.effective_phase(service) is ChangePhase.PENDING), None
    )
    return Decision(
        False,
        Reason.FREEZE if frozen else Reason.NO_CHANGE,
        f"changegate: rollout of {rollout.label} refused: no approved ChangeRequest of service"
        f" {service.service} covers it",
        near_misses=texts,
        fix=_fix_command(rollout.request, service, pending),
        service=service,
    )


# The admission decision, in order: the first rule that decides wins. Without a
# ServiceOnCall `ungoverned` always decides; with one, `refuse` does.
RULES: tuple[Rule, ...] = (
    controller_write,
    exempt_namespace,
    ungoverned,
    not_a_rollout,
    break_glass,
    restart,
    incident_freeze,
    approved_change,
    rollback,
    refuse,
)


def decide_rollout(
    request: WorkloadRequest,
    service: ServicePolicy | None,
    changes: Iterable[ChangeFacts],
    now: datetime,
    incident_freezes: Iterable[tuple[str, str]] = (),
) -> Decision:
    """Allow or deny a workload request in a namespace, and say why."""
    rollout = Rollout(request, service, tuple(changes), now, tuple(incident_freezes))
    decision = next(decision for rule in RULES if (decision := rule(rollout)) is not None)
    return audited(rollout, decision)


def audited(rollout: Rollout, refusal: Decision) -> Decision:
    """In audit-only mode a refused rollout is admitted, carrying the refusal it escaped.

    Every refusal RULES make is a rollout's: the gate is all audit mode relaxes (the
    reviews of changegate's own kinds, debug and exec are decided elsewhere).
    """
    if refusal.allowed or not rollout.audit_mode:
        return refusal
    admitted = Decision(
        True,
        Reason.AUDIT_ONLY,
        f"{rollout.label} admitted in audit-only mode; enforcement would refuse it"
        f" ({refusal.reason.value})",
        service=refusal.service,
        refusal=refusal,
    )
    stamp = _stamp(rollout.request, Reason.AUDIT_ONLY, rollout.now, None)
    # No change admitted it: the change an earlier rollout was stamped with goes.
    stamp |= {CHANGE_ANNOTATION: "", AUDIT_ANNOTATION: admitted.audit_reason}
    return replace(admitted, annotations=stamp)


# -- what the rules share -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class NearMiss:
    """Why one change that targets the workload does not admit it."""

    text: str
    frozen: bool = False  # only a freeze stands in its way


def near_miss(rollout: Rollout, service: ServicePolicy, change: ChangeFacts) -> NearMiss | None:
    """What keeps a targeting change from admitting the rollout, or None when it admits it."""
    ref = f"ChangeRequest {change.name}"
    phase = change.effective_phase(service)
    if phase is ChangePhase.PENDING:
        count = f"{len(change.approvers)} of {service.required_approvals}"
        return NearMiss(f"{ref}: pending approval {count}")
    if phase not in (ChangePhase.APPROVED, ChangePhase.IN_PROGRESS):
        return NearMiss(f"{ref}: {phase.value}")
    window = _window_problem(change, rollout.now)
    if window:
        return NearMiss(f"{ref}: {window}")
    mismatches = image_mismatches(change, rollout.request.new, rollout.request.old)
    if mismatches:
        return NearMiss(f"{ref}: image mismatch: {'; '.join(mismatches)}")
    template = template_beyond_declared(change, rollout.request)
    if template:
        return NearMiss(f"{ref}: {template}")
    freeze = service.freeze_at(rollout.now, change.type)
    if freeze:
        return NearMiss(f"{ref}: {_freeze_text(freeze)}", frozen=True)
    return None


def _admits(rollout: Rollout, service: ServicePolicy, change: ChangeFacts) -> bool:
    """`near_miss` is None, found without writing the misses of the changes that do not
    admit: most targeting changes of a busy workload declare other images."""
    request = rollout.request
    if not _declares_images(change, request.new, request.old):
        return False
    return near_miss(rollout, service, change) is None


def _declares_images(change: ChangeFacts, workload: Workload, previous: Workload | None) -> bool:
    """No `image_mismatches`, without their text."""
    target = change.target(workload.kind, workload.name)
    if target is None:
        return False
    declared = {container: (image, digest) for container, image, digest in target.images}
    kept = previous.images if previous else {}
    for container, actual in workload.images.items():
        if container not in declared:
            if kept.get(container) != actual:
                return False
            continue
        image, digest = declared[container]
        if not _image_matches(image, actual, digest):
            return False
    return True


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
        if not _image_matches(image, actual, digest):
            problems.append(f"container {container}: expected {image}, actual {actual}")
    return problems


# The same few references are compared on every request for a workload: remember the
# answers (pure, keyed by three strings) instead of parsing and normalising each time.
_image_matches = functools.lru_cache(maxsize=16384)(image_matches)


def template_beyond_declared(change: ChangeFacts, request: WorkloadRequest) -> str | None:
    """An edit of the pod template the change does not declare (see core/change/coverage.py)."""
    target = change.target(request.new.kind, request.new.name)
    if target is None:
        return None
    if target.pod_template_hash is None and _same_but_images(request.old, request.new):
        return None  # what template_problem finds too, without two canonical forms
    return template_problem(target, request.old, request.new)


def _same_but_images(old: Workload | None, new: Workload) -> bool:
    """The pod templates are equal once container images are left out (a plain image update)."""
    return old is not None and _without_image_keys(old.template) == _without_image_keys(
        new.template
    )


def _without_image_keys(template: Mapping[str, Any]) -> Mapping[str, Any]:
    """The template with its containers' `image` left out, copied only along that path."""
    spec = template.get("spec")
    if not isinstance(spec, Mapping):
        return template
    lists = {
        key: [
            {k: v for k, v in c.items() if k != "image"} if isinstance(c, Mapping) else c
            for c in containers
        ]
        for key in ("initContainers", "containers")
        if isinstance(containers := spec.get(key), list)
    }
    return {**template, "spec": {**spec, **lists}}


def _ungoverned(namespace: str) -> Decision:
    return Decision(True, Reason.UNGOVERNED, f"namespace {namespace} is not governed")


def _admit(
    rollout: Rollout,
    service: ServicePolicy,
    how: Reason,
    message: str,
    change: ChangeFacts | None = None,
) -> Decision:
    """Let a rollout through, stamped with who, how, when and under which change."""
    return Decision(
        True,
        how,
        message,
        change=change,
        service=service,
        annotations=_stamp(rollout.request, how, rollout.now, change.name if change else None),
    )


def _stamp(
    request: WorkloadRequest, how: Reason, now: datetime, change: str | None
) -> dict[str, str]:
    # Start from the old values, so that a stamp this decision does not set (the change
    # of a restart or a break-glass) keeps its old value instead of one the user wrote.
    stamp = _kept_stamps(request) | {
        DEPLOYER_ANNOTATION: request.user.username,
        ADMISSION_ANNOTATION: how.value,
        ADMITTED_AT_ANNOTATION: timestamp(now),
    }
    if request.new.partition > 0:
        stamp[PARTITION_ANNOTATION] = str(request.new.partition)
    elif request.old and PARTITION_ANNOTATION in request.old.annotations:
        stamp[PARTITION_ANNOTATION] = ""  # this rollout reaches every pod
    if request.old and AUDIT_ANNOTATION in request.old.annotations:
        stamp[AUDIT_ANNOTATION] = ""  # an earlier audit-only rollout's reason is not this one's
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


def _window_problem(change: ChangeFacts, now: datetime) -> str | None:
    if change.window_start and now < change.window_start:
        return f"window opens at {change.window_start.isoformat()}"
    if change.window_end and now >= change.window_end:
        return f"window closed at {change.window_end.isoformat()}"
    if change.expiration and now >= change.expiration:
        return f"approval expired at {change.expiration.isoformat()}"
    return None


def _freeze_text(freeze: FreezeFacts) -> str:
    return f"freeze {freeze.name} until {freeze.end.isoformat()}: {freeze.reason}"


def _fix_command(
    request: WorkloadRequest, service: ServicePolicy, pending: ChangeFacts | None
) -> str:
    """The command that would let this rollout through (the CLI is also `kubectl changegate`).

    A new workload needs its whole pod template declared (core/change/coverage.py), so
    the change is drafted from the manifest being applied rather than from its images.
    """
    workload = request.new
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
    if request.old is None:
        return (
            f"raise a ChangeRequest that declares the new {workload.kind}'s pod template and have"
            f" it approved: kubectl changegate request -n {workload.namespace}"
            f" --service {service.service} --from-file MANIFEST"
        )
    images = " ".join(f"--image {c}={i}" for c, i in sorted(workload.images.items()))
    return (
        f"raise a ChangeRequest and have it approved: kubectl changegate request"
        f" -n {workload.namespace} --service {service.service}"
        f" --target {workload.kind}/{workload.name} {images}"
    )


def _rolled_back_to(rollout: Rollout, service: ServicePolicy) -> ChangeFacts | None:
    """A change that already rolled these exact references out on this workload, within
    the policy's rollback horizon.

    Only the images may move: the statuses record images, not whole pod templates,
    so any other edit of the template is a new change, not a rollback.
    """
    request = rollout.request
    workload = request.new
    deployed = [c for c in rollout.ours() if (workload.kind, workload.name) in c.deployed]
    # Comparing whole templates costs more than the rest of the decision: do it last.
    if not deployed or not only_images_changed(request.old, workload):
        return None
    horizon = service.rollback_horizon_seconds
    return next(
        (c for c in deployed if rollback_source(c, workload, rollout.now, horizon) is not None),
        None,
    )
