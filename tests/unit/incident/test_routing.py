"""Routing: label, then production namespace, then the fallback; never dropped, always a reason."""

from __future__ import annotations

import pytest

from changegate.core.incident.routing import (
    RouteRule,
    RoutingConfig,
    ServiceDirectory,
    ServiceEntry,
    route,
    split_post,
)
from tests.unit.incident.builders import CONFIG, DIRECTORY, alert, payload


@pytest.mark.parametrize(
    ("labels", "service", "rule", "reason"),
    [
        ({"service": "payments"}, "payments", RouteRule.LABEL, "label service=payments names the service"),
        ({"service": "payments", "namespace": "checkout-prod"}, "payments", RouteRule.LABEL, "label service=payments"),
        ({"namespace": "checkout-prod"}, "checkout", RouteRule.NAMESPACE, "namespace checkout-prod is a production namespace of checkout"),
        ({"service": "ghost", "namespace": "checkout-prod"}, "checkout", RouteRule.NAMESPACE, "production namespace of checkout"),
        ({"service": "ghost"}, "platform", RouteRule.FALLBACK, "label service=ghost names no known service, no namespace label: fallback service"),
        ({"namespace": "kube-system"}, "platform", RouteRule.FALLBACK, "no service label, namespace kube-system is no service's production namespace"),
        ({}, "platform", RouteRule.FALLBACK, "no service label, no namespace label"),
    ],
)  # fmt: skip
def test_routing_rules(labels: dict[str, str], service: str, rule: RouteRule, reason: str) -> None:
    placed = route(labels, DIRECTORY, CONFIG)
    assert (placed.service, placed.rule) == (service, rule)
    assert reason in placed.reason


def test_the_service_label_is_configurable() -> None:
    config = RoutingConfig(fallback_service="platform", service_label="app_service")
    assert (
        route({"app_service": "checkout", "service": "payments"}, DIRECTORY, config).service
        == "checkout"
    )
    assert route({"service": "payments"}, DIRECTORY, config).rule is RouteRule.FALLBACK


def test_a_namespace_shared_by_two_services_goes_to_the_first_by_name_and_says_so() -> None:
    directory = ServiceDirectory(
        (ServiceEntry("zeta", frozenset({"shared"})), ServiceEntry("alpha", frozenset({"shared"})))
    )
    placed = route({"namespace": "shared"}, directory, CONFIG)
    assert placed.service == "alpha"
    assert "also of zeta" in placed.reason


def test_a_post_splits_into_one_delivery_per_service_and_keeps_every_alert() -> None:
    post = payload(
        alert("a1"),
        alert("b2", labels={"service": "", "namespace": "checkout-prod"}),
        alert("c3", labels={"service": "nobody"}),
        alert("d4"),
    )
    deliveries = split_post(post, DIRECTORY, CONFIG)
    assert [(d.service, [a.fingerprint for a in d.alerts]) for d in deliveries] == [
        ("checkout", ["b2"]),
        ("payments", ["a1", "d4"]),
        ("platform", ["c3"]),
    ]
    assert all(len(d.routes) == len(d.alerts) for d in deliveries)
    assert {d.group_key for d in deliveries} == {post.group_key}
