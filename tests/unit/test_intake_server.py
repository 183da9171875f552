"""The Alertmanager intake's HTTP glue, with an in-memory API server behind its store port.

What the handler adds to the core: the token, the size bound, the 4xx answers,
persisting before answering (503 when it could not), dedup across retries and
crashes, and one service's failure not holding up another's incidents.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from changegate.adapters.kube import Conflict, Unreachable
from changegate.api.v1alpha1.common import ObjectRef
from changegate.api.v1alpha1.incident import Incident
from changegate.core.incident.routing import RoutingConfig
from changegate.handlers.controller.intake import (
    LABEL_EPISODE,
    LABEL_GROUP,
    LABEL_SERVICE,
    PATH,
    Intake,
    IntakeConfig,
    LiveServices,
    Services,
    authorized,
    group_hash,
    intake_app,
)
from tests.unit.builders import service_on_call
from tests.unit.incident.builders import DIRECTORY, T0, alert, body

TOKEN = "s3cret-token-value"
RELEASE = "changegate-system"
NAMESPACES = {"payments": "payments-prod", "checkout": "checkout-prod"}


@dataclass
class FakeApiServer:
    """Incidents and one Secret in memory, with resourceVersions, 409s and injected faults."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    secret: str | None = TOKEN
    down_for: set[str] = field(default_factory=set)  # services whose writes fail
    status_faults: int = 0  # the next status patches that fail as if the process died
    conflicts: int = 0  # the next status patches that meet a concurrent write
    writes: int = 0
    versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self.versions))
        self.writes += 1
        return copy.deepcopy(obj)

    def _check(self, namespace: str, name: str, resource_version: str) -> dict[str, Any]:
        obj = self.objects[(namespace, name)]
        if obj["spec"]["service"] in self.down_for:
            raise Unreachable("cannot reach the API server: connection refused")
        if obj["metadata"]["resourceVersion"] != resource_version:
            raise Conflict(409, "Conflict", "the object has been modified")
        return obj

    def list_incidents(self, label_selector: str) -> list[dict[str, Any]]:
        wanted = dict(term.split("=") for term in label_selector.split(","))
        return [
            copy.deepcopy(o)
            for o in self.objects.values()
            if wanted.items() <= o["metadata"]["labels"].items()
        ]

    def create_incident(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if body["spec"]["service"] in self.down_for:
            raise Unreachable("cannot reach the API server: connection refused")
        key = (namespace, body["metadata"]["name"])
        if key in self.objects:
            return None
        obj = copy.deepcopy(body)
        obj["metadata"]["namespace"] = namespace
        obj["status"] = {}
        self.objects[key] = obj
        return self._bump(obj)

    def patch_incident(
        self, namespace: str, name: str, body: dict[str, Any], resource_version: str
    ) -> dict[str, Any]:
        obj = self._check(namespace, name, resource_version)
        obj["spec"].update(body["spec"])
        return self._bump(obj)

    def patch_incident_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str
    ) -> dict[str, Any]:
        obj = self._check(namespace, name, resource_version)
        if self.status_faults:
            self.status_faults -= 1
            raise Unreachable("cannot reach the API server: connection reset")
        if self.conflicts:
            self.conflicts -= 1
            self._bump(obj)  # someone else (the lifecycle reconcile) wrote meanwhile
            raise Conflict(409, "Conflict", "the object has been modified")
        obj["status"].update({k: v for k, v in status.items() if v is not None})
        return self._bump(obj)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        assert (namespace, name, key) == (RELEASE, "intake-token", "token")
        return self.secret

    def incidents(self) -> list[dict[str, Any]]:
        return sorted(self.objects.values(), key=lambda o: o["metadata"]["name"])


Call = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


def run(
    api: FakeApiServer,
    test: Callable[[Call], Awaitable[None]],
    limit: int = 1 << 20,
    opened: Callable[[Incident], None] | None = None,
) -> None:
    config = IntakeConfig(
        routing=RoutingConfig(fallback_service="platform"),
        namespace=RELEASE,
        token_secret="intake-token",
        token_key="token",
        max_body_bytes=limit,
    )
    services = Services(DIRECTORY, NAMESPACES)
    intake = Intake(api, config, lambda: services, lambda: T0, opened=opened)

    async def scenario() -> None:
        async with TestClient(TestServer(intake_app(intake))) as client:

            async def call(
                payload: Any, token: str | None = TOKEN, raw: bytes | None = None
            ) -> tuple[int, dict[str, Any]]:
                headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
                data = raw if raw is not None else json.dumps(payload).encode()
                response = await client.post(PATH, data=data, headers=headers)
                return response.status, json.loads(await response.text())

            await test(call)

    asyncio.run(scenario())


def requests(result: str) -> float:
    value = REGISTRY.get_sample_value("changegate_intake_requests_total", {"result": result})
    return value or 0.0


