"""Kubernetes Events, a service's channels, sending on all at once, and reading Secret keys."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from kubernetes import client

from changegate.adapters.notify.channels import Channel, send_all, service_channels
from changegate.adapters.notify.delivery import Sender, new_client
from changegate.adapters.notify.events import KubernetesEvents
from changegate.adapters.notify.secrets import SecretReader, SecretUnavailable
from changegate.api.v1alpha1.common import SecretKeyRef
from changegate.api.v1alpha1.incident import PageChannel, PageResult
from changegate.api.v1alpha1.serviceoncall import Integrations
from changegate.core.ports import Page, PageAction, PageOutcome, SecretValue
from tests.support.receivers import receiving
from tests.unit.notify.builders import HOOK_TOKEN, SIGNING_KEY, T0, UID, Sleeps, clock, page


class Poster:
    """The Kubernetes adapter's post_event, recorded; answers as told."""

    def __init__(self, answer: bool | Exception = True) -> None:
        self.answer = answer
        self.events: list[dict[str, Any]] = []

    def post_event(self, involved: dict[str, Any], **event: Any) -> bool:
        self.events.append({"involved": involved, **event})
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_a_page_is_an_event_on_the_incident() -> None:
    poster = Poster()
    outcome = asyncio.run(KubernetesEvents(poster, clock).send(page(user="bob")))
    assert outcome == PageOutcome(PageChannel.KUBERNETES, "bob", PageResult.SENT, 1, T0, None)
    [event] = poster.events
    assert event["involved"] == {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "Incident",
        "namespace": "payments-prod",
        "name": "payments-5xx",
        "uid": UID,
    }
    assert (event["reason"], event["type_"], event["action"]) == ("Paged", "Warning", "Page")
    assert "kubectl changegate incident ack -n payments-prod payments-5xx" in event["message"]


def test_a_resolution_event_is_normal() -> None:
    poster = Poster()
    asyncio.run(KubernetesEvents(poster, clock).send(page(action=PageAction.RESOLVE)))
    assert (poster.events[0]["reason"], poster.events[0]["type_"]) == ("PageResolved", "Normal")


@pytest.mark.parametrize(
    ("answer", "error"),
    [(False, "the API server refused the Event"), (RuntimeError("boom"), "RuntimeError")],
)
def test_an_event_not_posted_is_a_failed_page_never_an_exception(
    answer: bool | Exception, error: str
) -> None:
    outcome = asyncio.run(KubernetesEvents(Poster(answer), clock).send(page()))
    assert (outcome.result, outcome.error) == (PageResult.FAILED, error)


def test_an_event_without_an_incident_is_skipped() -> None:
    built = page()
    orphan = Page(**{**{f: getattr(built, f) for f in built.__slots__}, "incident_name": ""})
    poster = Poster()
    outcome = asyncio.run(KubernetesEvents(poster, clock).send(orphan))
    assert outcome.result is PageResult.SKIPPED
    assert poster.events == []


def _integrations(**kinds: Any) -> Integrations:
    return Integrations.model_validate(kinds)


SLACK = {"secretRef": {"name": "hooks", "key": "slack-url"}}
WEBHOOK = {
    "secretRef": {"name": "hooks", "key": "webhook-url"},
    "signingSecretRef": {"name": "hooks", "key": "signing-key"},
}


@pytest.mark.parametrize(
    ("kinds", "channels"),
    [
        ({}, [PageChannel.KUBERNETES]),
        ({"slack": SLACK}, [PageChannel.KUBERNETES, PageChannel.SLACK]),
        (
            {"webhook": WEBHOOK, "slack": SLACK},
            [PageChannel.KUBERNETES, PageChannel.WEBHOOK, PageChannel.SLACK],
        ),
    ],
)
def test_events_are_always_on_and_the_others_where_configured(
    kinds: dict[str, Any], channels: list[PageChannel]
) -> None:
    sender = Sender(httpx.AsyncClient(), clock=clock)
    built = service_channels(_integrations(**kinds), "payments-prod", sender, Poster())
    assert [c.notifier.channel for c in built] == channels
    assert built[0].secret_refs == {}
    assert all(c.namespace == "payments-prod" for c in built[1:])


class Secrets:
    """Secret keys by Secret name and key; a missing one is SecretUnavailable."""

    def __init__(self, data: Mapping[tuple[str, str], str]) -> None:
        self.data = data

    async def read(self, namespace: str, refs: Mapping[str, SecretKeyRef]) -> SecretValue:
        try:
            return SecretValue({n: self.data[r.name, r.key] for n, r in refs.items()})
        except KeyError as error:
            raise SecretUnavailable(f"Secret {namespace}/{error.args[0][0]} has no key") from None


