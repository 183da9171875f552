"""The Slack channel: each page posted to a team's channel through an incoming webhook.

The ServiceOnCall names the Secret key holding the webhook URL
(`integrations.slack.secretRef`); that URL is the credential, so it never
reaches a log line or a result. The message has a plain `text` (notifications
and clients without blocks) and `blocks`: severity, service, summary, who is
on call, dashboards, runbooks and the acknowledge command. Slack answers
200 with the body `ok`; 429 (with Retry-After) and 5xx are retried.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx

from changegate.adapters.notify.delivery import Sender
from changegate.api.v1alpha1.common import SecretKeyRef
from changegate.api.v1alpha1.incident import PageChannel, PageResult, Severity
from changegate.api.v1alpha1.serviceoncall import SlackIntegration
from changegate.core.incident.notification import headline, page_text
from changegate.core.ports import Page, PageAction, PageLink, PageOutcome, SecretValue

URL = "url"
# Slack's limits: a header's text, a section's text and a field's text.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
EMOJI = {
    Severity.CRITICAL: ":red_circle:",
    Severity.HIGH: ":large_orange_circle:",
    Severity.MEDIUM: ":large_yellow_circle:",
    Severity.LOW: ":white_circle:",
}
DONE_EMOJI = {PageAction.ACKNOWLEDGE: ":eyes:", PageAction.RESOLVE: ":white_check_mark:"}


def secret_refs(integration: SlackIntegration) -> dict[str, SecretKeyRef]:
    """The Secret key this channel reads, by the name `send` looks it up under."""
    return {URL: integration.secret_ref}


def escape(text: str) -> str:
    """Text safe inside Slack mrkdwn: the three characters Slack asks to escape."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(link: PageLink) -> str:
    url = link.url.replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{url}|{escape(link.name).replace('|', '/')}>"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str, limit: int = SECTION_LIMIT) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _clip(text, limit)}


def _fields(page: Page) -> dict[str, Any]:
    fields = [
        f"*Severity*\n{page.severity.value}{' (major incident)' if page.major else ''}",
        f"*Service*\n{escape(page.service)}",
        f"*On call*\n{escape(page.on_call or 'nobody')}",
        f"*Escalation step*\n{page.escalation_step}",
    ]
    if page.user and page.user != page.on_call:
        fields.append(f"*Paging*\n{escape(page.user)}")
    return {"type": "section", "fields": [_mrkdwn(f, FIELD_LIMIT) for f in fields]}


def _links_block(page: Page) -> dict[str, Any] | None:
    lines = [
        f"*{title}*: " + ", ".join(_link(link) for link in links)
        for title, links in (("Dashboards", page.dashboards), ("Runbooks", page.runbooks))
        if links
    ]
    return {"type": "section", "text": _mrkdwn("\n".join(lines))} if lines else None


def _acknowledge_block(page: Page) -> dict[str, Any] | None:
    if page.action is not PageAction.TRIGGER:
        return None
    command = f"*Acknowledge*\n```{escape(page.acknowledge_command)}```"
    return {"type": "section", "text": _mrkdwn(command)}


def blocks(page: Page) -> list[dict[str, Any]]:
    """The message's blocks, top to bottom."""
    emoji = DONE_EMOJI.get(page.action, EMOJI[page.severity])
    header = {"type": "plain_text", "text": _clip(f"{emoji} {headline(page)}", HEADER_LIMIT)}
    summary = {"type": "section", "text": _mrkdwn(f"*Summary*\n{escape(page.summary)}")}
    context = {
        "type": "context",
        "elements": [_mrkdwn(f"Incident {escape(page.namespace)}/{escape(page.incident_name)}")],
    }
    optional = (_links_block(page), _acknowledge_block(page))
    return [
        {"type": "header", "text": header},
        summary,
        _fields(page),
        *(block for block in optional if block is not None),
        context,
    ]


def message(page: Page) -> dict[str, Any]:
    """The incoming webhook's JSON: fallback text and blocks."""
    return {"text": escape(page_text(page)), "blocks": blocks(page)}


def is_ok(response: httpx.Response) -> bool:
    """Slack's success: 200 with the body `ok`."""
    return response.status_code == httpx.codes.OK and response.text.strip() == "ok"


class SlackNotifier:
    """Pages through a Slack incoming webhook; never raises into the caller."""

    channel = PageChannel.SLACK

    def __init__(self, sender: Sender, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.sender = sender
        self.clock = clock or sender.clock

    async def send(self, page: Page, secret: SecretValue | None) -> PageOutcome:
        if secret is None or not (url := secret.get(URL)):
            return self._outcome(
                page, PageResult.FAILED, 0, "no webhook URL was read from the Secret"
            )
        body = json.dumps(message(page)).encode()
        headers = {"Content-Type": "application/json"}
        done = await self.sender.post(url, body, headers, is_ok, secret.values())
        result = PageResult.SENT if done.accepted else PageResult.FAILED
        return self._outcome(page, result, done.attempts, done.error)

    def _outcome(
        self, page: Page, result: PageResult, attempts: int, error: str | None
    ) -> PageOutcome:
        return PageOutcome(self.channel, page.user, result, attempts, self.clock(), error)