# -- authentication ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token", "expected"),
    [
        (f"Bearer {TOKEN}", TOKEN, True),
        (f"bearer {TOKEN}", TOKEN, True),
        (f"Bearer {TOKEN}x", TOKEN, False),
        (f"Basic {TOKEN}", TOKEN, False),
        ("Bearer ", TOKEN, False),
        ("", TOKEN, False),
        (f"Bearer {TOKEN}", None, False),  # no Secret: nobody gets in
    ],
)
def test_authorized_only_with_the_secrets_token(
    header: str, token: str | None, expected: bool
) -> None:
    assert authorized(header, token) is expected


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_a_post_without_the_token_is_refused_and_writes_nothing(token: str | None) -> None:
    api = FakeApiServer()
    before = requests("unauthorized")

    async def test(call: Call) -> None:
        status, answer = await call(body(alert("a1")), token=token)
        assert status == 401
        assert answer == {"message": "unauthorized"}

    run(api, test)
    assert api.objects == {}
    assert requests("unauthorized") == before + 1


def test_without_its_secret_the_intake_lets_nobody_in() -> None:
    api = FakeApiServer(secret=None)

    async def test(call: Call) -> None:
        status, _ = await call(body(alert("a1")), token="")
        assert status == 401

    run(api, test)
    assert api.objects == {}


# -- what it will never accept ----------------------------------------------------------


def test_a_body_over_the_limit_is_413_naming_the_bound() -> None:
    api = FakeApiServer()
    many = [alert(f"{i:04x}") for i in range(200)]

    async def test(call: Call) -> None:
        status, answer = await call(body(*many))
        assert status == 413
        assert "4096 bytes" in answer["message"]

    run(api, test, limit=4096)
    assert api.objects == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "not an Alertmanager payload"),
        (json.dumps(body(alert("a1")) | {"version": "3"}).encode(), 'version must be "4"'),
        (json.dumps(body(alert("a1")) | {"alerts": []}).encode(), "alerts"),
        (json.dumps(body(alert("zz-not-hex"))).encode(), "fingerprint"),
    ],
)
def test_a_malformed_post_is_400_with_the_reason(raw: bytes, expected: str) -> None:
    api = FakeApiServer()

    async def test(call: Call) -> None:
        status, answer = await call(None, raw=raw)
        assert status == 400
        assert expected in answer["message"]

    run(api, test)
    assert api.objects == {}


# -- persisted before answering --------------------------------------------------------


def test_a_firing_alert_opens_an_incident_with_its_alerts_in_the_services_namespace() -> None:
    api = FakeApiServer()

    async def test(call: Call) -> None:
        status, answer = await call(body(alert("a1"), alert("b2", starts=1)))
        assert status == 200
        (opened,) = answer["incidents"]
        assert opened["service"] == "payments"
        assert opened["outcome"] == "Opened"

    run(api, test)
    (incident,) = api.incidents()
    labels = incident["metadata"]["labels"]
    assert incident["metadata"]["namespace"] == "payments-prod"
    assert labels[LABEL_SERVICE] == "payments"
    assert labels[LABEL_GROUP] == group_hash(body()["groupKey"])
    assert labels[LABEL_EPISODE] == "1"
    assert incident["spec"]["origin"] == "Alert"
    assert incident["spec"]["alert"]["fingerprint"] == "a1"
    assert [a["fingerprint"] for a in incident["status"]["alerts"]] == ["a1", "b2"]
    assert [e["action"] for e in incident["status"]["timeline"]][:2] == ["Opened", "AlertsFiring"]


def test_a_duplicate_post_writes_nothing() -> None:
    api = FakeApiServer()
    post = body(alert("a1"))

    async def test(call: Call) -> None:
        await call(post)
        writes = api.writes
        status, answer = await call(post)
        assert status == 200
        assert answer["incidents"][0]["outcome"] == "Unchanged"
        assert api.writes == writes

    run(api, test)
    assert len(api.objects) == 1


def test_all_alerts_resolved_resolves_the_incident_as_changegate() -> None:
    api = FakeApiServer()

    async def test(call: Call) -> None:
        await call(body(alert("a1"), alert("b2")))
        await call(body(alert("a1", ends=5)))
        (incident,) = api.incidents()
        assert "resolution" not in incident["spec"]
        status, answer = await call(body(alert("b2", ends=6)))
        assert (status, answer["incidents"][0]["outcome"]) == (200, "AutoResolved")

    run(api, test)
    (incident,) = api.incidents()
    resolution = incident["spec"]["resolution"]
    assert (resolution["code"], resolution["resolvedBy"]) == ("AutoResolved", "changegate")
    assert {a["state"] for a in incident["status"]["alerts"]} == {"Resolved"}


def test_firing_again_after_resolution_opens_the_next_episode() -> None:
    api = FakeApiServer()

    async def test(call: Call) -> None:
        await call(body(alert("a1")))
        await call(body(alert("a1", ends=5)))
        await call(body(alert("a1", starts=10)))

    run(api, test)
    names = [o["metadata"]["name"] for o in api.incidents()]
    assert [n.rsplit("-", 1)[1] for n in names] == ["1", "2"]


