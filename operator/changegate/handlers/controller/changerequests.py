"""ChangeRequests: one level-based reconcile moves each change along its lifecycle.

On every event of a change, and when the scheduler finds an approved change
past its expiry, `plan` asks the core for the whole status the change should
have now and the difference to write; Kopf's patch or the adapter writes it.
A Standard change also refreshes its template's usage (changetemplates).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import kopf

from changegate.api.v1alpha1 import (
    GROUP,
    VERSION,
    ChangePhase,
    ChangeRequest,
    ChangeRequestStatus,
    ChangeType,
)
from changegate.core.change import lifecycle
from changegate.core.change.templates import Fit, template_fit
from changegate.handlers.controller.changetemplates import refresh_usage
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.registry import registry
from changegate.handlers.controller.state import ControllerState, audit, parse, state_of
from changegate.handlers.controller.status import status_patch
from changegate.metrics import CHANGE_TRANSITIONS


def desired_status(
    change: ChangeRequest, indexes: Indexes, now: dt.datetime
) -> tuple[ChangeRequestStatus, Fit | None]:
    """The status the core gives the change now, and its template fit (Standard changes)."""
    service = change.spec.service
    fit = None
    namespace = change.metadata.namespace or ""
    if change.spec.type is ChangeType.STANDARD and change.spec.template_ref is not None:
        template = indexes.template(namespace, change.spec.template_ref.name)
        images, labels = indexes.running_workloads(
            namespace, [(t.kind.value, t.name) for t in change.spec.targets]
        )
        fit = template_fit(change, template, images, labels, now)
    status = lifecycle.reconcile(
        change, indexes.policy(service), fit, indexes.validity_seconds(service), now
    )
    return status, fit


@dataclass(frozen=True, slots=True)
class Plan:
    """What reconciling a change writes, and the transition it reports."""

    patch: dict[str, Any] | None
    before: ChangePhase
    after: ChangeRequestStatus

    @property
    def transition(self) -> bool:
        return self.patch is not None and self.after.phase is not self.before

    @property
    def message(self) -> str:
        trail = self.after.audit_trail
        phase = self.after.phase or ChangePhase.PENDING
        return trail[-1].message if trail else phase.value


def plan(change: ChangeRequest, indexes: Indexes, now: dt.datetime) -> Plan:
    wanted, _ = desired_status(change, indexes, now)
    patch = status_patch(change.status.to_json(), wanted.to_json())
    return Plan(patch, change.status.phase or ChangePhase.PENDING, wanted)


def report(change: ChangeRequest, planned: Plan, now: dt.datetime) -> None:
    """Metrics and the audit line of a phase transition."""
    phase = planned.after.phase or ChangePhase.PENDING
    CHANGE_TRANSITIONS.labels(phase.value).inc()
    audit(
        "ChangeTransition",
        now,
        namespace=change.metadata.namespace,
        change=change.metadata.name,
        uid=change.metadata.uid,
        service=change.spec.service,
        type=change.spec.type.value,
        phase_from=planned.before.value,
        phase_to=phase.value,
        message=planned.message,
    )


@kopf.on.event(GROUP, VERSION, "changerequests", registry=registry)
def reconcile_change(
    body: kopf.Body, type: str | None, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any
) -> None:
    """Move the change along its lifecycle from what is observed now."""
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        return
    change = parse(ChangeRequest, body)
    if change is None:
        return
    state, indexes = state_of(memo), Indexes.of(kwargs)
    now = state.clock()
    planned = plan(change, indexes, now)
    if planned.patch is not None:
        patch.status.update(planned.patch)
    if planned.transition:
        phase = planned.after.phase or ChangePhase.PENDING
        kopf.info(body, reason=phase.value, message=planned.message)
        report(change, planned, now)
    if change.spec.template_ref is not None:
        refresh_usage(
            state, indexes, change.metadata.namespace or "", change.spec.template_ref.name
        )


def expire_change(
    state: ControllerState, indexes: Indexes, namespace: str, name: str, now: dt.datetime
) -> None:
    """The scheduler's call when an approved change's expiry passed: the same reconcile.

    Reads the change live (the index may lag) and writes only if nothing changed since.
    """
    body = state.kube.read_change_request(namespace, name)
    change = parse(ChangeRequest, body) if body else None
    if change is None:
        return
    planned = plan(change, indexes, now)
    if planned.patch is None:
        return
    state.kube.patch_status(
        "changerequests", namespace, name, planned.patch, change.metadata.resource_version
    )
    if planned.transition:
        report(change, planned, now)
