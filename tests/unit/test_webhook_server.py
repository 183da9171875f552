"""The webhook role's glue: AdmissionReview in and out, 400s, patches, one decision per write.

The server runs in-process on aiohttp's test server (plain HTTP: TLS is the
stack's, not our logic), over caches filled from fake listers; no API server.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from changegate.adapters.cache import WatchCache
from changegate.core.change.admission import CHANGE_ANNOTATION, DEPLOYER_ANNOTATION
from changegate.core.common import User
from changegate.handlers.webhook import routes
from changegate.handlers.webhook.server import (
    Answer,
    BadReview,
    Route,
    ServingCertificate,
    admission_app,
    decode_review,
    encode_answer,
)
from changegate.handlers.webhook.state import WebhookState
from changegate.handlers.webhook.workloads import (
    SharedDecisions,
    WorkloadAdmission,
    annotation_patch,
)
from changegate.settings import Role, Settings
from tests.unit.builders import (
    AUTHORITIES,
    CHANGE_MANAGER,
    NAMESPACE,
    NEW_IMAGE,
    NOW,
    OPERATOR,
    REQUESTER,
    approved_change,
    change_request,
    service_on_call,
    workload_body,
)

# -- fakes ----------------------------------------------------------------------


class FakeKube:
    """What the webhook asks of the Kubernetes adapter: Events, one live read."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def post_event(self, involved: dict[str, Any], **kw: Any) -> None:
        self.events.append({"involved": involved, **kw})

    def list_service_on_calls(self) -> list[dict[str, Any]]:
        return []


def listed(*items: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    def lister(*_: Any, limit: int, _continue: str | None) -> dict[str, Any]:
        return {"items": list(items), "metadata": {"resourceVersion": "1"}}

    return lister


def state_with(*objects: dict[str, Any], terminating: tuple[str, ...] = ()) -> WebhookState:
    """A warm state whose caches hold these ChangeRequests and ServiceOnCalls."""
    from changegate.handlers.webhook import caches

    settings = Settings(
        Role.WEBHOOK,
        change_manager_groups=tuple(AUTHORITIES.change_manager_groups),
        platform_admin_groups=tuple(AUTHORITIES.platform_admin_groups),
        operator_users=tuple(AUTHORITIES.operator_users),
    )
    by_kind: dict[str, list[dict[str, Any]]] = {
        "ChangeRequest": [],
        "ServiceOnCall": [],
        "Incident": [],
    }
    for obj in objects:
        by_kind[obj["kind"]].append(obj)
    namespaces = [
        {"metadata": {"name": NAMESPACE, "uid": "ns", "labels": {settings.governed_label: "true"}}}
    ] + [
        {"metadata": {"name": n, "uid": n, "deletionTimestamp": "2026-01-01T00:00:00Z"}}
        for n in terminating
    ]
    state = WebhookState(
        settings=settings,
        kube=FakeKube(),  # type: ignore[arg-type]
        changes=WatchCache("c", listed(*by_kind["ChangeRequest"]), (), caches.index_changes),
        services=WatchCache(
            "s", listed(*by_kind["ServiceOnCall"]), (), caches.index_services(settings)
        ),
        namespaces=WatchCache("n", listed(*namespaces), (), caches.index_namespaces(settings)),
        freezes=WatchCache("f", listed(*by_kind["Incident"]), (), caches.index_freezes),
    )
    for cache in state.caches():
        cache._list()
        cache.warm.set()
    return state


def as_body(model: Any) -> dict[str, Any]:
    body: dict[str, Any] = model.to_json()
    return body


def review_body(
    obj: dict[str, Any] | None,
    old: dict[str, Any] | None = None,
    *,
    user: User = REQUESTER,
    operation: str | None = None,
    group: str = "apps",
    kind: str | None = None,
    dry_run: bool = False,
    uid: str = "req-1",
) -> dict[str, Any]:
    source = obj if obj is not None else old
    assert source is not None
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": "v1", "kind": kind or source["kind"]},
            "operation": operation or ("UPDATE" if old is not None else "CREATE"),
            "userInfo": {"username": user.username, "groups": sorted(user.groups)},
            "namespace": source["metadata"].get("namespace", ""),
            "name": source["metadata"]["name"],
            "object": obj,
            "oldObject": old,
            "dryRun": dry_run,
        },
    }


Call = Callable[[str, Any], Awaitable[tuple[int, Any]]]


