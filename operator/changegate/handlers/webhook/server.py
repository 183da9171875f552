"""The admission server: AdmissionReview v1 over HTTPS, straight to the handlers.

aiohttp without Kopf's admission machinery: decode the review once into a
`Review`, hand it to the route's handler (workloads.py, changes.py), encode its
`Answer` (allowed, status, JSON patch, warnings). Input that is no admission
review is answered 400 with a message. The TLS context rereads rotated files
(adapters/tls.py).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from changegate.adapters.tls import ServingCertificate
from changegate.core.common import User

log = logging.getLogger(__name__)

ADMISSION_API_VERSION = "admission.k8s.io/v1"
# The API server takes request bodies up to 3 MiB; an UPDATE's review carries both
# the new object and the stored one (etcd keeps up to 1.5 MiB), in JSON with escapes.
MAX_REVIEW_BYTES = 8 * 1024 * 1024


class BadReview(Exception):
    """The body is no AdmissionReview v1 request this route can answer (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Review:
    """One admission request, decoded at the boundary."""

    uid: str
    group: str
    kind: str
    operation: str
    user: User
    namespace: str
    name: str
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    dry_run: bool = False
    sub_resource: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    """What a handler decided; `code` and `message` only matter on a refusal."""

    allowed: bool
    code: int = 200
    message: str = ""
    patch: Sequence[Mapping[str, Any]] = ()
    warnings: Sequence[str] = ()


ALLOW = Answer(True)
Handler = Callable[[Review], Awaitable[Answer]]


@dataclass(frozen=True)
class Route:
    """One webhook path of the chart's configurations, and the kinds it accepts."""

    path: str
    reason: str  # "validating" or "mutating", as in the chart
    kinds: frozenset[tuple[str, str]]  # (group, kind)
    handler: Handler
    operations: frozenset[str] = field(default=frozenset({"CREATE", "UPDATE", "DELETE"}))


# -- decoding -------------------------------------------------------------------


def _object(request: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = request.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadReview(f"request.{key} must be an object, not {type(value).__name__}")
    return value


def _mapping(request: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = request.get(key) or {}
    if not isinstance(value, dict):
        raise BadReview(f"request.{key} must be an object, not {type(value).__name__}")
    return value


def decode_review(body: bytes, route: Route) -> Review:
    """The request of an AdmissionReview v1 body, checked against what the route serves."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadReview(f"the body is not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise BadReview("the body is not a JSON object")
    if (payload.get("apiVersion"), payload.get("kind")) != (
        ADMISSION_API_VERSION,
        "AdmissionReview",
    ):
        raise BadReview(
            f"expected apiVersion {ADMISSION_API_VERSION} and kind AdmissionReview,"
            f" got {payload.get('apiVersion')!r} and {payload.get('kind')!r}"
        )
    request = payload.get("request")
    if not isinstance(request, dict):
        raise BadReview("the AdmissionReview has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise BadReview("request.uid is missing")
    gvk = _mapping(request, "kind")
    group, kind = str(gvk.get("group", "")), str(gvk.get("kind", ""))
    if (group, kind) not in route.kinds:
        raise BadReview(f"{route.path} does not admit kind {kind!r} of group {group!r}")
    operation = str(request.get("operation", ""))
    if operation not in route.operations:
        raise BadReview(f"{route.path} does not admit operation {operation!r}")
    return Review(
        uid=uid,
        group=group,
        kind=kind,
        operation=operation,
        user=User.from_userinfo(_mapping(request, "userInfo")),
        namespace=str(request.get("namespace") or ""),
        name=str(request.get("name") or ""),
        object=_object(request, "object"),
        old_object=_object(request, "oldObject"),
        dry_run=bool(request.get("dryRun")),
        sub_resource=str(request.get("subResource") or ""),
    )


# -- encoding -------------------------------------------------------------------


def encode_answer(uid: str, answer: Answer) -> dict[str, Any]:
    """The AdmissionReview v1 response the API server expects for `uid`."""
    response: dict[str, Any] = {"uid": uid, "allowed": answer.allowed}
    if not answer.allowed:
        response["status"] = {"code": answer.code, "message": answer.message}
    elif answer.patch:
        patch = json.dumps(list(answer.patch), separators=(",", ":")).encode()
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(patch).decode()
    if answer.warnings:
        response["warnings"] = list(answer.warnings)
    return {"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "response": response}


def _serve(route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve(request: web.Request) -> web.Response:
        try:
            review = decode_review(await request.read(), route)
        except BadReview as error:
            log.warning("bad admission request on %s: %s", route.path, error)
            return web.Response(status=400, text=f"{error}\n")
        answer = await route.handler(review)
        body = json.dumps(encode_answer(review.uid, answer), separators=(",", ":"))
        return web.Response(text=body, content_type="application/json")

    return serve


def admission_app(routes: Sequence[Route]) -> web.Application:
    app = web.Application(client_max_size=MAX_REVIEW_BYTES)
    for route in routes:
        app.router.add_post(route.path, _serve(route))
    return app


async def serve_admission(
    routes: Sequence[Route], address: str, port: int, certificate: ServingCertificate
) -> web.AppRunner:
    """Start the HTTPS admission server; the caller keeps the runner to stop it."""
    # No access log: one line per admission request is noise at thousands a second.
    runner = web.AppRunner(admission_app(routes), access_log=None, shutdown_timeout=10)
    await runner.setup()
    await web.TCPSite(runner, address, port, ssl_context=certificate.context, backlog=1024).start()
    return runner
