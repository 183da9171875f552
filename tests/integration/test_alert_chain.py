"""The real alert chain runs: a service's metrics, Prometheus, Alertmanager, a webhook.

These tests prove only that the components built from Go modules work together
on 127.0.0.1 as the incident tests need them: Prometheus scrapes an endpoint the
test flips to failing and evaluates a rule, and Alertmanager (alone, or as a
clustered HA pair) posts its webhook payload (version 4) to a plain recorder.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.support.polling import wait_for
from tests.support.prometheus import (
    Component,
    MetricsEndpoint,
    alertmanager,
    alertmanager_config,
    alertmanager_pair,
    get_json,
    prometheus,
    prometheus_config,
)
from tests.support.receivers import Post, Receiver, receiving

pytestmark = pytest.mark.integration

RULES = {
    "groups": [
        {
            "name": "service",
            "rules": [
                {
                    "alert": "ServiceDown",
                    "expr": "changegate_test_up == 0",
                    "labels": {"severity": "critical", "service": "shop"},
                    "annotations": {"summary": "shop is down"},
                }
            ],
        }
    ]
}
# Scrape and evaluation every second, group_wait 1s: a post comes in seconds.
DELIVERY_TIMEOUT = 30.0


def rule_evaluated(server: Component) -> dict[str, Any] | None:
    """The ServiceDown rule as Prometheus reports it, once it has been evaluated."""
    groups = get_json(server.url + "/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    rule = next(rule for rule in rules if rule["name"] == "ServiceDown")
    evaluated = not rule["lastEvaluation"].startswith("0001-")
    return rule if evaluated else None


def target_scraped_up(server: Component) -> bool:
    """Prometheus has scraped the endpoint and found it up."""
    result = get_json(server.url + "/api/v1/query?query=changegate_test_up")["data"]["result"]
    return bool(result) and result[0]["value"][1] == "1"


def alerts_held(member: Component) -> list[dict[str, Any]]:
    """The alerts an Alertmanager holds, from its API."""
    alerts: list[dict[str, Any]] = get_json(member.url + "/api/v2/alerts")
    return alerts


def posts_with(receiver: Receiver, status: str) -> Callable[[], list[Post]]:
    return lambda: [post for post in receiver.posts if post.json()["status"] == status]


def assert_webhook_payload(post: Post, status: str) -> dict[str, Any]:
    """Alertmanager's documented webhook_config payload, version 4, for ServiceDown."""
    payload: dict[str, Any] = post.json()
    assert post.header("Content-Type") == "application/json"
    assert payload["version"] == "4"
    assert payload["status"] == status
    assert payload["receiver"] == "test"
    assert payload["groupLabels"] == {"alertname": "ServiceDown"}
    assert payload["groupKey"]
    [alert] = payload["alerts"]
    assert alert["status"] == status
    assert alert["labels"]["alertname"] == "ServiceDown"
    assert alert["labels"]["service"] == "shop"
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"] == {"summary": "shop is down"}
    assert alert["fingerprint"]
    assert alert["startsAt"]
    assert alert["generatorURL"]
    return payload


def test_one_alertmanager_posts_firing_then_resolved(tmp_path: Path) -> None:
    with (
        receiving() as receiver,
        MetricsEndpoint() as endpoint,
        alertmanager(
            tmp_path / "alertmanager", alertmanager_config(receiver.url + "/alerts")
        ) as am,
        prometheus(
            tmp_path / "prometheus", prometheus_config([endpoint.target], [am], "rules.yml"), RULES
        ) as server,
    ):
        wait_for(lambda: target_scraped_up(server), DELIVERY_TIMEOUT, message="a healthy scrape")
        rule = wait_for(lambda: rule_evaluated(server), DELIVERY_TIMEOUT, message="rule evaluated")
        assert rule["health"] == "ok"
        assert rule["state"] == "inactive"

        endpoint.healthy = False
        [firing, *_] = wait_for(posts_with(receiver, "firing"), DELIVERY_TIMEOUT, message="firing")
        assert firing.path == "/alerts"
        sent = assert_webhook_payload(firing, "firing")
        assert sent["alerts"][0]["endsAt"].startswith("0001-")

        endpoint.healthy = True
        [resolved, *_] = wait_for(
            posts_with(receiver, "resolved"), DELIVERY_TIMEOUT, message="resolved"
        )
        closed = assert_webhook_payload(resolved, "resolved")
        assert closed["groupKey"] == sent["groupKey"]
        assert closed["alerts"][0]["fingerprint"] == sent["alerts"][0]["fingerprint"]
        assert not closed["alerts"][0]["endsAt"].startswith("0001-")


def test_clustered_pair_delivers_the_same_group(tmp_path: Path) -> None:
    with (
        receiving() as receiver,
        MetricsEndpoint() as endpoint,
        alertmanager_pair(tmp_path, alertmanager_config(receiver.url + "/alerts")) as pair,
        prometheus(
            tmp_path / "prometheus", prometheus_config([endpoint.target], pair, "rules.yml"), RULES
        ) as server,
    ):
        wait_for(lambda: target_scraped_up(server), DELIVERY_TIMEOUT, message="a healthy scrape")
        endpoint.healthy = False

        # Prometheus alerts both members; each holds the alert, and the pair's
        # posts (one, or a duplicate: Alertmanager HA delivers at least once)
        # all carry the same group and alert.
        for member in pair:
            wait_for(
                partial(alerts_held, member),
                DELIVERY_TIMEOUT,
                message=f"{member.name} holds the alert",
            )
        posts = wait_for(posts_with(receiver, "firing"), DELIVERY_TIMEOUT, message="firing")
        payloads = [assert_webhook_payload(post, "firing") for post in posts]
        assert {p["groupKey"] for p in payloads} == {payloads[0]["groupKey"]}
        assert {p["alerts"][0]["fingerprint"] for p in payloads} == {
            payloads[0]["alerts"][0]["fingerprint"]
        }
