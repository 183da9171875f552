"""Admission of the ways into running pods, and of the governed label on namespaces.

/validate-pods-ephemeralcontainers (`kubectl debug`, an UPDATE of the
subresource), /validate-pods-exec (CONNECT of pods/exec and pods/attach, whose
review carries a PodExecOptions or PodAttachOptions) and /validate-namespaces
(UPDATE). Each decodes its review into a core value, asks core/change/pods.py
or core/change/namespaces.py, and records the decision as workloads.py does:
a metric always, an Event and a log line when it is evidence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from changegate.core.change.admission import Decision
from changegate.core.change.facts import ServicePolicy
from changegate.core.change.namespaces import LabelChange, decide_namespace_update
from changegate.core.change.pods import ATTACH, EPHEMERAL, EXEC, PodAccess, decide_pod_access
from changegate.handlers.webhook.server import ALLOW, Answer, Review, Route
from changegate.handlers.webhook.state import WebhookState
from changegate.metrics import ADMISSION_DECISIONS, ADMISSION_LATENCY

log = logging.getLogger(__name__)

CONNECT_KINDS = frozenset({("", "PodExecOptions"), ("", "PodAttachOptions")})
CONNECT_SUBRESOURCES = {"exec": EXEC, "attach": ATTACH}
CONNECT = frozenset({"CONNECT"})


def added_ephemeral(
    new: Mapping[str, Any] | None, old: Mapping[str, Any] | None
) -> tuple[tuple[str, str], ...]:
    """(name, image) of the ephemeral containers in `new` that `old` did not have."""

    def containers(pod: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
        return list(((pod or {}).get("spec") or {}).get("ephemeralContainers") or ())

    before = {str(c.get("name", "")) for c in containers(old)}
    return tuple(
        (str(c.get("name", "")), str(c.get("image", "")))
        for c in containers(new)
        if str(c.get("name", "")) not in before
    )


def connect_options(options: Mapping[str, Any] | None) -> tuple[str, tuple[str, ...]]:
    """The container and command of a PodExecOptions or PodAttachOptions (attach has none)."""
    body = options or {}
    command = body.get("command") or ()
    if isinstance(command, str):  # one word, as a query parameter may carry it
        command = (command,)
    return str(body.get("container") or ""), tuple(str(word) for word in command)


class PodAccessAdmission:
    """The validating calls for debug, exec and attach, and for namespace labels."""

    def __init__(self, state: WebhookState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        pods = frozenset({("", "Pod")})
        return [
            Route(
                "/validate-pods-ephemeralcontainers",
                "validating",
                pods,
                self.debug,
                frozenset({"UPDATE"}),
            ),
            Route("/validate-pods-exec", "validating", CONNECT_KINDS, self.connect, CONNECT),
            Route(
                "/validate-namespaces",
                "validating",
                frozenset({("", "Namespace")}),
                self.namespace,
                frozenset({"UPDATE"}),
            ),
        ]

    def _service(self, namespace: str) -> ServicePolicy | None:
        return next(iter(self.state.services.get(namespace)), None)

    async def debug(self, review: Review) -> Answer:
        """`kubectl debug`: only the service's emergency groups add ephemeral containers."""
        if review.sub_resource != EPHEMERAL:
            return ALLOW
        access = PodAccess(
            EPHEMERAL,
            review.namespace,
            review.name,
            review.user,
            added=added_ephemeral(review.object, review.old_object),
            operator_namespace=self.state.settings.namespace,
        )
        return self._decide(access, review.object, review.dry_run)

    async def connect(self, review: Review) -> Answer:
        """`kubectl exec` and `attach`: recorded, or refused by the service's policy."""
        how = CONNECT_SUBRESOURCES.get(review.sub_resource)
        if how is None:
            return ALLOW
        container, command = connect_options(review.object)
        access = PodAccess(
            how,
            review.namespace,
            review.name,
            review.user,
            container=container,
            command=command,
            operator_namespace=self.state.settings.namespace,
        )
        return self._decide(access, None, review.dry_run)

    def _decide(self, access: PodAccess, pod: Mapping[str, Any] | None, dry_run: bool) -> Answer:
        started = time.perf_counter()
        decision = decide_pod_access(access, self._service(access.namespace))
        ADMISSION_LATENCY.labels(f"pods/{access.how}").observe(time.perf_counter() - started)
        uid = ((pod or {}).get("metadata") or {}).get("uid")
        involved = {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": access.namespace,
            "name": access.pod,
            "uid": uid,
        }
        return self._answer(decision, involved, access.user.username, dry_run, access.how)

    async def namespace(self, review: Review) -> Answer:
        """Refuse taking the governed label off a production namespace, or setting its
        audit-only mode, but to platform admins."""
        change = LabelChange(
            review.name,
            self.state.settings.governed_label,
            _labels(review.old_object),
            _labels(review.object),
            review.user,
            _metadata(review.old_object, "annotations"),
            _metadata(review.object, "annotations"),
        )
        decision = decide_namespace_update(
            change, self._service(review.name), self.state.authorities.platform_admin_groups
        )
        uid = ((review.object or {}).get("metadata") or {}).get("uid")
        involved = {"apiVersion": "v1", "kind": "Namespace", "name": review.name, "uid": uid}
        return self._answer(decision, involved, review.user.username, review.dry_run, "namespace")

    def _answer(
        self, decision: Decision, involved: dict[str, Any], user: str, dry_run: bool, what: str
    ) -> Answer:
        ADMISSION_DECISIONS.labels(
            "allow" if decision.allowed else "deny", decision.reason.value
        ).inc()
        if decision.recorded and not dry_run:
            self._record(decision, involved, user, what)
        if not decision.allowed:
            return Answer(False, 403, decision.explain())
        return ALLOW

    def _record(self, decision: Decision, involved: dict[str, Any], user: str, what: str) -> None:
        """An Event on the pod (or namespace) and an INFO line: evidence, not an error."""
        log.info(
            "admission %s %s %s/%s by %s: %s: %s",
            "allowed" if decision.allowed else "denied",
            what,
            involved.get("namespace", ""),
            involved["name"],
            user,
            decision.reason.value,
            decision.message,
        )
        message = decision.explain() if not decision.allowed else decision.message
        task = asyncio.create_task(
            asyncio.to_thread(
                self.state.kube.post_event,
                involved,
                reason=decision.reason.value,
                message=f"{message} (user {user})",
                type_="Warning" if not decision.allowed else "Normal",
            )
        )
        self.state.background.add(task)
        task.add_done_callback(self.state.background.discard)


def _labels(body: Mapping[str, Any] | None) -> dict[str, str]:
    return _metadata(body, "labels")


def _metadata(body: Mapping[str, Any] | None, key: str) -> dict[str, str]:
    return dict(((body or {}).get("metadata") or {}).get(key) or {})
