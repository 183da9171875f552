"""The /pagerduty route's HTTP glue, with an in-memory API server behind its store port.

What the handler adds to the core: the answers (401, 400, 200 applied or
ignored, 503), finding the Incident by UID and, for notes, by the PagerDuty ID
label it writes, and another try when someone else wrote the Incident first.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from changegate.adapters.kube import Conflict, Unreachable
from changegate.api.v1alpha1.incident import Incident
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.intake import Token
from changegate.handlers.controller.pagerduty_inbound import (
    LABEL_PAGERDUTY_INCIDENT,
    PATH,
    PagerDutyInbound,
)
from tests.support.contracts.pagerduty_webhooks import incident_event, sign

SECRET = "subscription-secret"
NOW = dt.datetime(2026, 11, 17, 9, 30, tzinfo=dt.UTC)
KEY = ("payments-prod", "inc-1")


@dataclass
class FakeApiServer:
    """One Incident and the signing Secret in memory; conflicts and outages on demand."""

    incident: dict[str, Any]
    conflicts: int = 0
    down: bool = False
    version: int = 1
    patches: list[dict[str, Any]] = field(default_factory=list)

    def get_incident(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.down:
            raise Unreachable("cannot reach the API server")
        return copy.deepcopy(self.incident) if (namespace, name) == KEY else None

    def patch_incident(
        self, namespace: str, name: str, body: dict[str, Any], resource_version: str
    ) -> dict[str, Any]:
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict(409, "Conflict", "the object has been modified")
        assert resource_version == self.incident["metadata"]["resourceVersion"]
        self.patches.append(body)
        for part in ("spec", "metadata"):
            for name_, value in body.get(part, {}).items():
                if isinstance(value, dict) and part == "metadata":
                    self.incident[part].setdefault(name_, {}).update(value)
                else:
                    self.incident[part][name_] = value
        self.version += 1
        self.incident["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.incident)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        return SECRET if key == "secret" else None

    def list_incidents(self, label_selector: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def create_incident(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    def patch_incident_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str
    ) -> dict[str, Any]:
        raise NotImplementedError


def incident_body() -> dict[str, Any]:
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "Incident",
        "metadata": {
            "name": KEY[1], "namespace": KEY[0], "uid": "uid-1", "resourceVersion": "1",
            "labels": {},
        },
        "spec": {"service": "payments-api", "summary": "5xx", "severity": "High"},
    }  # fmt: skip


def indexes_of(server: FakeApiServer) -> Indexes:
    # The route reads the live object; the index only finds it (it may lag behind).
    incident = Incident.model_validate(server.incident)
    empty: dict[Any, Any] = {}
    return Indexes(
        environments=empty, service_on_calls=empty, policies=empty, validity=empty,
        changes=empty, standard_changes=empty, expiries=empty, templates=empty,
        records=empty, running={}, socs_by_service=empty, incidents={KEY: [incident]},
        deployments=empty,
    )  # fmt: skip


def post(
    server: FakeApiServer, event: dict[str, Any], signature: str | None = "valid"
) -> tuple[int, dict[str, Any]]:
    inbound = PagerDutyInbound(
        server, indexes_of(server), [Token(server, "changegate-system", "s", "secret")], lambda: NOW
    )
    body = json.dumps(event).encode()
    headers = {"Content-Type": "application/json"}
    if signature == "valid":
        headers["X-PagerDuty-Signature"] = sign(body, [SECRET])

    async def run() -> tuple[int, dict[str, Any]]:
        app = web.Application()
        for path, handler in inbound.routes():
            app.router.add_post(path, handler)
        async with TestClient(TestServer(app)) as client:
            answer = await client.post(PATH, data=body, headers=headers)
            return answer.status, await answer.json()

    return asyncio.run(run())


def event(kind: str, **given: Any) -> dict[str, Any]:
    return incident_event(
        kind, incident_id="PINC01", incident_key="uid-1", occurred_at=NOW, **given
    )


def test_an_acknowledgement_is_applied_and_labels_the_incident() -> None:
    server = FakeApiServer(incident_body())
    status, answer = post(server, event("incident.acknowledged"))
    assert (status, answer["incident"]) == (200, "inc-1")
    assert answer["message"] == "acknowledged by Alice Responder via PagerDuty"
    assert server.incident["metadata"]["labels"] == {LABEL_PAGERDUTY_INCIDENT: "PINC01"}
    assert server.incident["spec"]["acknowledgements"][0]["via"] == "PagerDuty"


def test_a_note_finds_the_incident_by_the_label() -> None:
    server = FakeApiServer(incident_body())
    server.incident["metadata"]["labels"] = {LABEL_PAGERDUTY_INCIDENT: "PINC01"}
    status, answer = post(server, event("incident.annotated", note="db failover"))
    assert (status, answer["incident"]) == (200, "inc-1")
    assert [n["text"] for n in server.incident["spec"]["notes"]] == ["db failover"]


def test_a_note_of_an_unlabelled_incident_is_ignored() -> None:
    server = FakeApiServer(incident_body())
    status, answer = post(server, event("incident.annotated", note="db failover"))
    assert (status, answer["message"]) == (200, "no Incident of changegate has this incident")
    assert server.patches == []


@pytest.mark.parametrize(("signature", "status"), [(None, 401), ("v1=" + "0" * 64, 401)])
def test_unsigned_and_wrongly_signed_are_401(signature: str | None, status: int) -> None:
    server = FakeApiServer(incident_body())
    assert post(server, event("incident.acknowledged"), signature)[0] == status
    assert server.patches == []


def test_a_stale_event_is_400() -> None:
    server = FakeApiServer(incident_body())
    old = incident_event(
        "incident.acknowledged", incident_id="PINC01", incident_key="uid-1",
        occurred_at=NOW - dt.timedelta(hours=1),
    )  # fmt: skip
    status, answer = post(server, old)
    assert status == 400
    assert answer["message"].startswith("stale event")
    assert server.patches == []


def test_a_conflict_is_read_again_and_an_outage_is_503() -> None:
    server = FakeApiServer(incident_body(), conflicts=2)
    assert post(server, event("incident.resolved"))[0] == 200
    assert server.incident["spec"]["resolution"]["via"] == "PagerDuty"
    server = FakeApiServer(incident_body(), down=True)
    assert post(server, event("incident.resolved"))[0] == 503
