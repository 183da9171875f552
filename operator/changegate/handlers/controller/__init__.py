"""The controller role: reconciles ChangeRequests and turns finished rollouts into evidence.

Only this role writes. Every handler is level-based: it reads what is, asks the
core what should be, and writes the difference, so a restart at any moment
ends in the same state. Workloads are watched with `on.event` only: nothing is
written on them, no finalizer is added to anything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import kopf
from pydantic import BaseModel, ValidationError

from changegate.adapters.kube import Conflict, KubeAdapter, api_client
from changegate.api.v1alpha1.changerequest import ChangePhase, ChangeRequest
from changegate.api.v1alpha1.changetemplate import ChangeTemplate
from changegate.api.v1alpha1.common import ChangeType, ContainerImage
from changegate.api.v1alpha1.deploymentrecord import AdmissionBasis, FinalResult
from changegate.api.v1alpha1.serviceoncall import EnvironmentStatus, ServiceOnCall
from changegate.core.change import lifecycle
from changegate.core.change.facts import ServicePolicy
from changegate.core.change.retention import expired_records
from changegate.core.change.rollouts import (
    Observation,
    Promotion,
    evidence,
    observe,
    promotion,
    with_rollout,
)
from changegate.handlers.login import register_login
from changegate.metrics import CHANGE_TRANSITIONS, LEAD_TIME, ROLLOUTS, serve_probes_and_metrics
from changegate.settings import Settings

registry = kopf.OperatorRegistry()
register_login(registry)
log = logging.getLogger(__name__)
audit = logging.getLogger("changegate.audit")

GROUP, VERSION = "changegate.io", "v1alpha1"
M = TypeVar("M", bound=BaseModel)
EXPIRY_SWEEP_SECONDS = 5.0
RETENTION_SWEEP_SECONDS = 3600.0


@dataclass
class ControllerState:
    settings: Settings
    kube: KubeAdapter
    runner: Any = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Approved changes and when they expire, kept current by reconcile_change.
    deadlines: dict[tuple[str, str], dt.datetime] = field(default_factory=dict)
    # Production changes already raised from pre-production, to skip repeated creates.
    raised: set[str] = field(default_factory=set)
    # Rollouts whose record, change and service status are written (by record name).
    closed: set[str] = field(default_factory=set)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _state(memo: Any) -> ControllerState:
    state: ControllerState = memo.state
    return state


def _parse(model: type[M], body: Any) -> M | None:
    try:
        return model.model_validate(dict(body))
    except ValidationError as error:
        log.warning("skipping %s that does not parse: %s", model.__name__, error.errors()[:3])
        return None


def _audit(action: str, **fields: Any) -> None:
    """One structured JSON line per transition, for the audit log."""
    audit.info(json.dumps({"time": _now().isoformat(), "action": action, **fields}, default=str))


# -- start-up -----------------------------------------------------------------


@kopf.on.startup(registry=registry)
async def start_controller(memo: kopf.Memo, **_: Any) -> None:
    settings: Settings = memo.settings
    state = ControllerState(
        settings, KubeAdapter(await asyncio.to_thread(api_client), settings.instance)
    )
    memo.state = state
    state.runner = await serve_probes_and_metrics(
        settings.health_address, settings.metrics_port, lambda: True
    )
    log.info("changegate controller started")


@kopf.on.cleanup(registry=registry)
async def stop_controller(memo: kopf.Memo, **_: Any) -> None:
    state = getattr(memo, "state", None)
    if state is None:
        return
    for task in state.tasks:
        task.cancel()
    if state.runner is not None:
        await state.runner.cleanup()


# -- indexes ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Environment:
    soc_namespace: str
    soc_name: str
    service: str
    environment: str
    production: bool
    raises_production: bool
    production_namespace: str | None


@kopf.index(GROUP, VERSION, "serviceoncalls", registry=registry)
def environments_by_namespace(body: kopf.Body, **_: Any) -> dict[str, Environment]:
    soc = _parse(ServiceOnCall, body)
    if soc is None:
        return {}
    production = next((e.namespace for e in soc.spec.environments if e.production), None)
    return {
        e.namespace: Environment(
            soc.metadata.namespace or "",
            soc.metadata.name or "",
            soc.spec.service.name,
            e.name,
            e.production,
            e.raises_production_changes,
            production,
        )
        for e in soc.spec.environments
    }


@kopf.index(GROUP, VERSION, "serviceoncalls", registry=registry)
def policies_by_service(body: kopf.Body, memo: kopf.Memo, **_: Any) -> dict[str, ServicePolicy]:
    soc = _parse(ServiceOnCall, body)
    if soc is None:
        return {}
    return {
        soc.spec.service.name: ServicePolicy.from_model(soc, memo.settings.change_manager_groups)
    }


@kopf.index(GROUP, VERSION, "serviceoncalls", registry=registry)
def validity_by_service(body: kopf.Body, **_: Any) -> dict[str, int]:
    soc = _parse(ServiceOnCall, body)
    if soc is None:
        return {}
    return {soc.spec.service.name: soc.spec.change_policy.approval_validity_seconds}


@kopf.index(GROUP, VERSION, "changerequests", registry=registry)
def changes_by_name(
    body: kopf.Body, namespace: str, name: str, **_: Any
) -> dict[Any, ChangeRequest]:
    change = _parse(ChangeRequest, body)
    return {(namespace, name): change} if change else {}


@kopf.index(GROUP, VERSION, "changetemplates", registry=registry)
def templates_by_name(
    body: kopf.Body, namespace: str, name: str, **_: Any
) -> dict[Any, ChangeTemplate]:
    template = _parse(ChangeTemplate, body)
    return {(namespace, name): template} if template else {}


def _workload_facts(body: kopf.Body, namespace: str, name: str) -> dict[Any, Any]:
    containers = ((body.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers"
    ) or ()
    return {
        (namespace, body.get("kind"), name): (
            {c["name"]: c["image"] for c in containers},
            dict(body.metadata.labels or {}),
        )
    }


for _plural in ("deployments", "statefulsets", "daemonsets"):
    kopf.index("apps", "v1", _plural, id=f"running_{_plural}", registry=registry)(
        lambda body, namespace, name, **_: _workload_facts(body, namespace, name)
    )


# -- ChangeRequests -----------------------------------------------------------


def _running(
    kwargs: dict[str, Any], namespace: str, change: ChangeRequest
) -> tuple[dict[Any, Any], dict[Any, Any]]:
    images: dict[Any, Any] = {}
    labels: dict[Any, Any] = {}
    for target in change.spec.targets:
        plural = f"running_{target.kind.value.lower()}s"
        found = next(
            iter(kwargs[plural].get((namespace, target.kind.value, target.name)) or ()), None
        )
        if found is not None:
            images[(target.kind.value, target.name)] = found[0]
            labels[(target.kind.value, target.name)] = found[1]
    return images, labels


def desired_status(
    change: ChangeRequest, namespace: str, kwargs: dict[str, Any], now: dt.datetime
) -> Any:
    service = change.spec.service
    policy = next(iter(kwargs["policies_by_service"].get(service) or ()), None)
    validity = next(iter(kwargs["validity_by_service"].get(service) or ()), 86400)
    fit = None
    if change.spec.type is ChangeType.STANDARD and change.spec.template_ref is not None:
        template = next(
            iter(kwargs["templates_by_name"].get((namespace, change.spec.template_ref.name)) or ()),
            None,
        )
        images, labels = _running(kwargs, namespace, change)
        fit = lifecycle.template_fit(change, template, images, labels, now)
    return lifecycle.reconcile(change, policy, fit, validity, now), fit


@kopf.on.event(GROUP, VERSION, "changerequests", registry=registry)
def reconcile_change(
    body: kopf.Body,
    namespace: str,
    name: str,
    type: str | None,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """Move the change along its lifecycle from what is observed now."""
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        _state(memo).deadlines.pop((namespace, name), None)
        return
    change = _parse(ChangeRequest, body)
    if change is None:
        return
    now = _now()
    desired, fit = desired_status(change, namespace, kwargs, now)
    deadlines = _state(memo).deadlines
    if desired.phase is ChangePhase.APPROVED and desired.expiration_time:
        deadlines[(namespace, name)] = desired.expiration_time
    else:
        deadlines.pop((namespace, name), None)
    current = change.status.to_json()
    wanted = desired.to_json()
    if _same_but_times(current, wanted):
        return
    patch.status.update(_status_patch(current, wanted))
    before = change.status.phase or ChangePhase.PENDING
    if desired.phase is not before:
        message = desired.audit_trail[-1].message if desired.audit_trail else desired.phase.value
        kopf.info(body, reason=desired.phase.value, message=message)
        CHANGE_TRANSITIONS.labels(desired.phase.value).inc()
        _audit(
            "ChangeTransition",
            namespace=namespace,
            change=name,
            uid=body.metadata.uid,
            service=change.spec.service,
            type=change.spec.type.value,
            phase_from=before.value,
            phase_to=desired.phase.value,
            message=message,
        )
        if (
            desired.phase is ChangePhase.APPROVED
            and fit is not None
            and fit.ok
            and change.spec.template_ref
        ):
            _count_template_use(
                _state(memo), namespace, change.spec.template_ref.name, name, kwargs, now
            )


def _same_but_times(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Equal, ignoring condition transition times the core refreshed (nothing changed)."""
    return _strip(current) == _strip(wanted)