class Raising:
    channel = PageChannel.PAGER_DUTY

    async def send(self, page: Page, secret: SecretValue | None) -> PageOutcome:
        raise RuntimeError(f"leaking {secret and secret.get('url')}")


def test_every_channel_gets_the_page_and_one_failing_holds_up_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    poster = Poster()

    async def run(slack_url: str, webhook_url: str) -> list[PageOutcome]:
        async with new_client() as http:
            sender = Sender(http, sleep=Sleeps(), clock=clock)
            channels = service_channels(
                _integrations(slack=SLACK, webhook=WEBHOOK), "payments-prod", sender, poster
            )
            secrets = Secrets(
                {("hooks", "slack-url"): slack_url, ("hooks", "webhook-url"): webhook_url}
            )
            raising = Channel(
                Raising(), "payments-prod", {"url": SecretKeyRef(name="hooks", key="slack-url")}
            )
            return await send_all(page(), [*channels, raising], secrets, clock)

    with receiving("slack") as slack:
        outcomes = asyncio.run(run(f"{slack.url}/services/{HOOK_TOKEN}", "http://127.0.0.1:9/x"))
    assert [(o.channel, o.result) for o in outcomes] == [
        (PageChannel.KUBERNETES, PageResult.SENT),
        (PageChannel.WEBHOOK, PageResult.FAILED),
        (PageChannel.SLACK, PageResult.SENT),
        (PageChannel.PAGER_DUTY, PageResult.FAILED),
    ]
    assert outcomes[1].error == "Secret payments-prod/hooks has no key"
    assert outcomes[1].attempts == 0
    assert outcomes[3].error == "the PagerDuty channel failed (RuntimeError)"
    assert len(slack.posts) == 1
    assert len(poster.events) == 1
    assert HOOK_TOKEN not in caplog.text
    assert HOOK_TOKEN not in repr(outcomes)


def _encoded(**values: str) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


class CoreApi:
    """CoreV1Api's read_namespaced_secret over a dict of Secrets; counts reads."""

    def __init__(self, secrets: dict[str, dict[str, str]], status: int | None = None) -> None:
        self.secrets = secrets
        self.status = status
        self.reads = 0

    def read_namespaced_secret(self, name: str, namespace: str) -> client.V1Secret:
        self.reads += 1
        if self.status is not None:
            raise client.ApiException(status=self.status, reason="Forbidden")
        if name not in self.secrets:
            raise client.ApiException(status=404, reason="Not Found")
        return client.V1Secret(data=self.secrets[name])


def reader(core: CoreApi) -> SecretReader:
    secret_reader = SecretReader(client.ApiClient())
    secret_reader.core = core  # type: ignore[assignment]
    return secret_reader


REFS = {
    "url": SecretKeyRef(name="hooks", key="webhook-url"),
    "signingKey": SecretKeyRef(name="hooks", key="signing-key"),
}


def test_secret_keys_are_read_under_the_channels_names_one_read_per_secret() -> None:
    core = CoreApi(
        {"hooks": _encoded(**{"webhook-url": "https://h/x\n", "signing-key": SIGNING_KEY})}
    )
    secret = asyncio.run(reader(core).read("payments-prod", REFS))
    assert secret.get("url") == "https://h/x"
    assert secret.get("signingKey") == SIGNING_KEY
    assert core.reads == 1


@pytest.mark.parametrize(
    ("core", "error"),
    [
        (CoreApi({}), "Secret payments-prod/hooks not found"),
        (
            CoreApi({"hooks": _encoded(**{"webhook-url": "https://h/x"})}),
            "Secret payments-prod/hooks has no text under the key signing-key",
        ),
        (
            CoreApi({"hooks": {"webhook-url": "not base64!", "signing-key": "eA=="}}),
            "Secret payments-prod/hooks has no text under the key webhook-url",
        ),
        (CoreApi({}, status=403), "cannot read Secret payments-prod/hooks: 403 Forbidden"),
    ],
)
def test_an_unreadable_secret_says_which_and_never_what(core: CoreApi, error: str) -> None:
    with pytest.raises(SecretUnavailable) as raised:
        reader(core).read_now("payments-prod", REFS)
    assert str(raised.value) == error
