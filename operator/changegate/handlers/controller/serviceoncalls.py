"""ServiceOnCall status: what runs in each environment of a service, and who is on call now.

Environments are written after a rollout succeeds, from the indexed
ServiceOnCall and with its resourceVersion, so a concurrent write is never
lost: on a conflict the rollout's handler is retried and reads the index afresh.
Who is on call (status.onCall and the OnCall condition, core.oncall) is
written on every event of the ServiceOnCall and again by the scheduler when
the answer's `until` passes (a handoff); nobody on call is the condition False.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import kopf

from changegate.adapters.kube import Conflict
from changegate.api.v1alpha1 import GROUP, VERSION, ChangeRequest, ContainerImage, ServiceOnCall
from changegate.api.v1alpha1.common import ConditionStatus
from changegate.api.v1alpha1.serviceoncall import EnvironmentStatus
from changegate.core.change.rollouts import Observation
from changegate.core.common import next_condition
from changegate.core.oncall.schedule import (
    OnCallAnswer,
    on_call_now,
    service_schedule,
    who_is_on_call,
)
from changegate.core.oncall.wallclock import ScheduleError
from changegate.handlers.controller.dora import forget as forget_dora
from changegate.handlers.controller.indexes import Environment, Indexes
from changegate.handlers.controller.registry import registry
from changegate.handlers.controller.state import ControllerState, parse, state_of
from changegate.metrics import SERVICE_ON_CALL

NOTE_ATTEMPTS = 5
ON_CALL = "OnCall"  # condition type: False says nobody is on call, and why


def environment_status(
    seen: Observation, environment: Environment, change: ChangeRequest | None
) -> EnvironmentStatus:
    return EnvironmentStatus(
        name=environment.environment,
        namespace=seen.namespace,
        images=[ContainerImage(container=c, image=i) for c, i in sorted(seen.images.items())],
        change_request=change.metadata.name if change else seen.change,
        deployment_record=seen.key,
        deployed_time=seen.finished,
    )


def note_version(
    state: ControllerState,
    indexes: Indexes,
    seen: Observation,
    environment: Environment,
    change: ChangeRequest | None,
) -> None:
    """Record on the ServiceOnCall what now runs in the rollout's environment.

    The whole list is written, so only onto the status it was computed from; after a
    conflict (another writer of the status: lastIncident, dora, on-call) onto a live read,
    since an event handler is not retried and the rollout may bring no further event.
    """
    soc = indexes.service_on_call(environment.soc_namespace, environment.soc_name)
    for _ in range(NOTE_ATTEMPTS):
        if soc is None:
            return
        current = next(
            (e for e in soc.status.environments if e.name == environment.environment), None
        )
        if current is not None and current.deployment_record == seen.key:
            return
        others = [e for e in soc.status.environments if e.name != environment.environment]
        environments = sorted(
            [*others, environment_status(seen, environment, change)], key=lambda e: e.name
        )
        try:
            state.kube.patch_status(
                "serviceoncalls",
                environment.soc_namespace,
                environment.soc_name,
                {"environments": [e.to_json() for e in environments]},
                soc.metadata.resource_version,
            )
            return
        except Conflict:
            body = state.kube.read_namespaced(
                "serviceoncalls", environment.soc_namespace, environment.soc_name
            )
            soc = parse(ServiceOnCall, body) if body else None
    raise kopf.TemporaryError(f"could not note {seen.key} on its ServiceOnCall", delay=1)


def answer_of(soc: ServiceOnCall, now: dt.datetime) -> OnCallAnswer | str:
    """Who is on call for the service now, or why the schedule cannot say (a bad time zone)."""
    try:
        return who_is_on_call(service_schedule(soc.spec.on_call), now)
    except ScheduleError as error:
        return f"nobody is on call: the schedule cannot be evaluated ({error})"


def count_on_call(soc: ServiceOnCall, answer: OnCallAnswer | str) -> None:
    """The on-call gauge, set wherever the status is refreshed: 0 is the nobody-on-call alert's."""
    nobody = isinstance(answer, str) or answer.nobody
    SERVICE_ON_CALL.labels(soc.spec.service.name).set(0 if nobody else 1)


def forget_on_call(body: kopf.Body) -> None:
    """A deleted service leaves the gauges, so no alert or panel speaks of it."""
    name = body.get("spec", {}).get("service", {}).get("name")
    if name:
        with contextlib.suppress(KeyError):
            SERVICE_ON_CALL.remove(name)
        forget_dora(name)


def on_call_patch(soc: ServiceOnCall, now: dt.datetime) -> dict[str, Any] | None:
    """status.onCall and the OnCall condition as they should read now; None when they do."""
    answer = answer_of(soc, now)
    count_on_call(soc, answer)
    generation = soc.metadata.generation
    previous = soc.status.conditions
    if isinstance(answer, str) or answer.nobody:
        reason = "ScheduleError" if isinstance(answer, str) else answer.reason.value
        message = answer if isinstance(answer, str) else answer.message
        entry = None
        condition = next_condition(
            previous, ON_CALL, ConditionStatus.FALSE, reason, message, generation, now
        )
    else:
        entry = on_call_now(answer)
        condition = next_condition(
            previous, ON_CALL, ConditionStatus.TRUE, answer.reason.value, answer.message,
            generation, now,
        )  # fmt: skip
    others = [c for c in previous if c.type != ON_CALL]
    old = next((c for c in previous if c.type == ON_CALL), None)
    same_condition = (
        old is not None
        and old.model_copy(update={"last_transition_time": condition.last_transition_time})
        == condition
    )
    if same_condition and soc.status.on_call == entry:
        return None
    return {
        "onCall": entry.to_json() if entry else None,
        "conditions": [c.to_json() for c in [*others, condition]],
    }


def on_call_due(soc: ServiceOnCall, now: dt.datetime) -> dt.datetime | None:
    """When the on-call answer next changes: the handoff the status names, else asked anew."""
    if soc.status.on_call is not None and soc.status.on_call.until_time is not None:
        return soc.status.on_call.until_time
    answer = answer_of(soc, now)
    return None if isinstance(answer, str) else answer.until


def refresh_on_call(
    state: ControllerState, indexes: Indexes, namespace: str, name: str, now: dt.datetime
) -> None:
    """The scheduler's call at a handoff: write who is on call now, if nothing changed since."""
    soc = indexes.service_on_call(namespace, name)
    if soc is None:
        return
    patch = on_call_patch(soc, now)
    if patch is not None:
        state.kube.patch_status(
            "serviceoncalls", namespace, name, patch, soc.metadata.resource_version
        )


@kopf.on.event(GROUP, VERSION, "serviceoncalls", registry=registry)
def reconcile_on_call(
    body: kopf.Body, type: str | None, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    """Who is on call, written whenever the ServiceOnCall changes (its schedule, say)."""
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        forget_on_call(body)
        return
    soc = parse(ServiceOnCall, body)
    if soc is None:
        return
    wanted = on_call_patch(soc, state_of(memo).clock())
    if wanted is not None:
        patch.status.update(wanted)