def _strip(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "conditions"} | {
        "conditions": sorted(
            (
                {k: v for k, v in c.items() if k != "lastTransitionTime"}
                for c in status.get("conditions", [])
            ),
            key=lambda c: str(c.get("type")),
        )
    }


def _status_patch(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """A merge patch from current to wanted: changed keys, and None for dropped ones."""
    result: dict[str, Any] = {k: v for k, v in wanted.items() if current.get(k) != v}
    result.update({k: None for k in current if k not in wanted})
    return result


def _count_template_use(
    state: ControllerState,
    namespace: str,
    template: str,
    change: str,
    kwargs: dict[str, Any],
    now: dt.datetime,
) -> None:
    found: ChangeTemplate | None = next(
        iter(kwargs["templates_by_name"].get((namespace, template)) or ()), None
    )
    if found is None:
        return
    status = {
        "usedCount": found.status.used_count + 1,
        "lastUsedTime": now.isoformat().replace("+00:00", "Z"),
        "lastChangeRequest": change,
    }
    state.kube.patch_status("changetemplates", namespace, template, status)


@kopf.on.startup(registry=registry)
async def sweep_expiring_changes(memo: kopf.Memo, **_: Any) -> None:
    """Approved changes expire when their window passes; nothing else wakes them, so a sweep does."""

    async def sweep() -> None:
        state = _state(memo)
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_SECONDS)
            now = _now()
            for (namespace, name), deadline in list(state.deadlines.items()):
                if deadline <= now:
                    try:
                        await asyncio.to_thread(_expire, state, namespace, name, now)
                    except Exception as error:  # the next sweep tries again
                        log.warning("could not expire %s/%s: %s", namespace, name, error)

    memo.state.tasks.append(asyncio.create_task(sweep()))


