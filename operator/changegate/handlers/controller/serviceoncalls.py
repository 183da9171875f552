"""ServiceOnCall status: what runs in each environment of a service, since when.

Written after a rollout succeeds, from the indexed ServiceOnCall and with its
resourceVersion, so a concurrent write is never lost: on a conflict the
rollout's handler is retried and reads the index afresh.
"""

from __future__ import annotations

import kopf

from changegate.adapters.kube import Conflict
from changegate.api.v1alpha1 import ChangeRequest, ContainerImage
from changegate.api.v1alpha1.serviceoncall import EnvironmentStatus
from changegate.core.change.rollouts import Observation
from changegate.handlers.controller.indexes import Environment, Indexes
from changegate.handlers.controller.state import ControllerState


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
    """Record on the ServiceOnCall what now runs in the rollout's environment."""
    soc = indexes.service_on_call(environment.soc_namespace, environment.soc_name)
    if soc is None:
        return
    current = next((e for e in soc.status.environments if e.name == environment.environment), None)
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
    except Conflict as error:
        raise kopf.TemporaryError(f"ServiceOnCall changed meanwhile: {error}", delay=1) from error
