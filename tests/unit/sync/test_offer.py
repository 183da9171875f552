"""The runner offered a service's objects: on an edit of its integrations, and by the read-back."""

from __future__ import annotations

from typing import Any

from changegate.api.v1alpha1 import ChangeRequest, Incident
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.sync import SyncRunner
from tests.unit.builders import sample, service_on_call


def incident(name: str, service: str) -> Incident:
    body = sample("incident")
    body["metadata"]["name"] = name
    body["spec"]["service"] = service
    return Incident.model_validate(body)


def change(name: str, service: str) -> ChangeRequest:
    body = sample("changerequest")
    body["metadata"]["name"] = name
    body["spec"]["service"] = service
    return ChangeRequest.model_validate(body)


class Recording(SyncRunner):
    seen: list[tuple[str, str]]

    def observe(self, kind: Any, resource: Any) -> None:
        self.seen.append((kind.plural, resource.metadata.name))


def runner() -> Recording:
    empty: dict[Any, Any] = {}
    indexes = Indexes(
        environments=empty, service_on_calls=empty, policies=empty, validity=empty,
        changes={("a", "c1"): [change("c1", "pay")], ("a", "c2"): [change("c2", "search")]},
        standard_changes=empty, expiries=empty, templates=empty, records=empty, running={},
        socs_by_service=empty, deployments=empty,
        incidents={("a", "i1"): [incident("i1", "pay")], ("a", "i2"): [incident("i2", "search")]},
    )  # fmt: skip
    found = Recording(state=None, indexes=indexes, secrets=None, kick_work=lambda *_: None)  # type: ignore[arg-type]
    found.seen = []
    return found


def test_offer_observes_every_incident_and_change_of_the_services_wanted_only() -> None:
    offered = runner()
    offered.offer(lambda service: service == "pay")
    assert offered.seen == [("incidents", "i1"), ("changerequests", "c1")]


def test_an_integrations_edit_is_a_change_and_other_edits_are_not() -> None:
    offered = runner()
    soc = service_on_call()
    assert not offered.integrations_changed(soc, listed=True)  # start-up observes every object
    assert not offered.integrations_changed(soc, listed=False)
    body = soc.model_dump(by_alias=True)
    body["spec"]["team"]["name"] = "team-other"
    assert not offered.integrations_changed(type(soc).model_validate(body), listed=False)
    body["spec"]["integrations"]["pagerDuty"]["sendChangeEvents"] = False
    assert offered.integrations_changed(type(soc).model_validate(body), listed=False)


def test_a_first_sight_after_start_up_is_a_change_kopf_may_have_folded_an_edit_into_it() -> None:
    offered = runner()
    soc = service_on_call()
    assert offered.integrations_changed(soc, listed=False)
    offered.forget_service(soc.metadata.uid or "")
    assert not offered.integrations_changed(soc, listed=True)
