"""The Alertmanager intake on the real control plane: posts as Alertmanager sends them.

The controller runs under the chart's identity with the intake on 127.0.0.1
(tests/support/operator.py); each test uses its own service and group key, so
its Incidents are its own.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from kubernetes import client

from tests.integration.conftest import service_on_call
from tests.support.localcluster import LocalCluster
from tests.support.operator import (
    INTAKE_FALLBACK_SERVICE,
    INTAKE_TOKEN,
    NAMESPACE,
    Installation,
    trust_store,
)
from tests.support.polling import wait_for

pytestmark = pytest.mark.integration

ZERO_TIME = "0001-01-01T00:00:00Z"
START = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)


def stamp(minutes: float) -> str:
    return (START + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def alert(
    fingerprint: str, service: str, *, resolved: bool = False, **labels: str
) -> dict[str, Any]:
    return {
        "status": "resolved" if resolved else "firing",
        "labels": {"alertname": "HighErrorRate", "severity": "critical", "service": service}
        | labels,
        "annotations": {"summary": "5xx above 5% for 5 minutes"},
        "startsAt": stamp(0),
        "endsAt": stamp(3) if resolved else ZERO_TIME,
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def notification(group_key: str, *alerts: dict[str, Any]) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": "changegate",
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": {"alertname": "HighErrorRate"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


class Intake:
    """Posts to the running intake over HTTPS, as Alertmanager's webhook_config does."""

    def __init__(self, installation: Installation) -> None:
        self.url = f"https://127.0.0.1:{installation.intake_port}/alerts"
        self.context: ssl.SSLContext = trust_store(installation.cert)

    def post(
        self, body: Any, token: str | None = INTAKE_TOKEN, raw: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=60) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@pytest.fixture
def intake(installation: Installation) -> Intake:
    return Intake(installation)


@pytest.fixture
def service(cluster: LocalCluster, intake: Intake, namespace: str) -> str:
    """A service of its own, known to the controller's index before the test posts."""
    name = f"svc-{uuid.uuid4().hex[:8]}"
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(service_on_call(namespace, service=name)),
        user="platform-admin-1",
    )
    probe = notification(f"probe-{name}", alert("00ff", name, resolved=True))

    def routed_to_it() -> bool:
        status, answer = intake.post(probe)  # resolutions with no incident write nothing
        return status == 200 and answer["incidents"][0]["service"] == name

    wait_for(routed_to_it, timeout=30, message="the controller to know the service")
    return name


def incidents(api: client.ApiClient, service: str) -> list[dict[str, Any]]:
    listed = client.CustomObjectsApi(api).list_cluster_custom_object(
        "changegate.io", "v1alpha1", "incidents", label_selector=f"changegate.io/service={service}"
    )
    return sorted(listed["items"], key=lambda o: o["metadata"]["name"])


def group() -> str:
    return f'{{}}/{{}}:{{alertname="HighErrorRate", run="{uuid.uuid4().hex}"}}'


def test_an_alert_opens_one_incident_and_a_duplicate_changes_nothing(
    api: client.ApiClient, intake: Intake, service: str, namespace: str
) -> None:
    post = notification(group(), alert("a1", service), alert("b2", service))
    status, answer = intake.post(post)
    assert status == 200, answer
    (incident,) = incidents(api, service)
    assert incident["metadata"]["namespace"] == namespace
    assert incident["spec"]["severity"] == "Critical"
    assert [a["fingerprint"] for a in incident["status"]["alerts"]] == ["a1", "b2"]
    alerts = incident["status"]["alerts"]

    status, answer = intake.post(post)  # Alertmanager HA: the same notification again
    assert (status, answer["incidents"][0]["outcome"]) == (200, "Unchanged")
    # The controller may write the Incident meanwhile (pages, escalation), so compare
    # what the intake owns: the same single Incident with the same alerts.
    (again,) = incidents(api, service)
    assert again["metadata"]["uid"] == incident["metadata"]["uid"]
    assert again["status"]["alerts"] == alerts


def test_all_alerts_resolved_auto_resolves_the_incident(
    api: client.ApiClient, intake: Intake, service: str
) -> None:
    key = group()
    intake.post(notification(key, alert("a1", service), alert("b2", service)))
    status, _ = intake.post(notification(key, alert("a1", service, resolved=True)))
    assert status == 200
    (incident,) = incidents(api, service)
    assert "resolution" not in incident["spec"]
    status, answer = intake.post(notification(key, alert("b2", service, resolved=True)))
    assert (status, answer["incidents"][0]["outcome"]) == (200, "AutoResolved")
    (incident,) = incidents(api, service)
    resolution = incident["spec"]["resolution"]
    assert (resolution["code"], resolution["resolvedBy"]) == ("AutoResolved", "changegate")
    assert {a["state"] for a in incident["status"]["alerts"]} == {"Resolved"}


