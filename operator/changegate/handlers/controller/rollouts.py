"""Rollouts of Deployments, StatefulSets and DaemonSets: evidence, change and service status.

Watched with `on.event` only: nothing is written on workloads, no finalizer is
added. Each event is handled level-based from what exists: a rollout whose
DeploymentRecord exists has its evidence; the change's rollouts, the emergency
change, the ServiceOnCall status and the Incident a change answers (incident_refs)
are each compared with the indexes before anything is written, so a finished
rollout costs no API call on later events.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import kopf

from changegate.adapters.kube import Conflict, KubeError
from changegate.api.v1alpha1 import AdmissionBasis, ChangeRequest, FinalResult
from changegate.core.change.promotion import production_change, promotion
from changegate.core.change.raised import RAISED_FOR, raised_for
from changegate.core.change.retention import record_due
from changegate.core.change.revisions import new_replica_set_hash, revision_pods
from changegate.core.change.rollouts import (
    Observation,
    emergency_change,
    evidence,
    observe,
    with_rollout,
)
from changegate.handlers.controller.chain import write_linked
from changegate.handlers.controller.incident_refs import note_answering_rollout
from changegate.handlers.controller.indexes import WORKLOAD_PLURALS, Environment, Indexes
from changegate.handlers.controller.registry import registry
from changegate.handlers.controller.serviceoncalls import note_version
from changegate.handlers.controller.state import (
    ControllerState,
    audit,
    creation_body,
    parse,
    state_of,
)
from changegate.metrics import LEAD_TIME, ROLLOUTS

log = logging.getLogger(__name__)
MERGE_ATTEMPTS = 5


def track_rollout(
    body: kopf.Body, namespace: str, memo: kopf.Memo, type: str | None, **kwargs: Any
) -> None:
    """Close the change and write the evidence when an admitted rollout finishes."""
    if type == "DELETED":
        return
    indexes = Indexes.of(kwargs)
    environment = indexes.environment(namespace)
    if environment is None:
        return
    state = state_of(memo)
    now = state.clock()
    revisions = indexes.controller_revisions(namespace, (body.get("metadata") or {}).get("uid", ""))
    if environment.raises_production and environment.production_namespace:
        raise_production_change(state, indexes, body, environment, now)
    seen = observe(body, now, revisions)
    if seen is None:
        return  # nothing changegate admitted
    change = change_for(state, indexes, seen)
    if seen.result is not None and not is_closed(state, indexes, seen, now):
        write_evidence(state, body, seen, change, environment)
    if change is not None and seen.basis is AdmissionBasis.CHANGE:
        merge_rollout(state, indexes, seen, seen.key if seen.result else None)
    if seen.result is None:
        return
    if seen.basis is AdmissionBasis.BREAK_GLASS:
        raise_emergency_change(state, indexes, seen, environment, now)
    if seen.result is FinalResult.SUCCEEDED:
        note_version(state, indexes, seen, environment, change)
    note_answering_rollout(state, indexes, seen, change, environment)


for _plural in WORKLOAD_PLURALS:
    kopf.on.event("apps", "v1", _plural, id=f"track-{_plural}", registry=registry)(track_rollout)


def is_closed(
    state: ControllerState, indexes: Indexes, seen: Observation, now: dt.datetime
) -> bool:
    """Whether the rollout's evidence exists, or would already be past retention."""
    if indexes.record_exists(seen.key):
        return True
    due = record_due(seen.finished, state.settings.retention_days)
    return due is not None and due <= now


def change_for(
    state: ControllerState, indexes: Indexes, seen: Observation, live: bool = False
) -> ChangeRequest | None:
    """The change a rollout was admitted under: from the index, or read live.

    Read live only while the evidence is still to write (or `live`): once the
    record exists, a change missing from the index was deleted, not late.
    """
    if not seen.change:
        return None
    if not live:
        found = indexes.change(seen.namespace, seen.change)
        if found is not None or indexes.record_exists(seen.key):
            return found
    body = state.kube.read_change_request(seen.namespace, seen.change)
    return parse(ChangeRequest, body) if body else None


