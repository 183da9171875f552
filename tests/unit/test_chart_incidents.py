"""The chart's monitoring of incidents and on-call: PrometheusRule alerts and dashboard panels.

Rendered with helm like tests/unit/test_chart.py, whose helpers these tests
share; every series an alert or a panel names is one the operator exports.
"""

from __future__ import annotations

import json
from typing import Any

from tests.unit.test_chart import (
    allowed,
    changegate_metrics_in,
    exported_metrics,
    one,
    render,
    rules,
)


def alerts() -> dict[str, dict[str, Any]]:
    rule = one(
        render("metrics.prometheusRule.enabled=true", "metrics.serviceMonitor.enabled=true"),
        "PrometheusRule",
    )
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


def test_failing_pages_and_nobody_on_call_are_alerts_on_real_metrics() -> None:
    found = alerts()
    failing, nobody = found["ChangegatePagesFailing"], found["ChangegateNobodyOnCall"]
    assert changegate_metrics_in(failing["expr"]) == {"changegate_pages_total"}
    assert 'result="Failed"' in failing["expr"]
    assert "sum by (channel)" in failing["expr"]
    assert failing["labels"]["severity"] == "critical"
    assert changegate_metrics_in(nobody["expr"]) == {"changegate_service_on_call"}
    assert nobody["expr"].strip().endswith("== 0")
    assert "by (service)" in nobody["expr"]
    for alert in (failing, nobody):
        assert changegate_metrics_in(alert["expr"]) <= exported_metrics()
        assert 'job="changegate-metrics"' in alert["expr"]
        assert "{{ $labels." in alert["annotations"]["summary"]


def test_the_dashboard_has_an_incidents_row_from_real_metrics() -> None:
    configmap = one(render("metrics.dashboard.enabled=true"), "ConfigMap")
    panels = json.loads(configmap["data"]["changegate.json"])["panels"]
    titles = [p["title"] for p in panels]
    row = titles.index("Incidents")
    rows_after = [i for i, p in enumerate(panels) if p["type"] == "row" and i > row]
    incident_panels = panels[row + 1 : rows_after[0] if rows_after else None]
    assert {p["title"] for p in incident_panels} >= {
        "Open incidents",
        "Incidents opened",
        "Time to acknowledge",
        "Time to resolve",
        "Pages by channel and result",
        "Alert to first page",
        "Services with nobody on call",
        "Calls to PagerDuty and ServiceNow",
    }
    exprs = " ".join(t["expr"] for p in incident_panels for t in p["targets"])
    assert changegate_metrics_in(exprs) == {
        "changegate_open_incidents",
        "changegate_incidents_opened_total",
        "changegate_incident_time_to_acknowledge_seconds_bucket",
        "changegate_incident_time_to_resolve_seconds_bucket",
        "changegate_pages_total",
        "changegate_alert_to_first_page_seconds_bucket",
        "changegate_service_on_call",
        "changegate_intake_requests_total",
        "changegate_sync_calls_total",
    }
    assert changegate_metrics_in(exprs) <= exported_metrics()
    assert len({p["id"] for p in panels}) == len(panels)
    # Panels below the row, none overlapping another.
    cells = set()
    for p in incident_panels:
        g = p["gridPos"]
        assert g["y"] > panels[row]["gridPos"]["y"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, p["title"]
                cells.add((x, y))


def test_the_controller_reads_paging_secrets_only_in_the_namespaces_that_bind_its_role() -> None:
    objects = render("incidents.pageSecretNamespaces={payments-prod,orders-prod}")
    assert not allowed(rules(objects, "changegate-controller"), "secrets", "")
    page_secrets = rules(objects, "changegate-controller-page-secrets")
    assert allowed(page_secrets, "secrets", "") == {"get"}  # by name, never listed or watched
    bindings = [
        b for b in objects if b["kind"] == "RoleBinding" and "page-secrets" in b["metadata"]["name"]
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["orders-prod", "payments-prod"]
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "changegate-controller-page-secrets",
        }
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": "changegate-controller",
                "namespace": "changegate-system",
            }
        ]
    assert not [
        o
        for o in render()
        if o["kind"] == "RoleBinding" and "page-secrets" in o["metadata"]["name"]
    ]
