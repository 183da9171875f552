"""The webhook role: admission for workloads and changegate's kinds.

It only reads. In-memory Kopf indexes of ChangeRequests, ServiceOnCalls and
governed namespaces feed the pure core (changegate.core.change.admission and
.governance); the answer becomes an AdmissionReview response, an Event on the
workload and metrics. Several replicas run at once, each standalone.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jsonpatch
import kopf
from aiohttp import web
from pydantic import BaseModel, ValidationError

from changegate.adapters.cache import WatchCache
from changegate.adapters.kube import KubeAdapter, api_client
from changegate.api.v1alpha1.changerequest import ChangeRequest
from changegate.api.v1alpha1.changetemplate import ChangeTemplate
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.admission import Decision, WorkloadRequest, decide_rollout
from changegate.core.change.facts import ChangeFacts, ServicePolicy
from changegate.core.change.governance import (
    Authorities,
    Verdict,
    review_change_request,
    review_change_template,
    review_deployment_record,
    review_service_on_call,
)
from changegate.core.change.workloads import Workload
from changegate.core.common import User
from changegate.handlers.login import register_login
from changegate.metrics import ADMISSION_DECISIONS, ADMISSION_LATENCY, serve_probes_and_metrics
from changegate.settings import Settings

registry = kopf.OperatorRegistry()
register_login(registry)
log = logging.getLogger(__name__)

GROUP, VERSION = "changegate.io", "v1alpha1"
WORKLOAD_PLURALS = ("deployments", "statefulsets", "daemonsets")
M = TypeVar("M", bound=BaseModel)


@dataclass
class WebhookState:
    """What the handlers share within one process."""

    settings: Settings
    authorities: Authorities
    kube: KubeAdapter
    changes: WatchCache[ChangeFacts] = field(init=False)
    services: WatchCache[ServicePolicy] = field(init=False)
    namespaces: WatchCache[str] = field(init=False)
    runner: web.AppRunner | None = None
    background: set[asyncio.Task[None]] = field(default_factory=set)

    def warm(self) -> bool:
        """Ready to admit: every cache has listed its kind in full."""
        return all(c.warm.is_set() for c in (self.changes, self.services, self.namespaces))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _state(memo: Any) -> WebhookState:
    state: WebhookState = memo.state
    return state


def _user(userinfo: Any) -> User:
    info = userinfo or {}
    return User(str(info.get("username", "")), frozenset(info.get("groups") or ()))


def _parse(model: type[M], body: Any) -> M | None:
    try:
        return model.model_validate(dict(body))
    except ValidationError as error:
        log.warning("skipping %s that does not parse: %s", model.__name__, error.errors()[:3])
        return None


def _first(values: Iterable[Any] | None) -> Any:
    return next(iter(values), None) if values is not None else None


# -- start-up, probes ---------------------------------------------------------


@kopf.on.startup(registry=registry)
async def serve_admission(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: Settings = memo.settings
    if not (config.webhook_cert_file and config.webhook_key_file):
        raise kopf.PermanentError(
            "the webhook needs a serving certificate: set CHANGEGATE_WEBHOOK_CERT_FILE and"
            " CHANGEGATE_WEBHOOK_KEY_FILE"
        )
    settings.admission.server = kopf.WebhookServer(
        addr=config.webhook_address,
        port=config.webhook_port,
        certfile=str(config.webhook_cert_file),
        pkeyfile=str(config.webhook_key_file),
    )
    # The chart ships the webhook configurations; a replica that exits must not remove them.
    settings.admission.managed = None
    state = WebhookState(
        settings=config,
        authorities=Authorities(
            change_manager_groups=frozenset(config.change_manager_groups),
            platform_admin_groups=frozenset(config.platform_admin_groups),
            operator_users=frozenset(config.operator_users),
        ),
        kube=KubeAdapter(await asyncio.to_thread(api_client), instance=config.instance),
    )
    memo.state = state
    start_caches(state)
    state.runner = await serve_probes_and_metrics(
        config.health_address, config.metrics_port, state.warm
    )
    log.info(
        "changegate webhook serving admission on %s:%s", config.webhook_address, config.webhook_port
    )


@kopf.on.cleanup(registry=registry)
async def stop_probes(memo: kopf.Memo, **_: Any) -> None:
    state = getattr(memo, "state", None)
    if state is None:
        return
    for cache in (state.changes, state.services, state.namespaces):
        cache.stop()
    if state.runner is not None:
        await state.runner.cleanup()


# -- caches -------------------------------------------------------------------
# What each kind contributes to the webhook's caches: compact facts, parsed once.


def index_changes(body: dict[str, Any]) -> dict[Hashable, ChangeFacts]:
    change = _parse(ChangeRequest, body)
    if change is None:
        return {}
    facts = ChangeFacts.from_model(change)
    return {(facts.namespace, t.kind, t.name): facts for t in facts.targets}


def index_services(settings: Settings) -> Callable[[dict[str, Any]], dict[Hashable, ServicePolicy]]:
    """By production namespace, and by ("service", name)."""

    def index(body: dict[str, Any]) -> dict[Hashable, ServicePolicy]:
        soc = _parse(ServiceOnCall, body)
        if soc is None:
            return {}
        policy = ServicePolicy.from_model(soc, settings.change_manager_groups)
        keys: dict[Hashable, ServicePolicy] = {ns: policy for ns in policy.production_namespaces}
        keys[("service", policy.service)] = policy
        return keys

    return index


def index_namespaces(settings: Settings) -> Callable[[dict[str, Any]], dict[Hashable, str]]:
    """("governed", name) for labelled namespaces, ("terminating", name) for those going away."""

    def index(body: dict[str, Any]) -> dict[Hashable, str]:
        metadata = body.get("metadata") or {}
        name = metadata.get("name", "")
        keys: dict[Hashable, str] = {}
        if (metadata.get("labels") or {}).get(settings.governed_label) == "true":
            keys[("governed", name)] = name
        if (
            metadata.get("deletionTimestamp")
            or (body.get("status") or {}).get("phase") == "Terminating"
        ):
            keys[("terminating", name)] = name
        return keys

    return index


def start_caches(state: WebhookState) -> None:
    lister = state.kube.custom.list_cluster_custom_object
    state.changes = WatchCache(
        "changerequests", lister, (GROUP, VERSION, "changerequests"), index_changes
    ).start()
    state.services = WatchCache(
        "serviceoncalls", lister, (GROUP, VERSION, "serviceoncalls"), index_services(state.settings)
    ).start()
    state.namespaces = WatchCache(
        "namespaces", state.kube.core.list_namespace, (), index_namespaces(state.settings)
    ).start()


# -- workloads ----------------------------------------------------------------


async def _service_for(state: WebhookState, namespace: str, labelled: bool) -> ServicePolicy | None:
    service: ServicePolicy | None = _first(state.services.get(namespace))
    if service is not None or not labelled:
        return service
    # Index miss on a namespace marked governed: one live read, in case the index lags.
    for item in await asyncio.to_thread(state.kube.list_service_on_calls):
        soc = _parse(ServiceOnCall, item)
        if soc is not None:
            policy = ServicePolicy.from_model(soc, state.settings.change_manager_groups)
            if namespace in policy.production_namespaces:
                return policy
    return None


async def decide_workload(
    *,
    body: kopf.Body,
    old: Any,
    operation: str,
    userinfo: Any,
    memo: Any,
) -> tuple[Decision, Workload]:
    state = _state(memo)
    new = Workload.from_body(body)
    if new.namespace in ("kube-system", state.settings.namespace):
        decision = decide_rollout(
            WorkloadRequest(operation, new, None, _user(userinfo)), None, (), _now()
        )
        return decision, new
    labelled = ("governed", new.namespace) in state.namespaces
    service = await _service_for(state, new.namespace, labelled)
    request = WorkloadRequest(
        operation=operation,
        new=new,
        old=Workload.from_body(old, new.namespace) if old else None,
        user=_user(userinfo),
        namespace_labelled=labelled,
    )
    changes = state.changes.get((new.namespace, new.kind, new.name))
    return decide_rollout(request, service, changes, _now()), new


def _post_event(state: WebhookState, body: kopf.Body, decision: Decision, user: str) -> None:
    involved = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "namespace": body.metadata.get("namespace"),
        "name": body.metadata.get("name"),
        "uid": body.metadata.get("uid"),
    }
    reason = "RolloutRefused" if not decision.allowed else f"Rollout{decision.reason.value}"
    message = decision.explain() if not decision.allowed else decision.message
    task = asyncio.create_task(
        asyncio.to_thread(
            state.kube.post_event,
            involved,
            reason=reason,
            message=f"{message} (user {user})",
            type_="Warning" if not decision.allowed else "Normal",
        )
    )
    state.background.add(task)
    task.add_done_callback(state.background.discard)


async def validate_workload(
    body: kopf.Body,
    old: Any,
    operation: str,
    userinfo: Any,
    dryrun: bool,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    """Refuse a rollout in a governed namespace that no approved change covers."""
    started = time.perf_counter()
    decision, workload = await decide_workload(
        body=body,
        old=old,
        operation=operation,
        userinfo=userinfo,
        memo=memo,
    )
    ADMISSION_LATENCY.labels(workload.kind).observe(time.perf_counter() - started)
    ADMISSION_DECISIONS.labels("allow" if decision.allowed else "deny", decision.reason.value).inc()
    if decision.recorded and not dryrun:
        _post_event(_state(memo), body, decision, _user(userinfo).username)
        log.info(
            "admission %s %s/%s/%s by %s: %s",
            "allowed" if decision.allowed else "denied",
            workload.namespace,
            workload.kind,
            workload.name,
            _user(userinfo).username,
            decision.reason.value,
        )
    if not decision.allowed:
        raise kopf.AdmissionError(decision.explain(), code=403)


async def stamp_workload(
    body: kopf.Body,
    old: Any,
    operation: str,
    userinfo: Any,
    memo: kopf.Memo,
    patch: kopf.Patch,
    **kwargs: Any,
) -> None:
    """Note on the workload which change let it through, and who deployed it."""
    decision, _ = await decide_workload(
        body=body,
        old=old,
        operation=operation,
        userinfo=userinfo,
        memo=memo,
    )
    if decision.allowed:
        for key, value in decision.annotations.items():
            patch.metadata.annotations[key] = value or None


for _plural in WORKLOAD_PLURALS:
    kopf.on.validate(
        "apps",
        "v1",
        _plural,
        id=f"validate-{_plural}",
        registry=registry,
        operations=["CREATE", "UPDATE"],
    )(validate_workload)
    kopf.on.mutate(
        "apps",
        "v1",
        _plural,
        id=f"mutate-{_plural}",
        registry=registry,
        operations=["CREATE", "UPDATE"],
    )(stamp_workload)


# -- changegate's own kinds ---------------------------------------------------


def _apply(verdict: Verdict, patch: kopf.Patch, warnings: list[str]) -> None:
    ADMISSION_DECISIONS.labels("allow" if verdict.allowed else "deny", verdict.reason).inc()
    if not verdict.allowed:
        raise kopf.AdmissionError(verdict.message, code=403)
    warnings.extend(verdict.warnings)
    if verdict.patch:
        ops = list(verdict.patch)
        patch.fns.append(lambda raw: jsonpatch.apply_patch(raw, ops, in_place=True))


def _must_parse(model: type[M], body: Any) -> M:
    try:
        return model.model_validate(dict(body))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise kopf.AdmissionError(
            f"invalid {model.__name__}: {where}: {first['msg']}", code=400
        ) from None


@kopf.on.mutate(
    GROUP,
    VERSION,
    "changerequests",
    id="changerequests",
    registry=registry,
    operations=["CREATE", "UPDATE"],
)
def review_changerequest(
    body: kopf.Body,
    old: Any,
    operation: str,
    userinfo: Any,
    patch: kopf.Patch,
    warnings: list[str],
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Stamp the requester and approvers from the authenticated user; keep duties apart."""
    new = _must_parse(ChangeRequest, body)
    previous = _must_parse(ChangeRequest, old) if old else None
    policy = _first(_state(memo).services.get(("service", new.spec.service)))
    user = _user(userinfo)
    operator = user.username in _state(memo).authorities.operator_users
    verdict = review_change_request(
        operation, previous, new, user, policy, _now(), operator=operator
    )
    _apply(verdict, patch, warnings)


