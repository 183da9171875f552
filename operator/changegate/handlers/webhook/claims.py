"""What a ServiceOnCall write claims, found out before the pure review decides.

The service name and the namespaces a write newly claims are looked up in the
webhook's ServiceOnCall cache (other ServiceOnCalls that hold them), and the
writer's right to deploy in each namespace is asked of the API server with a
SubjectAccessReview. The answer is a governance.Claims for review_service_on_call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable, Iterable

from changegate.adapters.kube import KubeError
from changegate.api.v1alpha1.serviceoncall import ServiceOnCall
from changegate.core.change.governance import Claims, claimed_namespaces
from changegate.core.common import User
from changegate.handlers.webhook.state import WebhookState

log = logging.getLogger(__name__)

# The right that makes a namespace the writer's to claim: deploying there.
DEPLOY = {"verb": "update", "group": "apps", "resource": "deployments"}


def _others(state: WebhookState, keys: Iterable[Hashable], me: tuple[str, str]) -> list[str]:
    """Other live ServiceOnCalls under these cache keys, as namespace/name."""
    found: set[str] = set()
    for key in keys:
        for policy in state.services.get(key):
            if (policy.namespace, policy.name) != me and not state.terminating(policy.namespace):
                found.add(f"{policy.namespace}/{policy.name}")
    return sorted(found)


def _same_service(
    state: WebhookState, old: ServiceOnCall | None, new: ServiceOnCall, me: tuple[str, str]
) -> tuple[str, ...]:
    name = new.spec.service.name
    if old is not None and old.spec.service.name == name:
        return ()
    return tuple(_others(state, [("service", name)], me))


def _taken(state: WebhookState, claimed: dict[str, bool], me: tuple[str, str]) -> dict[str, str]:
    """Claimed namespaces another ServiceOnCall holds: as production, or at all for production."""
    taken: dict[str, str] = {}
    for namespace, production in claimed.items():
        keys: list[Hashable] = [namespace]  # another's production namespace
        if production:
            keys.append(("environment", namespace))  # any environment of another
        owners = _others(state, keys, me)
        if owners:
            taken[namespace] = ", ".join(owners)
    return taken


def _may_deploy(state: WebhookState, user: User, namespace: str) -> bool:
    try:
        return state.kube.may(user.username, user.groups, {**DEPLOY, "namespace": namespace})
    except KubeError as error:  # fail closed: a claim we cannot check is refused
        log.warning("SubjectAccessReview for %s in %s failed: %s", user.username, namespace, error)
        return False


async def _without_rights(
    state: WebhookState, user: User, namespaces: Iterable[str]
) -> frozenset[str]:
    if state.authorities.is_platform_admin(user):
        return frozenset()  # the rule lets platform administrators claim any namespace
    wanted = sorted(namespaces)
    answers = await asyncio.gather(
        *(asyncio.to_thread(_may_deploy, state, user, ns) for ns in wanted)
    )
    return frozenset(ns for ns, allowed in zip(wanted, answers, strict=True) if not allowed)


async def gather_claims(
    state: WebhookState,
    user: User,
    namespace: str,
    old: ServiceOnCall | None,
    new: ServiceOnCall | None,
) -> Claims:
    """What the review needs to know about the names and namespaces `new` newly claims
    (`namespace` is the one the ServiceOnCall lives in, from the admission request)."""
    if new is None:
        return Claims()
    me = (namespace, new.metadata.name or "")
    claimed = claimed_namespaces(old, new)
    return Claims(
        same_service=_same_service(state, old, new, me),
        taken=_taken(state, claimed, me),
        without_rights=await _without_rights(state, user, claimed),
    )
