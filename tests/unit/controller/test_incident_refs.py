"""The glue of incident_refs: lastIncident written only when it differs, and a change's rollout
noted once on the Incident it names, from indexes shaped like Kopf's and a fake API.

The fake API keeps one Incident and refuses a write under a stale resourceVersion,
as the API server does; the index may lag it, as Kopf's does.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf
import pytest

from changegate.adapters.kube import Conflict
from changegate.api.v1alpha1 import AdmissionBasis, FinalResult
from changegate.api.v1alpha1.incident import Incident
from changegate.core.incident.latest import SETTLE, Opening, last_incident_ref
from changegate.core.incident.rollouts import ROLLED_OUT
from changegate.handlers.controller import incident_refs
from changegate.handlers.controller.indexes import Environment, Indexes, incident_openings
from changegate.handlers.controller.state import ControllerState
from changegate.settings import Role, Settings
from tests.unit.builders import (
    NAMESPACE,
    NOW,
    SERVICE,
    change_request,
    iso,
    service_on_call,
    with_spec,
)
from tests.unit.change.test_rollouts import finished_observation
from tests.unit.controller.test_glue import indexes as empty_but

SOC_NAMESPACE = "team-payments"
SOC = service_on_call(namespace=SOC_NAMESPACE)
ENVIRONMENT = Environment(SOC_NAMESPACE, SOC.metadata.name or "", SERVICE, "production-0",
                          True, False, NAMESPACE)  # fmt: skip


def incident(name: str, namespace: str, hours: float = -1, **status: Any) -> Incident:
    return Incident.model_validate(
        {
            "metadata": {
                "name": name, "namespace": namespace, "uid": f"uid-{name}",
                "resourceVersion": "1", "creationTimestamp": iso(NOW + dt.timedelta(hours=hours)),
            },
            "spec": {"service": SERVICE, "summary": "errors", "severity": "High"},
            "status": status,
        }
    )  # fmt: skip


class FakeKube:
    """One stored Incident with a resourceVersion; status patches of ServiceOnCalls recorded."""

    def __init__(self, stored: Incident | None, conflicts: int = 0) -> None:
        self.body = stored.to_json() if stored else None
        self.conflicts = conflicts
        self.incident_writes: list[dict[str, Any]] = []
        self.soc_writes: list[tuple[str, str, dict[str, Any]]] = []

    def get_incident(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.body

    def patch_incident_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str
    ) -> dict[str, Any]:
        assert self.body is not None
        if self.conflicts:  # someone (the incident pass) wrote meanwhile
            self.conflicts -= 1
            self.body["metadata"]["resourceVersion"] = str(int(resource_version) + 1)
            raise Conflict(409, "Conflict", "the object has been modified")
        assert resource_version == self.body["metadata"]["resourceVersion"]
        self.incident_writes.append(status)
        self.body["status"] = self.body.get("status", {}) | status
        self.body["metadata"]["resourceVersion"] = str(int(resource_version) + 1)
        return self.body

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.soc_writes.append((plural, f"{namespace}/{name}", status))


def indexes(*incidents: Incident) -> Indexes:
    return empty_but(
        **{
            "service_on_calls_by_service": {SERVICE: [SOC]},
            "service_on_calls": {(SOC_NAMESPACE, SOC.metadata.name): [SOC]},
            "incidents_by_name": {(i.metadata.namespace, i.metadata.name): [i] for i in incidents},
            "incident_openings": openings(incidents),
        }
    )


def openings(incidents: tuple[Incident, ...]) -> dict[str, list[Opening]]:
    """The openings index as Kopf fills it: the real index function over each stored body."""
    store: dict[str, list[Opening]] = {}
    for i in incidents:
        for service, opening in incident_openings(body=kopf.Body(i.to_json())).items():
            store.setdefault(service, []).append(opening)
    return store


def state(kube: FakeKube) -> ControllerState:
    return ControllerState(Settings(Role.CONTROLLER), kube, clock=lambda: NOW)  # type: ignore[arg-type]


ANSWERING = with_spec(change_request("api-fix-1"), incidentRef={"name": "inc-1"})
SEEN = finished_observation(change="api-fix-1", finished=NOW - dt.timedelta(minutes=1))


def rolled_out(kube: FakeKube) -> list[str]:
    body = kube.body or {}
    timeline = (body.get("status") or {}).get("timeline") or []
    return [e["message"] for e in timeline if e["action"] == ROLLED_OUT]


@pytest.mark.parametrize("where", [NAMESPACE, SOC_NAMESPACE], ids=["change-ns", "service-ns"])
def test_a_rollout_is_noted_once_on_the_incident_the_change_names(where: str) -> None:
    named = incident("inc-1", where)
    kube = FakeKube(named)
    for _ in range(3):  # re-events with the index still showing the old timeline
        incident_refs.note_answering_rollout(
            state(kube), indexes(named), SEEN, ANSWERING, ENVIRONMENT
        )
    assert len(kube.incident_writes) == 1
    assert rolled_out(kube) == [
        f"change api-fix-1 rolled out revision 2 of Deployment/{SERVICE}: Succeeded,"
        f" record {SEEN.key}"
    ]


def test_a_conflict_is_retried_onto_a_fresh_read() -> None:
    named = incident("inc-1", NAMESPACE)
    kube = FakeKube(named, conflicts=2)
    incident_refs.note_answering_rollout(state(kube), indexes(named), SEEN, ANSWERING, ENVIRONMENT)
    assert len(kube.incident_writes) == 1
    assert len(rolled_out(kube)) == 1


def test_an_indexed_entry_costs_no_api_call() -> None:
    named = incident("inc-1", NAMESPACE)
    kube = FakeKube(named)
    incident_refs.note_answering_rollout(state(kube), indexes(named), SEEN, ANSWERING, ENVIRONMENT)
    caught_up = Incident.model_validate(kube.body)
    kube.body = None  # any read now would find nothing: the index must decide
    incident_refs.note_answering_rollout(
        state(kube), indexes(caught_up), SEEN, ANSWERING, ENVIRONMENT
    )
    assert len(kube.incident_writes) == 1


@pytest.mark.parametrize(
    ("seen", "change", "stored"),
    [
        (SEEN, ANSWERING, None),  # the Incident does not exist: quietly nothing
        (SEEN, change_request("api-plain"), incident("inc-1", NAMESPACE)),  # names none
        (
            finished_observation(basis=AdmissionBasis.ROLLBACK),
            ANSWERING,
            incident("inc-1", NAMESPACE),
        ),
        (finished_observation(result=None, finished=None), ANSWERING, incident("inc-1", NAMESPACE)),
        (SEEN, ANSWERING, incident("inc-1", "elsewhere")),
    ],
    ids=["missing", "no-ref", "rollback", "in-progress", "other-namespace"],
)
def test_nothing_is_noted(seen: Any, change: Any, stored: Incident | None) -> None:
    kube = FakeKube(stored)
    found = (stored,) if stored else ()
    incident_refs.note_answering_rollout(state(kube), indexes(*found), seen, change, ENVIRONMENT)
    assert kube.incident_writes == []


def test_a_failed_rollout_is_noted_as_failed() -> None:
    named = incident("inc-1", NAMESPACE)
    kube = FakeKube(named)
    failed = finished_observation(
        change="api-fix-1", result=FinalResult.FAILED, finished=NOW - dt.timedelta(minutes=1)
    )
    incident_refs.note_answering_rollout(
        state(kube), indexes(named), failed, ANSWERING, ENVIRONMENT
    )
    assert rolled_out(kube)[0].endswith(f": Failed, record {failed.key}")


def test_last_incident_is_written_only_when_it_differs() -> None:
    older, newer = incident("inc-1", SOC_NAMESPACE, -2), incident("inc-2", SOC_NAMESPACE, -1)
    kube = FakeKube(None)
    incident_refs.refresh_last_incident(state(kube), indexes(older, newer), SERVICE)
    want = {"lastIncident": {"name": "inc-2", "namespace": SOC_NAMESPACE, "uid": "uid-inc-2"}}
    assert kube.soc_writes == [("serviceoncalls", f"{SOC_NAMESPACE}/{SOC.metadata.name}", want)]

    assert incident_refs.last_incident_patch(SOC, indexes()) is None  # nothing, and says so
    written = SOC.model_copy(deep=True)
    written.status.last_incident = last_incident_ref(openings((older, newer))[SERVICE])
    assert incident_refs.last_incident_patch(written, indexes(older, newer)) is None
    assert incident_refs.last_incident_patch(written, indexes(older)) == {
        "lastIncident": {"name": "inc-1", "namespace": SOC_NAMESPACE, "uid": "uid-inc-1"}
    }
    assert incident_refs.last_incident_patch(written, indexes()) == {"lastIncident": None}


def test_the_scheduler_writes_last_incident_once_settled() -> None:
    """Due SETTLE after the Incident opened (one write for a storm), then written by the job."""
    older, newer = incident("inc-1", SOC_NAMESPACE, -2), incident("inc-2", SOC_NAMESPACE, -1)
    kube = FakeKube(None)
    [due] = incident_refs.last_incident_dues(state(kube), indexes(older, newer))
    assert due.key == SERVICE
    assert due.at == older.metadata.creation_timestamp + SETTLE  # the first not shown yet
    incident_refs.write_last_incident(state(kube), indexes(older, newer), due.key, due.at)
    [(_, _, written)] = kube.soc_writes
    assert written["lastIncident"]["name"] == "inc-2"