@kopf.on.mutate(
    GROUP,
    VERSION,
    "changetemplates",
    id="changetemplates",
    registry=registry,
    operations=["CREATE", "UPDATE"],
)
def review_changetemplate(
    body: kopf.Body,
    old: Any,
    operation: str,
    userinfo: Any,
    patch: kopf.Patch,
    warnings: list[str],
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Only change managers activate templates; an edited template is deactivated."""
    new = _must_parse(ChangeTemplate, body)
    previous = _must_parse(ChangeTemplate, old) if old else None
    verdict = review_change_template(
        operation, previous, new, _user(userinfo), _state(memo).authorities, _now()
    )
    _apply(verdict, patch, warnings)


@kopf.on.validate(
    GROUP,
    VERSION,
    "serviceoncalls",
    id="serviceoncalls",
    registry=registry,
    operations=["CREATE", "UPDATE", "DELETE"],
)
def review_serviceoncall(
    body: kopf.Body,
    old: Any,
    operation: str,
    userinfo: Any,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Approvers, emergency groups and production change only by governance."""
    new: ServiceOnCall | None = None
    previous: ServiceOnCall | None
    if operation == "DELETE":
        if ("terminating", body.metadata.namespace) in _state(memo).namespaces:
            # The namespace's own deletion must never hang on us.
            return
        previous = _must_parse(ServiceOnCall, old or body)
    else:
        new = _must_parse(ServiceOnCall, body)
        previous = _must_parse(ServiceOnCall, old) if old else None
    verdict = review_service_on_call(previous, new, _user(userinfo), _state(memo).authorities)
    _apply(verdict, kopf.Patch(), [])


@kopf.on.validate(
    GROUP,
    VERSION,
    "deploymentrecords",
    id="deploymentrecords",
    registry=registry,
    operations=["CREATE", "UPDATE", "DELETE"],
)
def review_deploymentrecord(userinfo: Any, memo: kopf.Memo, **_: Any) -> None:
    """DeploymentRecords are written only by the operator's own identity."""
    verdict = review_deployment_record(_user(userinfo), _state(memo).authorities)
    _apply(verdict, kopf.Patch(), [])