def _digests(state: ControllerState, body: kopf.Body, seen: Observation) -> dict[str, str]:
    """Digests from the pods of the rolled-out revision only: its new ReplicaSet's
    pod-template-hash, or its ControllerRevision's label. None rather than another's."""
    selector = dict(((body.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    if not selector:
        return {}
    try:
        if seen.controller_revision is not None:
            pods = selector | revision_pods(seen.kind, seen.controller_revision)
            return state.kube.image_digests(seen.namespace, pods, None)
        replica_sets = state.kube.replica_sets(seen.namespace, selector)
        template_hash = new_replica_set_hash(replica_sets, seen.uid, seen.revision)
        if template_hash is None:
            return {}
        return state.kube.image_digests(seen.namespace, selector, template_hash)
    except KubeError as error:  # digests are a nicety; the record is written without them
        log.info("no image digests for %s: %s", seen.key, error)
        return {}


def write_evidence(
    state: ControllerState,
    body: kopf.Body,
    seen: Observation,
    change: ChangeRequest | None,
    environment: Environment,
) -> None:
    """The DeploymentRecord of the finished rollout, with its metrics, event and audit line."""
    record = evidence(
        seen,
        change,
        environment.service,
        environment.environment,
        environment.production,
        _digests(state, body, seen),
    )
    if not write_linked(state, record):
        return  # written by an earlier attempt
    result = seen.result or FinalResult.FAILED
    ROLLOUTS.labels(environment.service, result.value).inc()
    if record.spec.lead_time_seconds is not None and environment.production:
        LEAD_TIME.labels(environment.service).observe(record.spec.lead_time_seconds)
    kopf.event(
        body,
        type="Normal" if result is FinalResult.SUCCEEDED else "Warning",
        reason=f"Rollout{result.value}",
        message=f"revision {seen.revision} {result.value.lower()}; evidence in DeploymentRecord {seen.key}",
    )
    audit(
        "RolloutFinished",
        state.clock(),
        record=seen.key,
        namespace=seen.namespace,
        workload=f"{seen.kind.value}/{seen.name}",
        revision=seen.revision,
        result=result.value,
        basis=seen.basis.value,
        change=seen.change,
        deployer=seen.deployer,
    )


def merge_rollout(
    state: ControllerState,
    indexes: Indexes,
    seen: Observation,
    record: str | None,
    known: ChangeRequest | None = None,
) -> None:
    """Record the rollout on its change, with optimistic concurrency: retry on a conflict.

    With `known`, only into that very object (a namesake created since is not
    ours), and first as given: a change created a moment ago may not be in the
    index yet, and with the rollout's record already there `change_for` would
    take it for deleted.
    """
    for attempt in range(MERGE_ATTEMPTS):
        # First as known or from the index; after a conflict both are stale, so read live.
        if attempt == 0 and known is not None:
            change: ChangeRequest | None = known
        else:
            change = change_for(state, indexes, seen, live=attempt > 0)
        if change is None or (known is not None and change.metadata.uid != known.metadata.uid):
            return
        rollouts = [r.to_json() for r in with_rollout(change, seen, record)]
        if rollouts == [r.to_json() for r in change.status.rollouts]:
            return
        try:
            state.kube.patch_status(
                "changerequests",
                seen.namespace,
                seen.change or "",
                {"rollouts": rollouts},
                change.metadata.resource_version,
            )
            return
        except Conflict:
            continue
    raise kopf.TemporaryError(f"could not record rollout {seen.key} on its change", delay=1)


def raise_emergency_change(
    state: ControllerState,
    indexes: Indexes,
    seen: Observation,
    environment: Environment,
    now: dt.datetime,
) -> None:
    """A break-glass rollout gets its Emergency ChangeRequest after the fact, for review.

    Found again by its raised-for label (which only the operator writes), never by a
    name a team could have taken first; the rollout is merged into that object only.
    """
    change = raised_change(state, indexes, seen.namespace, raised_for(seen.key))
    if change is None:
        emergency = emergency_change(seen, environment.service)
        created = state.kube.create_generated(
            "changerequests", seen.namespace, creation_body(emergency)
        )
        change = parse(ChangeRequest, created) if created else None
        if change is None:
            return
        name = change.metadata.name
        audit("EmergencyChangeRaised", now, namespace=seen.namespace, change=name, record=seen.key)
    ours = dataclasses.replace(seen, change=change.metadata.name)
    merge_rollout(state, indexes, ours, seen.key, known=change)


def raised_change(
    state: ControllerState, indexes: Indexes, namespace: str, mark: str
) -> ChangeRequest | None:
    """The change the operator raised for `mark`: from the index, else read live (the
    index may lag a create by a moment, and a second change must not be raised)."""
    found = indexes.raised_change(namespace, mark)
    if found is not None:
        return found
    for body in state.kube.changes_labelled(namespace, f"{RAISED_FOR}={mark}"):
        change = parse(ChangeRequest, body)
        if change is not None and change.metadata.labels.get(RAISED_FOR) == mark:
            return change
    return None


def raise_production_change(
    state: ControllerState,
    indexes: Indexes,
    body: kopf.Body,
    environment: Environment,
    now: dt.datetime,
) -> None:
    """The last pre-production stage finished: raise production's change with the same images.

    A change that exists already (found by its raised-for label) was raised.
    """
    metadata = body.get("metadata") or {}
    revisions = indexes.controller_revisions(metadata.get("namespace", ""), metadata.get("uid", ""))
    promoted = promotion(body, now, revisions)
    production = environment.production_namespace or ""
    if promoted is None or raised_change(state, indexes, production, promoted.raised_for):
        return
    images, labels = indexes.running_workloads(production, [(promoted.kind.value, promoted.name)])
    change = production_change(
        promoted,
        environment.service,
        environment.environment,
        production,
        indexes.all_templates(),
        images,
        labels,
        now,
    )
    created = state.kube.create_generated("changerequests", production, creation_body(change))
    if created is not None:
        audit(
            "ProductionChangeRaised",
            now,
            namespace=production,
            change=(created.get("metadata") or {}).get("name"),
            requester=promoted.deployer or "unverified",
            type=change.spec.type.value,
            source_namespace=promoted.namespace,
            workload=f"{promoted.kind.value}/{promoted.name}",
            revision=promoted.revision,
        )
