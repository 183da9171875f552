"""The message of a page (core.incident.notification): what it says, its key, its record."""

from __future__ import annotations

import pytest

from changegate.api.v1alpha1.incident import Page as PageEntry
from changegate.api.v1alpha1.incident import PageChannel, PageResult, Severity
from changegate.core.incident.notification import (
    MAX_PAGES,
    acknowledge_command,
    delivered,
    idempotency_key,
    page_entry,
    page_for,
    page_text,
    recorded,
)
from changegate.core.ports import PageAction, PageLink, PageOutcome, SecretValue
from tests.unit.notify.builders import T0, UID, incident, page


def test_a_page_carries_the_incident_its_links_and_the_acknowledge_command() -> None:
    built = page(step=2, user="bob", on_call="alice")
    assert (built.incident_uid, built.incident_name, built.namespace) == (
        UID,
        "payments-5xx",
        "payments-prod",
    )
    assert (built.service, built.severity, built.user, built.on_call) == (
        "payments",
        Severity.CRITICAL,
        "bob",
        "alice",
    )
    assert built.escalation_step == 2
    assert built.dashboards == (
        PageLink("Golden signals", "https://grafana.example.com/d/payments"),
    )
    assert built.runbooks == (PageLink("Runbook", "https://wiki.example.com/payments"),)
    assert (
        built.acknowledge_command == "kubectl changegate incident ack -n payments-prod payments-5xx"
    )
    assert built.time == T0


def test_the_acknowledge_command_names_namespace_and_incident() -> None:
    assert acknowledge_command("ns", "inc-1") == "kubectl changegate incident ack -n ns inc-1"


def test_the_idempotency_key_is_stable_and_differs_per_step_target_action_and_incident() -> None:
    key = idempotency_key(UID, PageAction.TRIGGER, 1, "alice")
    assert key == idempotency_key(UID, PageAction.TRIGGER, 1, "alice")
    others = {
        idempotency_key(UID, PageAction.TRIGGER, 2, "alice"),
        idempotency_key(UID, PageAction.TRIGGER, 1, "bob"),
        idempotency_key(UID, PageAction.TRIGGER, 1, None),
        idempotency_key(UID, PageAction.RESOLVE, 1, "alice"),
        idempotency_key("another-uid", PageAction.TRIGGER, 1, "alice"),
    }
    assert key not in others
    assert len(others) == 5
    assert key.startswith("changegate-")
    assert len(key) <= 255
    assert "alice" not in key


@pytest.mark.parametrize(
    ("user", "on_call", "action", "says", "not_says"),
    [
        (
            "alice",
            "alice",
            PageAction.TRIGGER,
            ["on call: alice", "acknowledge: kubectl"],
            ["paging"],
        ),
        ("bob", "alice", PageAction.TRIGGER, ["paging bob (on call: alice)"], []),
        (None, None, PageAction.TRIGGER, ["on call: nobody"], []),
        ("alice", "alice", PageAction.RESOLVE, ["resolved: Error rate"], ["acknowledge:"]),
    ],
)
def test_the_text_says_who_is_paged_and_how_to_acknowledge(
    user: str | None, on_call: str | None, action: PageAction, says: list[str], not_says: list[str]
) -> None:
    text = page_text(page(user=user, on_call=on_call, action=action))
    assert text.startswith("[Critical] payments: ")
    for part in says:
        assert part in text
    for part in not_says:
        assert part not in text


def test_a_major_incident_says_so() -> None:
    assert page_text(page(major=True)).startswith("[Critical MAJOR] payments:")


def test_an_outcome_becomes_a_status_entry_with_the_pages_key_and_step() -> None:
    built = page(step=3, user="bob")
    outcome = PageOutcome(PageChannel.SLACK, "bob", PageResult.FAILED, 4, T0, "HTTP 503")
    entry = page_entry(built, outcome)
    assert entry.channel is PageChannel.SLACK
    assert (entry.user, entry.escalation_step, entry.attempts) == ("bob", 3, 4)
    assert entry.dedup_key == built.idempotency_key
    assert entry.result is PageResult.FAILED
    assert entry.message == "HTTP 503"
    assert entry.model_dump(by_alias=True, mode="json")["escalationStep"] == 3


def _entry(
    key: str, result: PageResult = PageResult.SENT, channel: PageChannel = PageChannel.SLACK
) -> PageEntry:
    return PageEntry(time=T0, channel=channel, dedup_key=key, result=result)


def test_status_pages_keep_the_newest_within_the_bound() -> None:
    old = [_entry(f"k{i}") for i in range(MAX_PAGES)]
    kept = recorded(old, [_entry("new")])
    assert len(kept) == MAX_PAGES
    assert kept[-1].dedup_key == "new"
    assert kept[0].dedup_key == "k1"


def test_a_page_sent_on_a_channel_is_not_sent_again_but_a_failed_one_is() -> None:
    built = page()
    sent = [_entry(built.idempotency_key)]
    assert delivered(sent, built, PageChannel.SLACK)
    assert not delivered(sent, built, PageChannel.WEBHOOK)
    assert not delivered(
        [_entry(built.idempotency_key, PageResult.FAILED)], built, PageChannel.SLACK
    )
    assert not delivered([_entry("other")], built, PageChannel.SLACK)


def test_a_secret_value_never_prints_its_values() -> None:
    secret = SecretValue({"url": "https://hooks.example.com/T/B/XYZ", "signingKey": "k3y"})
    for text in (repr(secret), str(secret), f"{secret}"):
        assert "XYZ" not in text
        assert "k3y" not in text
        assert "signingKey" in text
    assert secret.get("signingKey") == "k3y"
    assert secret.get("missing") is None


def test_a_callers_own_key_is_kept_and_otherwise_one_is_derived() -> None:
    given = page_for(
        incident(), action=PageAction.TRIGGER, step=1, user="bob", on_call="bob", now=T0, key="k-1"
    )
    derived = page(step=1, user="bob", on_call="bob")
    assert given.idempotency_key == "k-1"
    assert derived.idempotency_key == idempotency_key(UID, PageAction.TRIGGER, 1, "bob")
