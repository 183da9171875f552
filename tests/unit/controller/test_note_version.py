"""What runs where is noted on the ServiceOnCall even when another writer of its status
(lastIncident, dora, on-call) got there first: an event handler is not retried, and a
finished rollout may bring no further event.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from changegate.adapters.kube import Conflict
from changegate.api.v1alpha1 import ServiceOnCall
from changegate.handlers.controller.indexes import Environment
from changegate.handlers.controller.serviceoncalls import note_version
from changegate.handlers.controller.state import ControllerState
from tests.unit.builders import service_on_call
from tests.unit.change.test_rollouts import finished_observation
from tests.unit.controller.test_glue import indexes


class RacingKube:
    """The ServiceOnCall's status was written by someone else after the index saw it."""

    def __init__(self, live: ServiceOnCall) -> None:
        self.live = live
        self.written: list[tuple[dict[str, Any], str | None]] = []

    def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any], version: str | None
    ) -> None:
        if version != self.live.metadata.resource_version:
            raise Conflict(409, "Conflict", "the object has been modified")
        self.written.append((status, version))

    def read_namespaced(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        return self.live.to_json()


def test_a_conflict_is_retried_onto_the_live_service_on_call() -> None:
    indexed = service_on_call()
    indexed.metadata.resource_version = "10"
    live = indexed.model_copy(deep=True)
    live.metadata.resource_version = "11"  # lastIncident written meanwhile
    kube = RacingKube(live)
    state = cast(ControllerState, SimpleNamespace(kube=kube))
    namespace, name = indexed.metadata.namespace or "", indexed.metadata.name or ""
    environment = Environment(namespace, name, "payments-api", "production-0", True, False, None)
    seen = finished_observation()

    note_version(
        state, indexes(service_on_calls={(namespace, name): [indexed]}), seen, environment, None
    )

    [(status, version)] = kube.written
    assert version == "11"
    [noted] = status["environments"]
    assert noted["deploymentRecord"] == seen.key
