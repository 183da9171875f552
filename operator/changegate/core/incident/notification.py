"""What a page says and how it is recorded (pure): Incident values in, Page values out.

Escalation decides whom to page at which step; this module turns that choice
into the `Page` every notifier renders (ports), and each channel's outcome
into an entry of the Incident's `status.pages`. Time is always a parameter.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable

from changegate.api.v1alpha1.incident import Incident, PageChannel, PageResult
from changegate.api.v1alpha1.incident import Page as PageEntry
from changegate.api.v1alpha1.serviceoncall import Link
from changegate.core.ports import Page, PageAction, PageLink, PageOutcome

# status.pages holds at most this many entries (the CRD's maxItems); the oldest drop off.
MAX_PAGES = 64
_KEY_PREFIX = "changegate-"


def acknowledge_command(namespace: str, name: str) -> str:
    """The command a responder runs to acknowledge the incident."""
    return f"kubectl changegate incident ack -n {namespace} {name}"


def idempotency_key(uid: str, action: PageAction, step: int, target: str | None) -> str:
    """A key stable across retries and restarts, distinct per incident, action, step and target.

    `step` counts across repeats of the escalation policy, so a repeat is a new
    page and not a duplicate. Hashed: the key stays short and names nobody.
    """
    material = "\n".join((uid, action.value, str(step), target or ""))
    return _KEY_PREFIX + hashlib.sha256(material.encode()).hexdigest()[:40]


def _links(links: Iterable[Link]) -> tuple[PageLink, ...]:
    return tuple(PageLink(link.name, link.url) for link in links)


def page_for(
    incident: Incident,
    *,
    action: PageAction,
    step: int,
    user: str | None,
    on_call: str | None,
    now: dt.datetime,
    key: str | None = None,
) -> Page:
    """The page about `incident` for `user` (None: the channel itself, e.g. a team's Slack).

    `key` is the caller's idempotency key when it keeps one (escalation keys
    each round, step and target); otherwise one is derived here.
    """
    meta = incident.metadata
    uid, name, namespace = meta.uid or "", meta.name or "", meta.namespace or ""
    return Page(
        incident_uid=uid,
        incident_name=name,
        namespace=namespace,
        service=incident.spec.service,
        severity=incident.spec.severity,
        summary=incident.spec.summary,
        action=action,
        user=user,
        on_call=on_call,
        escalation_step=step,
        major=incident.spec.major,
        dashboards=_links(incident.status.dashboards),
        runbooks=_links(incident.status.runbooks),
        acknowledge_command=acknowledge_command(namespace, name),
        idempotency_key=key or idempotency_key(uid, action, step, user),
        time=now,
    )


def headline(page: Page) -> str:
    """One line saying what happened: the fallback text of every channel."""
    major = " MAJOR" if page.major else ""
    verb = {
        PageAction.TRIGGER: "",
        PageAction.ACKNOWLEDGE: "acknowledged: ",
        PageAction.RESOLVE: "resolved: ",
    }[page.action]
    return f"[{page.severity.value}{major}] {page.service}: {verb}{page.summary}"


def who(page: Page) -> str:
    """Who is paged and who is on call, in words; nobody on call is said, never hidden."""
    on_call = page.on_call or "nobody"
    if page.user and page.user != page.on_call:
        return f"paging {page.user} (on call: {on_call})"
    return f"on call: {on_call}"


def page_text(page: Page) -> str:
    """The page as plain text: headline, who, step and how to acknowledge."""
    parts = [headline(page), f"{who(page)}, escalation step {page.escalation_step}"]
    if page.action is PageAction.TRIGGER:
        parts.append(f"acknowledge: {page.acknowledge_command}")
    return "; ".join(parts)


def page_entry(page: Page, outcome: PageOutcome) -> PageEntry:
    """The `status.pages` entry recording one channel's outcome of one page."""
    return PageEntry(
        time=outcome.time,
        channel=outcome.channel,
        user=outcome.user,
        escalation_step=page.escalation_step,
        dedup_key=page.idempotency_key,
        result=outcome.result,
        attempts=outcome.attempts,
        message=outcome.error[:1024] if outcome.error else None,
    )


def recorded(pages: Iterable[PageEntry], new: Iterable[PageEntry]) -> list[PageEntry]:
    """status.pages with `new` appended, the oldest dropped beyond the bound."""
    return [*pages, *new][-MAX_PAGES:]


def delivered(pages: Iterable[PageEntry], page: Page, channel: PageChannel) -> bool:
    """Whether `page` already reached `channel`, so a restarted controller does not resend it."""
    return any(
        entry.dedup_key == page.idempotency_key
        and entry.channel == channel
        and entry.result is PageResult.SENT
        for entry in pages
    )