def test_an_unknown_service_goes_to_the_fallback_with_the_reason() -> None:
    api = FakeApiServer()
    stray = alert("c3", labels={"service": "nobody-knows"})

    async def test(call: Call) -> None:
        status, _ = await call(body(stray))
        assert status == 200

    run(api, test)
    (incident,) = api.incidents()
    assert incident["spec"]["service"] == "platform"
    assert incident["metadata"]["namespace"] == RELEASE
    routed = [e for e in incident["status"]["timeline"] if e["action"] == "AlertsRouted"]
    assert "names no known service" in routed[0]["message"]


# -- retries and failures --------------------------------------------------------------


def test_a_failing_service_answers_503_after_the_others_are_persisted() -> None:
    api = FakeApiServer(down_for={"payments"})
    before = requests("unavailable")
    mixed = body(alert("a1"), alert("c3", labels={"service": "checkout"}))

    async def test(call: Call) -> None:
        status, answer = await call(mixed)
        assert status == 503
        assert "payments" in answer["message"]
        assert TOKEN not in json.dumps(answer)
        assert [o["spec"]["service"] for o in api.incidents()] == ["checkout"]
        api.down_for.clear()
        status, answer = await call(mixed)  # Alertmanager's retry
        assert status == 200
        outcomes = {o["service"]: o["outcome"] for o in answer["incidents"]}
        assert outcomes == {"checkout": "Unchanged", "payments": "Opened"}

    run(api, test)
    assert sorted(o["spec"]["service"] for o in api.incidents()) == ["checkout", "payments"]
    assert requests("unavailable") == before + 1


def test_a_crash_between_create_and_status_is_repaired_by_the_retry() -> None:
    api = FakeApiServer(status_faults=1)
    post = body(alert("a1"))

    async def test(call: Call) -> None:
        status, _ = await call(post)
        assert status == 503
        (created,) = api.incidents()
        assert created["status"] == {}
        status, answer = await call(post)
        assert (status, answer["incidents"][0]["outcome"]) == (200, "Opened")

    run(api, test)
    (incident,) = api.incidents()
    assert [a["fingerprint"] for a in incident["status"]["alerts"]] == ["a1"]
    assert incident["status"]["timeline"][0]["action"] == "Opened"


def test_a_concurrent_write_is_retried_with_a_fresh_read() -> None:
    api = FakeApiServer()

    async def test(call: Call) -> None:
        await call(body(alert("a1")))
        api.conflicts = 2
        status, answer = await call(body(alert("b2", starts=1)))
        assert (status, answer["incidents"][0]["outcome"]) == (200, "Updated")

    run(api, test)
    (incident,) = api.incidents()
    assert [a["fingerprint"] for a in incident["status"]["alerts"]] == ["a1", "b2"]


def test_accepted_posts_are_counted() -> None:
    api = FakeApiServer()
    before = requests("accepted")

    async def test(call: Call) -> None:
        await call(body(alert("a1")))

    run(api, test)
    assert requests("accepted") == before + 1


def test_each_opened_incident_is_handed_to_paging_once_persisted() -> None:
    """The pager is kicked from the intake's own result (not the watch), once per episode."""
    api = FakeApiServer()
    kicked: list[tuple[str, str, bool]] = []

    def opened(incident: Incident) -> None:
        namespace, name = incident.metadata.namespace or "", incident.metadata.name or ""
        stored = api.objects[(namespace, name)]
        # Handed over as written: what the API server holds, status included.
        assert incident.metadata.resource_version == stored["metadata"]["resourceVersion"]
        kicked.append((namespace, name, bool(incident.status.alerts)))

    async def test(call: Call) -> None:
        await call(body(alert("a1")))
        await call(body(alert("a1")))  # Alertmanager HA's duplicate
        await call(body(alert("a1", ends=5)))
        await call(body(alert("a1", starts=10)))  # the next episode

    run(api, test, opened=opened)
    first, second = (i["metadata"]["name"] for i in api.incidents())
    assert kicked == [("payments-prod", first, True), ("payments-prod", second, True)]


def test_the_live_services_are_built_again_only_when_a_service_on_call_changed() -> None:
    """Same objects at the same generations, same directory; a status write (a new object in
    the index, same generation) too; a spec change, a new or a deleted one: rebuilt."""
    payments = service_on_call(service="payments", namespace="payments-prod")
    payments.metadata.uid, payments.metadata.generation = "uid-payments", 1
    store: dict[Any, list[Any]] = {("payments-prod", "payments"): [payments]}
    live = LiveServices(store)
    first = live()
    assert live() is first
    assert first.namespaces == {"payments": "payments-prod"}
    status_written = payments.model_copy(deep=True)
    status_written.status.last_incident = ObjectRef(name="inc-1", namespace="payments-prod")
    store[("payments-prod", "payments")] = [status_written]
    assert live() is first
    store[("checkout-prod", "checkout")] = [service_on_call(service="checkout", namespace="c")]
    assert live().namespaces == {"payments": "payments-prod", "checkout": "c"}
    routed = payments.model_copy(deep=True)
    routed.metadata.generation = 2
    routed.spec.service.name = "payments-v2"
    store[("payments-prod", "payments")] = [routed]
    assert live().namespaces["payments-v2"] == "payments-prod"
    del store[("checkout-prod", "checkout")]
    assert live().directory.named("checkout") is None