@kopf.on.startup(registry=registry)
async def sweep_old_evidence(memo: kopf.Memo, **_: Any) -> None:
    """Delete DeploymentRecords older than the retention period, hourly."""

    async def sweep() -> None:
        state = _state(memo)
        while True:
            try:
                records = await asyncio.to_thread(
                    state.kube.list_cluster_objects, "deploymentrecords"
                )
                for name in expired_records(records, state.settings.retention_days, _now()):
                    await asyncio.to_thread(
                        state.kube.delete_cluster_object, "deploymentrecords", name
                    )
                    _audit(
                        "EvidenceExpired", record=name, retention_days=state.settings.retention_days
                    )
            except Exception as error:  # the next sweep tries again
                log.warning("retention sweep failed: %s", error)
            await asyncio.sleep(RETENTION_SWEEP_SECONDS)

    memo.state.tasks.append(asyncio.create_task(sweep()))


def _expire(state: ControllerState, namespace: str, name: str, now: dt.datetime) -> None:
    body = state.kube.read_change_request(namespace, name)
    change = _parse(ChangeRequest, body) if body else None
    if change is None or change.status.phase is not ChangePhase.APPROVED:
        return
    wanted = lifecycle.reconcile(change, None, None, 0, now)
    if wanted.phase is ChangePhase.EXPIRED:
        state.kube.patch_status(
            "changerequests", namespace, name, wanted.to_json(), change.metadata.resource_version
        )
        CHANGE_TRANSITIONS.labels(ChangePhase.EXPIRED.value).inc()
        _audit("ChangeTransition", namespace=namespace, change=name, phase_to="Expired")


# -- ChangeTemplates ----------------------------------------------------------


@kopf.on.event(GROUP, VERSION, "changetemplates", registry=registry)
def reconcile_template(body: kopf.Body, type: str | None, patch: kopf.Patch, **_: Any) -> None:
    """Status says whether the template counts, and who activated it, when."""
    if type == "DELETED":
        return
    template = _parse(ChangeTemplate, body)
    if template is None:
        return
    wanted = lifecycle.template_status(template, _now()).to_json()
    current = template.status.to_json()
    if not _same_but_times(current, wanted):
        patch.status.update(_status_patch(current, wanted))


# -- rollouts -----------------------------------------------------------------


