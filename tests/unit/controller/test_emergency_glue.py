"""A break-glass rollout's Emergency change gets the rollout even while the index lags.

The race CI caught: the record was written (and already indexed) a moment before
the change was created, so the change looked deleted and stayed Approved.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from changegate.api.v1alpha1 import AdmissionBasis
from changegate.handlers.controller.indexes import Environment
from changegate.handlers.controller.rollouts import raise_emergency_change
from changegate.handlers.controller.state import ControllerState
from tests.unit.builders import NOW
from tests.unit.change.test_rollouts import finished_observation
from tests.unit.controller.test_glue import indexes


class ChangeKube:
    """Creates the emergency change with a generated name and records status patches."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, dict[str, Any], str | None]] = []

    def changes_labelled(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return []  # not created yet

    def create_generated(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        metadata = body["metadata"] | {
            "name": body["metadata"]["generateName"] + "x7k2p",
            "uid": "uid-emergency",
            "resourceVersion": "7",
        }
        return body | {"metadata": metadata}

    def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any], version: str | None
    ) -> None:
        self.patches.append((name, status, version))


def test_the_emergency_change_gets_its_rollout_though_only_the_record_is_indexed() -> None:
    seen = finished_observation(basis=AdmissionBasis.BREAK_GLASS, change=None, break_glass="fire")
    kube = ChangeKube()
    state = cast(ControllerState, SimpleNamespace(kube=kube))
    lagging = indexes(records_by_name={seen.key: [NOW]})  # the record, not yet the change
    environment = Environment("team", "payments", "payments-api", "prod", True, False, None)

    raise_emergency_change(state, lagging, seen, environment, NOW)

    [(name, status, version)] = kube.patches
    assert name.startswith("emergency-")
    assert version == "7"  # into the very object created
    [rollout] = status["rollouts"]
    assert rollout["deploymentRecord"] == seen.key
    assert rollout["result"] == "Succeeded"
