"""The controller extends each service's chain: linked to the latest record, one chain even
when rollouts of one service finish at once (threads, as Kopf runs sync handlers).

The adapter is a small fake that stores what is created, stamping a creation order.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, cast

from changegate.api.v1alpha1.deploymentrecord import DeploymentRecord
from changegate.core.change.hashchain import chain_breaks, link_to
from changegate.handlers.controller.chain import write_linked
from changegate.handlers.controller.state import ControllerState
from tests.unit.builders import sample


class StoringKube:
    """Lists and creates DeploymentRecords in memory, as the API server would."""

    def __init__(self) -> None:
        self.stored: list[dict[str, Any]] = []
        self.guard = threading.Lock()

    def list_cluster_objects(self, plural: str, field_selector: str | None = None) -> list[Any]:
        service = (field_selector or "").removeprefix("spec.service=")
        with self.guard:
            found = [b for b in self.stored if b["spec"]["service"] == service]
        threading.Event().wait(0.001)  # let another thread's handler run in between
        return found

    def create_cluster_object(self, plural: str, body: dict[str, Any]) -> bool:
        with self.guard:
            if any(b["metadata"]["name"] == body["metadata"]["name"] for b in self.stored):
                return False
            stamp = f"2026-11-17T10:{len(self.stored) // 60:02d}:{len(self.stored) % 60:02d}Z"
            body["metadata"]["creationTimestamp"] = stamp
            self.stored.append(body)
            return True


def record(name: str, service: str = "payments-api") -> DeploymentRecord:
    body = sample("deploymentrecord")
    body["metadata"] = {"name": name}
    body["spec"]["service"] = service
    return DeploymentRecord.model_validate(body)


def state(kube: StoringKube) -> ControllerState:
    return cast(ControllerState, SimpleNamespace(kube=kube))


def test_each_record_links_to_the_services_latest_and_a_retry_writes_nothing() -> None:
    kube = StoringKube()
    assert write_linked(state(kube), record("a.1"))
    assert write_linked(state(kube), record("b.1", service="orders"))
    assert write_linked(state(kube), record("a.2"))
    assert not write_linked(state(kube), record("a.2"))

    first, other, second = kube.stored
    assert "previous" not in first["spec"]
    assert "previous" not in other["spec"]
    link = link_to(first)
    assert second["spec"]["previous"] == {"name": link.name, "sha256": link.sha256}


def test_records_of_one_service_written_at_once_still_make_one_chain() -> None:
    kube = StoringKube()
    with ThreadPoolExecutor(max_workers=8) as pool:
        written = list(pool.map(lambda i: write_linked(state(kube), record(f"a.{i}")), range(16)))

    assert all(written)
    assert chain_breaks(kube.stored) == []
    linked = [b["spec"]["previous"]["name"] for b in kube.stored if "previous" in b["spec"]]
    assert len(linked) == len(set(linked)) == 15  # no two records link to the same one