def track_rollout(
    body: kopf.Body, namespace: str, memo: kopf.Memo, type: str | None, **kwargs: Any
) -> None:
    """Close the change and write the evidence when an admitted rollout finishes."""
    if type == "DELETED":
        return
    environment: Environment | None = next(
        iter(kwargs["environments_by_namespace"].get(namespace) or ()), None
    )
    if environment is None:
        return
    state = _state(memo)
    if environment.raises_production and environment.production_namespace:
        promoted = promotion(body, _now())
        if promoted is not None and promoted.change_name not in state.raised:
            _raise_production_change(state, promoted, environment, kwargs)
            state.raised.add(promoted.change_name)
    seen = observe(body, _now())
    if seen is None or seen.key in state.closed:
        return  # nothing admitted, or this rollout's evidence is complete already
    indexed = kwargs["changes_by_name"]
    change = _change_for(state, seen, indexed)
    if seen.result is None:
        if change is not None and seen.basis is AdmissionBasis.CHANGE:
            _merge_rollout(state, seen, None, indexed)
        return
    record = evidence(
        seen,
        change,
        environment.service,
        environment.environment,
        environment.production,
        _digests(state, body, seen),
    )
    written = state.kube.create_cluster_object("deploymentrecords", record.to_json())
    if written:
        ROLLOUTS.labels(environment.service, seen.result.value).inc()
        if record.spec.lead_time_seconds is not None and environment.production:
            LEAD_TIME.labels(environment.service).observe(record.spec.lead_time_seconds)
        kopf.event(
            body,
            type="Normal" if seen.result is FinalResult.SUCCEEDED else "Warning",
            reason=f"Rollout{seen.result.value}",
            message=f"revision {seen.revision} {seen.result.value.lower()}; evidence in DeploymentRecord {seen.key}",
        )
        _audit(
            "RolloutFinished",
            record=seen.key,
            namespace=seen.namespace,
            workload=f"{seen.kind.value}/{seen.name}",
            revision=seen.revision,
            result=seen.result.value,
            basis=seen.basis.value,
            change=seen.change,
            deployer=seen.deployer,
        )
    if change is not None and seen.basis is AdmissionBasis.CHANGE:
        _merge_rollout(state, seen, seen.key, indexed)
    if seen.basis is AdmissionBasis.BREAK_GLASS:
        _raise_emergency_change(state, seen, environment, indexed)
    if seen.result is FinalResult.SUCCEEDED:
        _note_version(state, seen, environment, change)
    # Every step above is idempotent; remembering the finished ones only saves API calls.
    state.closed.add(seen.key)


for _plural in ("deployments", "statefulsets", "daemonsets"):
    kopf.on.event("apps", "v1", _plural, id=f"track-{_plural}", registry=registry)(track_rollout)


def _change_for(
    state: ControllerState, seen: Observation, indexed: Any = None
) -> ChangeRequest | None:
    """The change a rollout was admitted under: from the index, or read live."""
    if not seen.change:
        return None
    if indexed is not None:
        found = next(iter(indexed.get((seen.namespace, seen.change)) or ()), None)
        if found is not None:
            return cast(ChangeRequest, found)
    body = state.kube.read_change_request(seen.namespace, seen.change)
    return _parse(ChangeRequest, body) if body else None


