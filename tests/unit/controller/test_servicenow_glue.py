"""The ServiceNow read-back's glue: when the scheduler runs a pass, and how acts become patches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Hashable, Iterator
from typing import Any

from changegate.api.v1alpha1.incident import ResolutionCode
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.incident.servicenow import ReadBack as Found
from changegate.core.incident.servicenow import RemoteNote
from changegate.handlers.controller.servicenow import (
    Append,
    ReadBack,
    incident_acts,
    read_back_jobs,
)
from changegate.handlers.controller.state import ControllerState
from changegate.settings import Role, Settings
from tests.unit.builders import NOW, service_on_call


class Services:
    """Just what the read-back asks of the indexes."""

    def __init__(self, *socs: ServiceOnCall) -> None:
        self.socs = socs

    def all_service_on_calls(self) -> Iterator[ServiceOnCall]:
        return iter(self.socs)


def mirrored(to_servicenow: bool = True) -> ServiceOnCall:
    """The sample ServiceOnCall (which mirrors to ServiceNow), or without that integration."""
    body = service_on_call().to_json()
    if not to_servicenow:
        body["spec"]["integrations"].pop("serviceNow")
    return ServiceOnCall.model_validate(body)


def read_back(*socs: ServiceOnCall) -> tuple[ReadBack, list[Hashable]]:
    kicked: list[Hashable] = []

    def kick(key: Hashable, _: Callable[[], Awaitable[None]]) -> None:
        kicked.append(key)

    settings = Settings(Role.CONTROLLER, servicenow_poll_seconds=2.0)
    state = ControllerState(settings, kube=None, clock=lambda: NOW)  # type: ignore[arg-type]
    return ReadBack(state, Services(*socs), None, None, kick), kicked  # type: ignore[arg-type]


def test_no_pass_is_due_while_no_service_mirrors_to_servicenow() -> None:
    poll, _ = read_back(mirrored(to_servicenow=False))
    [job] = read_back_jobs(poll)

    assert list(job.dues(poll.state, poll.indexes)) == []


def test_a_pass_is_due_every_interval_and_runs_off_the_scheduler() -> None:
    poll, kicked = read_back(mirrored())
    [job] = read_back_jobs(poll)
    first = [d.at for d in job.dues(poll.state, poll.indexes)]

    job.run(poll.state, poll.indexes, "servicenow-read-back", first[0])
    after = [d.at for d in job.dues(poll.state, poll.indexes)]

    assert first == [NOW + dt.timedelta(seconds=2), NOW + dt.timedelta(seconds=4)]
    assert kicked == [("servicenow", "read-back")]
    assert after == [NOW + dt.timedelta(seconds=4), NOW + dt.timedelta(seconds=6)]


def test_an_entry_is_appended_or_its_list_created_only_on_the_object_seen() -> None:
    entry = {"text": "failing over", "via": "ServiceNow"}
    seen: dict[str, Any] = {"metadata": {"resourceVersion": "41"}, "spec": {"notes": []}}
    listed: dict[str, Any] = {"metadata": {"resourceVersion": "42"}, "spec": {"notes": [{}]}}

    assert Append("notes", entry).operations(seen) == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "add", "path": "/spec/notes", "value": [entry]},
    ]
    assert Append("notes", entry).operations(listed) == [
        {"op": "add", "path": "/spec/notes/-", "value": entry}
    ]


def test_what_servicenow_said_becomes_acts_via_servicenow() -> None:
    found = Found(
        acknowledge_by="product-dev-2",
        resolve=(ResolutionCode.WORKAROUND, "replica promoted", "sn.agent"),
        assignee="product-dev-2",
        notes=(RemoteNote("sn.agent", "failing over"),),
    )

    note, ack, assign, resolve = incident_acts(found, "dev2.sn")

    assert note == Append(
        "notes", {"text": "failing over", "via": "ServiceNow", "externalUser": "sn.agent"}
    )
    assert isinstance(ack, Append)
    assert ack.value["externalUser"] == "product-dev-2"
    assert {"op": "add", "path": "/spec/assignedExternalUser", "value": "dev2.sn"} in assign
    assert resolve == [
        {
            "op": "add",
            "path": "/spec/resolution",
            "value": {
                "code": "Workaround",
                "note": "replica promoted",
                "via": "ServiceNow",
                "externalUser": "sn.agent",
            },
        }
    ]
