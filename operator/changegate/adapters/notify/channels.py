"""A service's paging channels, and one page sent to all of them at once.

Escalation (the controller) builds a Page in the core and calls `send_all`:
each channel reads its Secret and sends concurrently, and each ends as an
outcome, so a slow or failing channel never holds up or breaks another, nor
the incident. Nothing here logs more than a channel and an error's type.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from changegate.adapters.notify import slack, webhook
from changegate.adapters.notify.delivery import Sender
from changegate.adapters.notify.events import EventPoster, KubernetesEvents
from changegate.adapters.notify.secrets import SecretUnavailable
from changegate.api.v1alpha1.common import SecretKeyRef
from changegate.api.v1alpha1.incident import PageResult
from changegate.api.v1alpha1.serviceoncall import Integrations
from changegate.core.ports import Notifier, Page, PageOutcome, SecretValue

log = logging.getLogger(__name__)


class SecretSource(Protocol):
    """Where channels' secrets come from (secrets.SecretReader fits)."""

    async def read(self, namespace: str, refs: Mapping[str, SecretKeyRef]) -> SecretValue: ...


@dataclass(frozen=True, slots=True)
class Channel:
    """A notifier and the Secret keys (in the ServiceOnCall's namespace) it needs, if any."""

    notifier: Notifier
    namespace: str = ""
    secret_refs: Mapping[str, SecretKeyRef] = field(default_factory=dict)


def service_channels(
    integrations: Integrations, namespace: str, sender: Sender, events: EventPoster
) -> list[Channel]:
    """Kubernetes Events always; the webhook and Slack where the ServiceOnCall configures them."""
    channels = [Channel(KubernetesEvents(events, sender.clock))]
    if integrations.webhook:
        refs = webhook.secret_refs(integrations.webhook)
        channels.append(Channel(webhook.WebhookNotifier(sender), namespace, refs))
    if integrations.slack:
        refs = slack.secret_refs(integrations.slack)
        channels.append(Channel(slack.SlackNotifier(sender), namespace, refs))
    return channels


async def send_all(
    page: Page,
    channels: Iterable[Channel],
    secrets: SecretSource,
    clock: Callable[[], dt.datetime],
) -> list[PageOutcome]:
    """Send `page` on every channel concurrently; one outcome per channel, in order."""
    sends = (send_one(page, channel, secrets, clock) for channel in channels)
    return list(await asyncio.gather(*sends))


async def send_one(
    page: Page, channel: Channel, secrets: SecretSource, clock: Callable[[], dt.datetime]
) -> PageOutcome:
    """One channel's outcome; a missing Secret or a broken notifier is Failed, never raised."""
    name = channel.notifier.channel

    def failed(error: str) -> PageOutcome:
        return PageOutcome(name, page.user, PageResult.FAILED, 0, clock(), error)

    secret = None
    if channel.secret_refs:
        try:
            secret = await secrets.read(channel.namespace, channel.secret_refs)
        except SecretUnavailable as error:
            log.warning("page %s not sent on %s: %s", page.idempotency_key, name, error)
            return failed(str(error))
    try:
        outcome = await channel.notifier.send(page, secret)
    except Exception as error:  # a notifier that breaks its contract still yields an outcome
        log.warning("page %s: %s raised %s", page.idempotency_key, name, type(error).__name__)
        return failed(f"the {name} channel failed ({type(error).__name__})")
    if outcome.result is PageResult.FAILED:
        log.warning("page %s failed on %s: %s", page.idempotency_key, name, outcome.error)
    return outcome