def test_no_or_wrong_token_is_401_and_malformed_is_400(
    api: client.ApiClient, intake: Intake, service: str
) -> None:
    post = notification(group(), alert("a1", service))
    for token in (None, "wrong", INTAKE_TOKEN + "x"):
        status, answer = intake.post(post, token=token)
        assert (status, answer) == (401, {"message": "unauthorized"})
    status, answer = intake.post(None, raw=b'{"version": "4", "alerts": [')
    assert status == 400
    assert "not an Alertmanager payload" in answer["message"]
    status, answer = intake.post(post | {"version": "3"})
    assert status == 400
    assert 'version must be "4"' in answer["message"]
    assert incidents(api, service) == []


def test_ten_thousand_alerts_in_one_post_are_answered_and_accounted_for(
    api: client.ApiClient, intake: Intake, service: str
) -> None:
    flood = [alert(f"{i:016x}", service) for i in range(10_000)]
    status, answer = intake.post(notification(group(), *flood))
    assert (status, answer["incidents"][0]["outcome"]) == (200, "Opened")
    (incident,) = incidents(api, service)
    assert len(incident["status"]["alerts"]) == 1000
    untracked = [e for e in incident["status"]["timeline"] if e["action"] == "AlertsNotTracked"]
    assert untracked[0]["message"].startswith("9000 alerts not tracked")
    firing = [e for e in incident["status"]["timeline"] if e["action"] == "AlertsFiring"]
    assert firing[0]["message"].startswith("1000 firing")


def test_an_unknown_service_goes_to_the_fallback_with_the_reason(
    api: client.ApiClient, intake: Intake
) -> None:
    stranger = f"nobody-{uuid.uuid4().hex[:8]}"
    key = group()
    status, answer = intake.post(notification(key, alert("c3", stranger)))
    assert status == 200
    assert answer["incidents"][0]["service"] == INTAKE_FALLBACK_SERVICE
    (incident,) = [
        i for i in incidents(api, INTAKE_FALLBACK_SERVICE) if i["spec"]["alert"]["groupKey"] == key
    ]
    assert incident["metadata"]["namespace"] == NAMESPACE
    routed = [e for e in incident["status"]["timeline"] if e["action"] == "AlertsRouted"]
    assert f"label service={stranger} names no known service" in routed[0]["message"]


def last_incident(api: client.ApiClient, namespace: str, service: str) -> dict[str, Any] | None:
    soc = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "changegate.io", "v1alpha1", namespace, "serviceoncalls", service
    )
    found: dict[str, Any] | None = soc.get("status", {}).get("lastIncident")
    return found


def reference(incident: dict[str, Any]) -> dict[str, Any]:
    metadata = incident["metadata"]
    return {k: metadata[k] for k in ("name", "namespace", "uid")}


def latest(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The one opened last, as the operator chooses: creation time, then name."""
    return max(items, key=lambda i: (i["metadata"]["creationTimestamp"], i["metadata"]["name"]))


@pytest.mark.usefixtures("incidents_resolved")
def test_a_new_incident_becomes_the_services_last_incident(
    api: client.ApiClient, cluster: LocalCluster, intake: Intake, service: str, namespace: str
) -> None:
    assert last_incident(api, namespace, service) is None
    status, _ = intake.post(notification(group(), alert("a1", service)))
    assert status == 200
    (first,) = incidents(api, service)
    wait_for(
        lambda: last_incident(api, namespace, service) == reference(first),
        timeout=60,  # written settled: SETTLE (30 s) after the Incident opened, then a tick
        message="lastIncident to name the alert's Incident",
    )

    status, _ = intake.post(notification(group(), alert("b2", service)))  # another group
    assert status == 200
    both = incidents(api, service)
    assert len(both) == 2
    newest = latest(both)
    wait_for(
        lambda: last_incident(api, namespace, service) == reference(newest),
        timeout=60,
        message="lastIncident to name the newer Incident",
    )
    printed = cluster.kubectl("-n", namespace, "get", "serviceoncall", service, "-o", "wide")
    assert newest["metadata"]["name"] in printed.stdout  # the Last-Incident column

    cluster.kubectl("-n", namespace, "delete", "incident", newest["metadata"]["name"])
    (remaining,) = incidents(api, service)
    wait_for(
        lambda: last_incident(api, namespace, service) == reference(remaining),
        message="lastIncident to fall back to the remaining Incident",
    )
