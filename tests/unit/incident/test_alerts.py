"""The Alertmanager payload at the boundary: what is accepted, what is refused and why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from changegate.api.v1alpha1.incident import Severity
from changegate.api.v1alpha1.serviceoncall import Link
from changegate.core.incident.alerts import (
    DEFAULT_SEVERITY,
    MAX_ALERTS,
    PayloadError,
    dashboards_of,
    most_severe,
    parse_payload,
    runbooks_of,
    severity_of,
    summary_of,
)
from tests.unit.incident.builders import GROUP, alert, at, body, payload


def post(data: Any) -> bytes:
    return json.dumps(data).encode()


def test_a_version_4_post_parses_with_alertmanager_spellings() -> None:
    parsed = parse_payload(post(body(alert("a1"), alert("b2", starts=-5, ends=1))))
    assert parsed.group_key == GROUP
    assert parsed.external_url == "http://alertmanager:9093"
    first, second = parsed.alerts
    assert (first.fingerprint, first.firing, first.starts_at, first.ends_at) == (
        "a1",
        True,
        at(0),
        None,
    )
    assert (second.firing, second.ends_at) == (False, at(1))
    assert first.generator_url == "http://prometheus:9090/graph"


def test_unknown_fields_from_a_newer_alertmanager_are_ignored() -> None:
    data = body(alert())
    data["somethingNew"] = {"x": 1}
    data["alerts"][0]["extra"] = "y"
    assert parse_payload(post(data)).alerts[0].fingerprint == "a1"


def big_labels(count: int, size: int) -> dict[str, str]:
    return {f"l{i}": "x" * size for i in range(count)}


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"{not json", "Invalid JSON"),
        (b"[]", "not an Alertmanager payload"),
        (post({**body(alert()), "version": "3"}), 'payload version must be "4"'),
        (post({k: v for k, v in body(alert()).items() if k != "version"}), "got None"),
        (post(body()), "alerts"),
        (post({**body(alert()), "groupKey": ""}), "groupKey"),
        (post(body({**alert(), "fingerprint": "NOT-HEX"})), "alerts.0.fingerprint"),
        (post(body({**alert(), "status": "pending"})), "alerts.0.status"),
        (post(body({**alert(), "startsAt": "2025-03-30T00:00:00"})), "timezone"),
        (post(body({k: v for k, v in alert().items() if k != "labels"})), "alerts.0.labels"),
        (post(body(alert(labels=big_labels(1, 5000)))), "at most 4096 characters"),
        (post(body(alert(labels=big_labels(65, 1)))), "at most 64 items"),
        (post(body(*[alert(f"{i:x}") for i in range(MAX_ALERTS + 1)])), "at most 10000 items"),
    ],
    ids=[
        "malformed-json", "not-an-object", "version-3", "no-version", "no-alerts",
        "empty-group-key", "bad-fingerprint", "unknown-status", "naive-time", "no-labels",
        "huge-label-value", "too-many-labels", "over-10000-alerts",
    ],
)  # fmt: skip
def test_what_is_never_accepted_is_refused_with_a_reason(data: bytes, says: str) -> None:
    with pytest.raises(PayloadError, match="not an Alertmanager payload") as refused:
        parse_payload(data)
    assert says in str(refused.value)


def test_a_version_error_is_the_only_error_reported() -> None:
    with pytest.raises(PayloadError) as refused:
        parse_payload(post({"version": "5", "whatever": []}))
    assert str(refused.value) == (
        'not an Alertmanager payload: body: payload version must be "4"'
        " (Alertmanager webhook_config), got '5'"
    )


def test_ten_thousand_alerts_are_accepted() -> None:
    parsed = parse_payload(post(body(*[alert(f"{i:x}") for i in range(MAX_ALERTS)])))
    assert len(parsed.alerts) == MAX_ALERTS


def test_a_long_error_list_is_cut_short() -> None:
    with pytest.raises(PayloadError) as refused:
        parse_payload(post(body(*[{**alert(), "fingerprint": "X"} for _ in range(9)])))
    assert "(and 4 more)" in str(refused.value)


@pytest.mark.parametrize(
    ("label", "severity"),
    [
        ("critical", Severity.CRITICAL),
        ("page", Severity.CRITICAL),
        ("error", Severity.HIGH),
        ("warning", Severity.MEDIUM),
        (" Warning ", Severity.MEDIUM),
        ("info", Severity.LOW),
        ("none", Severity.LOW),
        ("sev-unknown", DEFAULT_SEVERITY),
        (None, DEFAULT_SEVERITY),
    ],
)
def test_severity_comes_from_the_severity_label(label: str | None, severity: Severity) -> None:
    assert severity_of({} if label is None else {"severity": label}) is severity


def test_the_most_severe_wins() -> None:
    assert most_severe([Severity.LOW, Severity.CRITICAL, Severity.MEDIUM]) is Severity.CRITICAL
    assert most_severe([]) is None


SERVICE_DASHBOARD = Link(name="Payments overview", url="https://grafana/d/payments")
SERVICE_RUNBOOK = Link(name="Payments runbook", url="https://wiki/payments")


def test_links_come_from_annotations_then_the_service_without_repeats() -> None:
    annotated = alert(
        annotations={
            "dashboardURL": "https://grafana/d/payments",
            "panelURL": "https://grafana/d/payments?viewPanel=3",
            "runbook_url": "https://wiki/high-error-rate",
        }
    )
    alerts = payload(annotated, alert("b2")).alerts
    dashboards = dashboards_of(alerts, [SERVICE_DASHBOARD])
    assert [d.url for d in dashboards] == [
        "https://grafana/d/payments",
        "https://grafana/d/payments?viewPanel=3",
    ]
    assert dashboards[0].name == "HighErrorRate dashboard"
    runbooks = runbooks_of(alerts, [SERVICE_RUNBOOK])
    assert [r.url for r in runbooks] == ["https://wiki/high-error-rate", "https://wiki/payments"]


def test_grafana_alert_fields_count_as_dashboards_and_bad_addresses_are_skipped() -> None:
    grafana = {**alert(), "dashboardURL": "https://grafana/d/x", "panelURL": "javascript:alert(1)"}
    assert [d.url for d in dashboards_of(payload(grafana).alerts)] == ["https://grafana/d/x"]


@pytest.mark.parametrize(
    ("annotations", "summary"),
    [
        ({"summary": "Error rate  above\n5%"}, "Error rate above 5%"),
        ({}, "HighErrorRate firing on payments"),
        ({"summary": "x" * 2000}, "x" * 1024),
    ],
)
def test_the_summary_is_one_bounded_line(annotations: dict[str, str], summary: str) -> None:
    assert summary_of(payload(alert(annotations=annotations)).alerts, "payments") == summary