def _digests(state: ControllerState, body: kopf.Body, seen: Observation) -> dict[str, str]:
    selector = ((body.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not selector:
        return {}
    try:
        return state.kube.image_digests(seen.namespace, dict(selector), None)
    except Exception as error:  # digests are a nicety; the record is written without them
        log.info("no image digests for %s: %s", seen.key, error)
        return {}


def _merge_rollout(
    state: ControllerState, seen: Observation, record: str | None, indexed: Any = None
) -> None:
    """Record the rollout on its change, with optimistic concurrency: retry on a conflict."""
    for attempt in range(5):
        # First from the index; after a conflict the index is stale, so read live.
        change = _change_for(state, seen, indexed if attempt == 0 else None)
        if change is None:
            return
        rollouts = with_rollout(change, seen, record)
        if [r.to_json() for r in rollouts] == [r.to_json() for r in change.status.rollouts]:
            return
        try:
            state.kube.patch_status(
                "changerequests",
                seen.namespace,
                seen.change or "",
                {"rollouts": [r.to_json() for r in rollouts]},
                change.metadata.resource_version,
            )
            return
        except Conflict:
            continue
    raise kopf.TemporaryError(f"could not record rollout {seen.key} on its change", delay=1)


def _raise_emergency_change(
    state: ControllerState, seen: Observation, environment: Environment, indexed: Any = None
) -> None:
    """A break-glass rollout gets its Emergency ChangeRequest after the fact, for review."""
    name = f"emergency-{seen.name}-{seen.revision}"[:253]
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ChangeRequest",
        "metadata": {
            "name": name,
            "namespace": seen.namespace,
            "labels": {"changegate.io/review": "required"},
            "annotations": {"changegate.io/deployment-record": seen.key},
        },
        "spec": {
            "service": environment.service,
            "type": ChangeType.EMERGENCY.value,
            "summary": f"Break-glass rollout of {seen.kind.value}/{seen.name} revision {seen.revision}",
            "emergencyReason": (seen.break_glass or "break-glass rollout")[:2048],
            "requester": seen.deployer,
            "targets": [
                {
                    "kind": seen.kind.value,
                    "name": seen.name,
                    "images": [
                        {"container": c, "image": i} for c, i in sorted(seen.images.items())
                    ],
                }
            ],
        },
    }
    if state.kube.create_namespaced_object("changerequests", seen.namespace, body):
        _audit("EmergencyChangeRaised", namespace=seen.namespace, change=name, record=seen.key)
    _merge_rollout(state, _as_change(seen, name), seen.key, indexed)


def _as_change(seen: Observation, change: str) -> Observation:
    from dataclasses import replace

    return replace(seen, change=change)


def _note_version(
    state: ControllerState,
    seen: Observation,
    environment: Environment,
    change: ChangeRequest | None,
) -> None:
    """ServiceOnCall status: what runs in each environment, since when."""
    status = EnvironmentStatus(
        name=environment.environment,
        namespace=seen.namespace,
        images=[ContainerImage(container=c, image=i) for c, i in sorted(seen.images.items())],
        change_request=change.metadata.name if change else seen.change,
        deployment_record=seen.key,
        deployed_time=seen.finished,
    )
    body = state.kube.custom.get_namespaced_custom_object(
        GROUP, VERSION, environment.soc_namespace, "serviceoncalls", environment.soc_name
    )
    soc = _parse(ServiceOnCall, body)
    if soc is None:
        return
    others = [e for e in soc.status.environments if e.name != environment.environment]
    current = next((e for e in soc.status.environments if e.name == environment.environment), None)
    if current is not None and current.deployment_record == seen.key:
        return
    environments = sorted([*others, status], key=lambda e: e.name)
    state.kube.patch_status(
        "serviceoncalls",
        environment.soc_namespace,
        environment.soc_name,
        {"environments": [e.to_json() for e in environments]},
    )


def _raise_production_change(
    state: ControllerState, promoted: Promotion, environment: Environment, kwargs: dict[str, Any]
) -> None:
    """The last pre-production stage finished: raise production's change with the same images.

    Standard when an active template of the service fits it, otherwise Normal
    (and Pending). The name is derived from the rollout, so a retry raises nothing twice.
    """
    production = environment.production_namespace or ""
    targets = [
        {
            "kind": promoted.kind.value,
            "name": promoted.name,
            "images": [{"container": c, "image": i} for c, i in sorted(promoted.images.items())],
        }
    ]
    spec: dict[str, Any] = {
        "service": environment.service,
        "type": ChangeType.NORMAL.value,
        "summary": f"Promote {promoted.kind.value}/{promoted.name} revision {promoted.revision} from {environment.environment}"[
            :256
        ],
        "targets": targets,
    }
    if promoted.source:
        spec["source"] = dict(promoted.source)
    if promoted.deployer:
        spec["requester"] = promoted.deployer
    body: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ChangeRequest",
        "metadata": {
            "name": promoted.change_name,
            "namespace": production,
            "labels": {"changegate.io/promoted-from": environment.environment},
        },
        "spec": spec,
    }
    now = _now()
    for (namespace, name), templates in list(kwargs["templates_by_name"].items()):
        template = next(iter(templates), None)
        if (
            namespace != production
            or template is None
            or template.spec.service != environment.service
        ):
            continue
        draft = _parse(
            ChangeRequest,
            {**body, "spec": {**spec, "type": "Standard", "templateRef": {"name": name}}},
        )
        if draft is None:
            continue
        images, labels = _running(kwargs, production, draft)
        if lifecycle.template_fit(draft, template, images, labels, now).ok:
            spec.update(type=ChangeType.STANDARD.value, templateRef={"name": name})
            break
    if state.kube.create_namespaced_object("changerequests", production, body):
        _audit(
            "ProductionChangeRaised",
            namespace=production,
            change=promoted.change_name,
            type=spec["type"],
            source_namespace=promoted.namespace,
            workload=f"{promoted.kind.value}/{promoted.name}",
            revision=promoted.revision,
        )