def served(state: WebhookState, test: Callable[[Call], Awaitable[None]]) -> None:
    """Run `test` against the webhook's app, with a `call(path, body)` helper."""

    async def run() -> None:
        admission = WorkloadAdmission(state, clock=lambda: NOW)
        from changegate.handlers.webhook.changes import ChangeAdmission

        app = admission_app(admission.routes() + ChangeAdmission(state, lambda: NOW).routes())
        async with TestClient(TestServer(app)) as client:

            async def call(path: str, body: Any) -> tuple[int, Any]:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                response = await client.post(path, data=data)
                if response.status != 200:
                    return response.status, await response.text()
                return 200, (await response.json())["response"]

            await test(call)
            await asyncio.gather(*state.background)

    asyncio.run(run())


def governed_state(*changes: Any) -> WebhookState:
    return state_with(as_body(service_on_call()), *(as_body(c) for c in changes))


def patch_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    assert response["patchType"] == "JSONPatch"
    ops: list[dict[str, Any]] = json.loads(base64.b64decode(response["patch"]))
    return ops


# -- decoding and encoding ------------------------------------------------------

ROUTE = Route("/validate-deployments", "validating", frozenset({("apps", "Deployment")}), None)  # type: ignore[arg-type]


def test_a_review_is_decoded_once_with_user_objects_and_flags() -> None:
    old = workload_body()
    body = review_body(workload_body(images={"api": NEW_IMAGE}), old, dry_run=True)
    body["request"]["subResource"] = ""
    review = decode_review(json.dumps(body).encode(), ROUTE)
    assert (review.uid, review.kind, review.operation) == ("req-1", "Deployment", "UPDATE")
    assert review.user == REQUESTER
    assert review.old_object == old
    assert review.dry_run is True
    assert review.namespace == NAMESPACE


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"not json", "not JSON", id="not-json"),
        pytest.param(b"[1, 2]", "not a JSON object", id="not-an-object"),
        pytest.param(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
            "has no request",
            id="no-request",
        ),
        pytest.param(
            {"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}},
            "expected apiVersion admission.k8s.io/v1",
            id="wrong-api-version",
        ),
        pytest.param(
            {"apiVersion": "admission.k8s.io/v1", "kind": "Deployment", "request": {}},
            "kind AdmissionReview",
            id="wrong-kind",
        ),
        pytest.param(
            review_body(workload_body()) | {"request": {"kind": {"group": "apps"}}},
            "request.uid is missing",
            id="no-uid",
        ),
    ],
)
def test_what_is_no_admission_review_is_a_bad_review(body: Any, message: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(BadReview, match=message):
        decode_review(raw, ROUTE)


def test_a_non_object_object_and_a_foreign_kind_are_bad_reviews() -> None:
    body = review_body(workload_body())
    body["request"]["object"] = "a string"
    with pytest.raises(BadReview, match=r"request\.object must be an object, not str"):
        decode_review(json.dumps(body).encode(), ROUTE)
    body = review_body(workload_body(kind="StatefulSet"))
    with pytest.raises(BadReview, match="does not admit kind 'StatefulSet'"):
        decode_review(json.dumps(body).encode(), ROUTE)


def test_answers_carry_the_uid_status_on_refusal_and_a_base64_json_patch() -> None:
    refused = encode_answer("u", Answer(False, 403, "no"))
    assert refused["apiVersion"] == "admission.k8s.io/v1"
    assert refused["response"] == {
        "uid": "u",
        "allowed": False,
        "status": {"code": 403, "message": "no"},
    }
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]
    allowed = encode_answer("u", Answer(True, patch=ops, warnings=("careful",)))["response"]
    assert patch_of(allowed) == ops
    assert allowed["warnings"] == ["careful"]
    assert "status" not in allowed
    assert "patch" not in encode_answer("u", Answer(True))["response"]


# -- the patch ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "wanted", "ops"),
    [
        pytest.param(
            {},
            {"changegate.io/deployer": "dev", "changegate.io/change-request": ""},
            [
                {
                    "op": "add",
                    "path": "/metadata/annotations",
                    "value": {"changegate.io/deployer": "dev"},
                }
            ],
            id="no-annotations-yet",
        ),
        pytest.param({}, {"changegate.io/deployer": ""}, [], id="nothing-to-add"),
        pytest.param(
            {"team": "x", "changegate.io/deployer": "old"},
            {"changegate.io/deployer": "dev"},
            [
                {
                    "op": "add",
                    "path": "/metadata/annotations/changegate.io~1deployer",
                    "value": "dev",
                }
            ],
            id="replaced-with-escaped-pointer",
        ),
        pytest.param(
            {"team": "x", "changegate.io/deployer": "forged"},
            {"changegate.io/deployer": ""},
            [{"op": "remove", "path": "/metadata/annotations/changegate.io~1deployer"}],
            id="removed",
        ),
        pytest.param(
            {"team": "x", "changegate.io/deployer": "dev"},
            {"changegate.io/deployer": "dev", "changegate.io/admission": ""},
            [],
            id="already-so",
        ),
    ],
)
def test_annotation_patch(
    current: dict[str, str], wanted: dict[str, str], ops: list[dict[str, Any]]
) -> None:
    assert annotation_patch(current, wanted) == ops


