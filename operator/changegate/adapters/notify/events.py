"""The Kubernetes Events channel: always on, needs no Secret.

Each page becomes an Event on the Incident (`kubectl describe incident`,
`kubectl get events`), posted through the operator's own client
(adapters.kube.KubeAdapter.post_event), which is blocking, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, Protocol

from changegate.api.v1alpha1.incident import Incident, PageChannel, PageResult
from changegate.core.incident.notification import page_text
from changegate.core.ports import Page, PageAction, PageOutcome, SecretValue

log = logging.getLogger(__name__)

REASONS = {
    PageAction.TRIGGER: "Paged",
    PageAction.ACKNOWLEDGE: "PageAcknowledged",
    PageAction.RESOLVE: "PageResolved",
}


class EventPoster(Protocol):
    """What this channel needs of the Kubernetes adapter (KubeAdapter fits)."""

    def post_event(
        self,
        involved: dict[str, Any],
        *,
        reason: str,
        message: str,
        type_: str = "Normal",
        action: str = "Admission",
    ) -> bool: ...


def involved_object(page: Page) -> dict[str, Any]:
    """The Incident the Event is about."""
    return {
        "apiVersion": Incident.model_fields["api_version"].default,
        "kind": "Incident",
        "namespace": page.namespace,
        "name": page.incident_name,
        "uid": page.incident_uid,
    }


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class KubernetesEvents:
    """Pages as Events on the Incident; never raises into the caller."""

    channel = PageChannel.KUBERNETES

    def __init__(self, poster: EventPoster, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self.poster = poster
        self.clock = clock

    async def send(self, page: Page, secret: SecretValue | None = None) -> PageOutcome:
        if not page.incident_name or not page.namespace:
            return self._outcome(page, PageResult.SKIPPED, 0, "no Incident to attach an Event to")
        try:
            posted = await asyncio.to_thread(
                self.poster.post_event,
                involved_object(page),
                reason=REASONS[page.action],
                message=page_text(page),
                type_="Warning" if page.action is PageAction.TRIGGER else "Normal",
                action="Page",
            )
        except Exception as error:  # a broken channel is an outcome, never the caller's problem
            log.warning("could not post the page event: %s", type(error).__name__)
            return self._outcome(page, PageResult.FAILED, 1, type(error).__name__)
        if not posted:
            return self._outcome(page, PageResult.FAILED, 1, "the API server refused the Event")
        return self._outcome(page, PageResult.SENT, 1, None)

    def _outcome(
        self, page: Page, result: PageResult, attempts: int, error: str | None
    ) -> PageOutcome:
        return PageOutcome(self.channel, page.user, result, attempts, self.clock(), error)
