"""`python -m bench.profile`: the admission benchmark's request path, in process, under cProfile.

The same ServiceOnCalls, ChangeRequests and AdmissionReviews as `bench.admission`,
loaded into the webhook's real caches (from a lister in memory, no API server),
then N reviews decoded, decided and encoded as the server does, without TLS or
HTTP. Prints CPU microseconds per decision and the top of the profile: where to
look before measuring the whole stack with `make bench-admission`. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime
import pstats
import sys
import time
from typing import Any
from unittest import mock

from bench import objects
from bench.load import PATH
from changegate.handlers.webhook.server import decode_review, encode_answer
from changegate.handlers.webhook.state import WebhookState
from changegate.handlers.webhook.workloads import WorkloadAdmission
from changegate.settings import Role, Settings


def lister(items: list[dict[str, Any]]) -> Any:
    def list_all(*_: Any, limit: int, _continue: str | None) -> dict[str, Any]:
        start = int(_continue or 0)
        end = start + limit
        more = str(end) if end < len(items) else None
        return {"items": items[start:end], "metadata": {"resourceVersion": "1", "continue": more}}

    return list_all


def stamped(body: dict[str, Any], serial: int) -> dict[str, Any]:
    body["metadata"]["uid"] = f"uid-{serial}"
    return body


def state_with(services: int, changes: int) -> WebhookState:
    """The webhook's state with its caches listed from memory."""
    now = datetime.datetime.now(datetime.UTC)
    per_service = max(1, changes // services)
    namespaces = [stamped(objects.namespace(s), s) for s in range(services)]
    socs = [stamped(objects.service_on_call(s), s) for s in range(services)]
    crs = [
        stamped(objects.change_request(s, m % objects.CHANGES_PER_SERVICE, now), s * 1000 + m)
        for m in range(per_service)
        for s in range(services)
    ]
    settings = Settings.from_env(Role.WEBHOOK, {})
    state = WebhookState.create(settings, mock.MagicMock())
    for cache, items in zip(state.caches(), (crs, socs, namespaces, []), strict=False):
        cache._lister = lister(items)
        cache._list()
        cache.warm.set()
    return state


async def decide_all(admission: WorkloadAdmission, bodies: list[bytes], count: int) -> int:
    route = next(r for r in admission.routes() if r.path == PATH)
    allowed = 0
    for i in range(count):
        review = decode_review(bodies[i % len(bodies)], route)
        answer = await route.handler(review)
        encode_answer(review.uid, answer)
        allowed += answer.allowed
    return allowed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="cumulative", help="a pstats sort key (tottime, ...)")
    args = parser.parse_args(argv)
    state = state_with(args.services, args.changes)
    admission = WorkloadAdmission(state)
    reviews = objects.reviews(args.services, 200)
    bodies = [r.body for r in reviews]
    asyncio.run(decide_all(admission, bodies, len(bodies)))  # warm-up
    started = time.process_time()
    asyncio.run(decide_all(admission, bodies, args.requests))
    cpu = time.process_time() - started
    print(f"{cpu / args.requests * 1e6:,.0f} us CPU per decision (decode, decide, encode)")
    profile = cProfile.Profile()
    profile.enable()
    asyncio.run(decide_all(admission, bodies, args.requests))
    profile.disable()
    pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