# -- over HTTP ------------------------------------------------------------------


def test_bad_input_is_answered_400_with_a_message() -> None:
    async def test(call: Call) -> None:
        status, text = await call("/validate-deployments", b"{")
        assert (status, "the body is not JSON" in text) == (400, True)
        status, text = await call(
            "/validate-deployments",
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
        )
        assert (status, text) == (400, "the AdmissionReview has no request\n")
        body = review_body(workload_body())
        body["request"]["object"] = [1]
        status, text = await call("/mutate-deployments", body)
        assert (status, text) == (400, "request.object must be an object, not list\n")

    served(governed_state(), test)


def test_a_deployment_of_more_than_a_mebibyte_is_decided() -> None:
    big = workload_body(images={"api": NEW_IMAGE}, env={"BLOB": "x" * 1_400_000})
    old = copy.deepcopy(big)
    old["spec"]["template"]["spec"]["containers"][0]["image"] = "other:1"

    async def test(call: Call) -> None:
        status, response = await call("/validate-deployments", review_body(big, old))
        assert status == 200
        assert response["allowed"] is False
        assert "no approved ChangeRequest" in response["status"]["message"]

    served(governed_state(), test)


def test_a_refusal_is_logged_at_info_with_its_reason_and_an_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = governed_state()
    new = workload_body(images={"api": NEW_IMAGE})

    async def test(call: Call) -> None:
        status, response = await call("/validate-deployments", review_body(new, workload_body()))
        assert (status, response["uid"], response["allowed"]) == (200, "req-1", False)
        assert response["status"]["code"] == 403
        assert "To proceed:" in response["status"]["message"]

    with caplog.at_level(logging.INFO, logger="changegate"):
        served(state, test)
    refusals = [r for r in caplog.records if "denied" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.INFO]
    assert "NoApprovedChange" in refusals[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    events = state.kube.events  # type: ignore[attr-defined]
    assert [e["reason"] for e in events] == ["RolloutRefused"]
    assert events[0]["involved"]["name"] == "payments-api"


def test_a_dry_run_is_answered_alike_and_records_no_event() -> None:
    state = governed_state()
    new = workload_body(images={"api": NEW_IMAGE})

    async def test(call: Call) -> None:
        _, response = await call(
            "/validate-deployments", review_body(new, workload_body(), dry_run=True)
        )
        assert response["allowed"] is False

    served(state, test)
    assert state.kube.events == []  # type: ignore[attr-defined]


def test_an_approved_rollout_is_stamped_then_allowed_and_recorded() -> None:
    state = governed_state(approved_change())
    new = workload_body(images={"api": NEW_IMAGE})

    async def test(call: Call) -> None:
        _, mutated = await call("/mutate-deployments", review_body(new, workload_body()))
        ops = patch_of(mutated)
        assert len(ops) == 1
        stamps = ops[0]["value"]
        assert stamps[CHANGE_ANNOTATION] == "payments-api-1-42-0"
        assert stamps[DEPLOYER_ANNOTATION] == REQUESTER.username
        stamped = copy.deepcopy(new)
        stamped["metadata"]["annotations"] = stamps
        _, validated = await call("/validate-deployments", review_body(stamped, workload_body()))
        assert validated["allowed"] is True

    served(state, test)
    assert [e["reason"] for e in state.kube.events] == ["RolloutApprovedChange"]  # type: ignore[attr-defined]


def test_the_validating_call_takes_the_mutating_calls_decision() -> None:
    state = governed_state(approved_change())
    admission = WorkloadAdmission(state, clock=lambda: NOW)
    new = workload_body(images={"api": NEW_IMAGE})
    calls = 0
    import changegate.handlers.webhook.workloads as glue

    real = glue.decide_rollout

    def counted(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args)

    def review(obj: dict[str, Any]) -> Any:
        route = admission.routes()[0]
        return decode_review(json.dumps(review_body(obj, workload_body())).encode(), route)

    async def run() -> None:
        glue.decide_rollout = counted  # type: ignore[assignment]
        try:
            mutated = await admission.mutate(review(new))
            stamped = copy.deepcopy(new)
            stamped["metadata"]["annotations"] = mutated.patch[0]["value"]
            assert (await admission.validate(review(stamped))).allowed
            assert calls == 1  # shared
            assert (await admission.validate(review(stamped))).allowed
            assert calls == 2  # taken once: a second validation decides afresh
        finally:
            glue.decide_rollout = real

    asyncio.run(run())


def test_a_shared_decision_is_not_reused_when_what_it_read_changed() -> None:
    state = governed_state(change_request())  # pending
    pending = governed_state(change_request()).changes.get(
        (NAMESPACE, "Deployment", "payments-api")
    )
    approved = governed_state(approved_change()).changes.get(
        (NAMESPACE, "Deployment", "payments-api")
    )
    admission = WorkloadAdmission(state, clock=lambda: NOW)
    route = admission.routes()[0]
    new = workload_body(images={"api": NEW_IMAGE})
    request = admission._request(
        decode_review(json.dumps(review_body(new, workload_body())).encode(), route), new
    )
    service = state.services.get(NAMESPACE)[0]
    from changegate.core.change.admission import decide_rollout

    decision = decide_rollout(request, service, pending, NOW)
    clock = [0.0]
    shared = SharedDecisions(ttl=5, clock=lambda: clock[0])
    shared.put(request, service, pending, decision)
    assert shared.take(request, service, approved) is None  # approved in between
    shared.put(request, service, pending, decision)
    other = type(request)(request.operation, request.new, request.old, CHANGE_MANAGER, True)
    assert shared.take(other, service, pending) is None  # another user
    shared.put(request, service, pending, decision)
    clock[0] = 6.0
    assert shared.take(request, service, pending) is None  # too old
    shared.put(request, service, pending, decision)
    assert shared.take(request, service, pending) is decision
    assert len(shared) == 0


def test_an_invalid_change_request_is_refused_400_in_the_answer() -> None:
    body = as_body(change_request())
    body["spec"]["type"] = "Sideways"

    async def test(call: Call) -> None:
        status, response = await call(
            "/changerequests", review_body(body, group="changegate.io", kind="ChangeRequest")
        )
        assert (status, response["allowed"], response["status"]["code"]) == (200, False, 400)
        assert response["status"]["message"].startswith("invalid ChangeRequest: spec.type")

    served(governed_state(), test)


def test_a_change_request_is_stamped_with_its_requester() -> None:
    body = as_body(change_request(requester=None))

    async def test(call: Call) -> None:
        _, response = await call(
            "/changerequests", review_body(body, group="changegate.io", kind="ChangeRequest")
        )
        assert response["allowed"] is True
        assert {"op": "add", "path": "/spec/requester", "value": REQUESTER.username} in patch_of(
            response
        )

    served(governed_state(), test)


def test_deployment_records_are_written_only_by_the_operator() -> None:
    record = {"kind": "DeploymentRecord", "metadata": {"name": "r"}}

    async def test(call: Call) -> None:
        def review(user: User) -> dict[str, Any]:
            return review_body(record, user=user, group="changegate.io")

        _, refused = await call("/deploymentrecords", review(REQUESTER))
        _, allowed = await call("/deploymentrecords", review(OPERATOR))
        assert (refused["allowed"], allowed["allowed"]) == (False, True)
        assert "evidence" in refused["status"]["message"]

    served(governed_state(), test)


def test_a_service_on_call_may_go_with_its_terminating_namespace() -> None:
    soc = as_body(service_on_call())
    state = state_with(soc, terminating=(NAMESPACE,))

    async def test(call: Call) -> None:
        _, response = await call(
            "/serviceoncalls",
            review_body(None, soc, operation="DELETE", group="changegate.io", kind="ServiceOnCall"),
        )
        assert response["allowed"] is True

    served(state, test)


def test_every_route_is_a_path_of_the_chart() -> None:
    paths = {(r.path, r.reason) for r in routes(governed_state())}
    assert ("/validate-statefulsets", "validating") in paths
    assert ("/mutate-daemonsets", "mutating") in paths
    assert ("/changetemplates", "mutating") in paths
    assert ("/deploymentrecords", "validating") in paths
    assert ("/incidents", "mutating") in paths
    # 7 kinds that run code x (validating, mutating), debug, exec/attach, namespaces,
    # 3 provenance stamps, 6 of ours, the review-pending delete guard: one route per webhook.
    assert len(paths) == 26


# -- TLS ------------------------------------------------------------------------


def test_the_serving_certificate_is_reloaded_when_its_files_change(tmp_path: Path) -> None:
    from tests.support.tls import issue_serving_certificate

    first = issue_serving_certificate(tmp_path / "a")
    second = issue_serving_certificate(tmp_path / "b")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(first.cert_file.read_bytes())
    key.write_bytes(first.key_file.read_bytes())
    serving = ServingCertificate(cert, key)
    assert serving.reload_if_changed() is False
    cert.write_bytes(second.cert_file.read_bytes())
    assert serving.reload_if_changed() is False  # half-rotated: the pair does not match yet
    key.write_bytes(second.key_file.read_bytes())
    assert serving.reload_if_changed() is True
