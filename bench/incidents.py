"""`make bench-incidents`: how fast an alert through the intake becomes a page, and whether any is lost.

On a local control plane with changegate installed by its chart (intake on),
100 services each declare a ServiceOnCall whose signed webhook points at one
local receiver. 1,000 alerts (ten per service, each its own Alertmanager
group) are posted to the intake over HTTPS as Alertmanager's webhook_config
would, from a pool of senders; a fifth are posted twice (HA delivers at least
once), then every alert resolves, again with a fifth twice. The receiver notes
when each incident's pages arrive. Prints figures; it is not a test.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import random
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, cast

from kubernetes import client, config
from tests.integration.test_intake import Intake
from tests.support.localcluster import LocalCluster, ensure_binaries
from tests.support.operator import Installation, grant_page_secrets
from tests.support.polling import wait_for
from tests.support.receivers import Post, Receiver

from bench.lifecycle import rss_mib

SERVICES = 100
ALERTS_PER_SERVICE = 10
DUPLICATE_SHARE = 0.2
SENDERS = 8
SIGNING_KEY = "bench-signing-key-0123456789"
ZERO_TIME = "0001-01-01T00:00:00Z"
PAGE_TIMEOUT = 600.0


class TimedReceiver(Receiver):
    """The test receiver, noting when each incident's pages arrive (wall clock, this host)."""

    def __init__(self) -> None:
        super().__init__("webhook", SIGNING_KEY)
        self.arrivals: dict[tuple[str, str], list[float]] = {}

    def _record(self, post: Post) -> Any:
        arrived = time.time()
        page = post.json()
        if page["action"] == "trigger":  # resolutions are notices, not pages
            key = (page["incident"]["namespace"], page["incident"]["name"])
            with self._lock:
                self.arrivals.setdefault(key, []).append(arrived)
        return super()._record(post)


def namespace_of(service: int) -> str:
    return f"bench-inc-{service:03d}"


def service_on_call(service: int) -> dict[str, Any]:
    name, namespace = f"svc-{service:03d}", namespace_of(service)
    return {
        "apiVersion": "changegate.io/v1alpha1",
        "kind": "ServiceOnCall",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "service": {"name": name, "displayName": name, "tier": "Tier2"},
            "team": {"name": "team-payments", "members": [{"user": "oncall-1"}]},
            "environments": [{"name": "production", "namespace": namespace, "production": True}],
            "onCall": {
                "rotations": [
                    {
                        "name": "primary",
                        "type": "Weekly",
                        "participants": ["oncall-1"],
                        "startTime": "2025-01-06T09:00:00Z",
                    }
                ],
                "escalation": {"steps": [{"delaySeconds": 0, "targets": [{"type": "OnCall"}]}]},
            },
            "integrations": {
                "webhook": {
                    "secretRef": {"name": "pager", "key": "url"},
                    "signingSecretRef": {"name": "pager", "key": "signingKey"},
                }
            },
        },
    }


def declare(
    cluster: LocalCluster, admin: client.ApiClient, receiver: Receiver, service: int
) -> None:
    namespace = namespace_of(service)
    cluster.kubectl("create", "namespace", namespace)
    grant_page_secrets(admin, namespace)  # as a platform team binds it in a team's namespace
    cluster.kubectl(
        "-n", namespace, "create", "secret", "generic", "pager",
        f"--from-literal=url={receiver.url}/page", f"--from-literal=signingKey={SIGNING_KEY}",
    )  # fmt: skip
    declared = json.dumps(service_on_call(service))
    cluster.kubectl("apply", "-f", "-", input=declared, user="platform-admin-1")


def stamp(at: float) -> str:
    return (
        dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def payload(service: int, number: int, started: float, resolved: bool) -> dict[str, Any]:
    """One group of one alert, as Alertmanager's webhook_config posts it (version 4)."""
    name = f"svc-{service:03d}"
    labels = {"alertname": f"Bench{number}", "service": name, "severity": "critical"}
    status = "resolved" if resolved else "firing"
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="Bench{number}", service="{name}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "changegate",
        "groupLabels": {"alertname": f"Bench{number}", "service": name},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.bench:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": f"{name} alert {number}"},
                "startsAt": stamp(started),
                "endsAt": stamp(time.time()) if resolved else ZERO_TIME,
                "generatorURL": "http://prometheus.bench:9090/graph",
                "fingerprint": f"{service:04x}{number:04x}",
            }
        ],
    }


def posts() -> list[tuple[int, int]]:
    """Every alert once and a fifth again, shuffled: the order HA delivery might give."""
    alerts = [(s, n) for s in range(SERVICES) for n in range(ALERTS_PER_SERVICE)]
    again = random.sample(alerts, int(len(alerts) * DUPLICATE_SHARE))
    order = alerts + again
    random.shuffle(order)
    return order


def main() -> None:
    random.seed(11)
    with LocalCluster("bench-incidents", ensure_binaries()) as cluster:
        for path in sorted(Path("crds").glob("*.yaml")):
            cluster.kubectl("apply", "--server-side", "-f", str(path))
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        installation = Installation.install(
            cluster, Path(tempfile.mkdtemp(prefix="bench-incidents-"))
        )
        receiver = TimedReceiver()
        receiver.start()
        try:
            run(cluster, installation, receiver)
        finally:
            receiver.close()
            installation.stop()


def wait_for_routes(intake: Intake) -> None:
    """Every service known to the controller's index before the clock starts."""
    for service in range(SERVICES):
        probe = payload(service, 999, time.time(), resolved=True)
        name = f"svc-{service:03d}"
        wait_for(
            lambda: intake.post(probe)[1]["incidents"][0]["service"] == name,  # noqa: B023
            timeout=120,
            message=f"the intake to know {name}",
        )


def run(cluster: LocalCluster, installation: Installation, receiver: TimedReceiver) -> None:
    admin = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    pool = concurrent.futures.ThreadPoolExecutor(SENDERS)
    list(pool.map(lambda s: declare(cluster, admin, receiver, s), range(SERVICES)))
    intake = Intake(installation)
    wait_for_routes(intake)
    print(f"{SERVICES} services declared and routed; posting alerts with {SENDERS} senders")

    sent: dict[tuple[int, int], float] = {}
    answered: dict[tuple[int, int], float] = {}  # the intake's answer to an alert's first post
    incident_of: dict[tuple[int, int], tuple[str, str]] = {}
    answers: Counter[str] = Counter()
    lock = threading.Lock()

    def fire(alert: tuple[int, int]) -> None:
        with lock:
            first = alert not in sent
            sent.setdefault(alert, time.time())
        status, answer = intake.post(payload(*alert, sent[alert], resolved=False))
        with lock:
            answers[f"firing {status} {answer.get('incidents', [{}])[0].get('outcome')}"] += 1
            if status == 200 and first:
                answered[alert] = time.time()
                name = answer["incidents"][0]["incident"]
                incident_of[alert] = (namespace_of(alert[0]), name)

    began = time.monotonic()
    firing = posts()
    list(pool.map(fire, firing))
    posted = time.monotonic() - began
    print(f"{len(firing)} firing posts in {posted:.1f}s ({len(firing) / posted:.0f}/s)")

    def paged() -> bool:
        return all(k in receiver.arrivals for k in incident_of.values())

    try:
        wait_for(paged, timeout=PAGE_TIMEOUT, interval=0.5, message="every incident paged")
    except AssertionError as error:
        print(f"not every incident was paged: {error}"[:300])

    def resolve(alert: tuple[int, int]) -> None:
        status, answer = intake.post(payload(*alert, sent[alert], resolved=True))
        with lock:
            answers[f"resolved {status} {answer.get('incidents', [{}])[0].get('outcome')}"] += 1

    list(pool.map(resolve, posts()))
    resolved = count_resolved(admin, set(incident_of.values()))
    split(receiver, sent, answered, incident_of)
    report(receiver, sent, incident_of, answers, resolved, installation)


def count_resolved(api: client.ApiClient, incidents: set[tuple[str, str]]) -> int:
    """Incidents the controller shows Resolved, polled until all are or a deadline passes."""

    def resolved() -> int:
        found = cast(
            dict[str, Any],
            client.CustomObjectsApi(api).list_cluster_custom_object(
                "changegate.io", "v1alpha1", "incidents"
            ),
        )
        listed: list[dict[str, Any]] = found["items"]
        return sum(
            1
            for i in listed
            if (i["metadata"]["namespace"], i["metadata"]["name"]) in incidents
            and i.get("status", {}).get("phase") == "Resolved"
        )

    with contextlib.suppress(AssertionError):
        wait_for(lambda: resolved() == len(incidents), timeout=300, interval=1.0)
    return resolved()


def p95_of(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))] if ordered else float("nan")


def split(
    receiver: TimedReceiver,
    sent: dict[tuple[int, int], float],
    answered: dict[tuple[int, int], float],
    incident_of: dict[tuple[int, int], tuple[str, str]],
) -> None:
    """Where the time goes: the intake persisting and answering, then the controller paging."""
    paged = {a: receiver.arrivals[i][0] for a, i in incident_of.items() if i in receiver.arrivals}
    intake = [answered[a] - sent[a] for a in paged if a in answered]
    controller = [paged[a] - answered[a] for a in paged if a in answered]
    print(
        f"p95 post-to-answer (intake persisted) {p95_of(intake):.2f}s;"
        f" p95 answer-to-page (controller) {p95_of(controller):.2f}s"
    )


def report(
    receiver: TimedReceiver,
    sent: dict[tuple[int, int], float],
    incident_of: dict[tuple[int, int], tuple[str, str]],
    answers: Counter[str],
    resolved: int,
    installation: Installation,
) -> None:
    latencies = sorted(
        receiver.arrivals[incident][0] - sent[alert]
        for alert, incident in incident_of.items()
        if incident in receiver.arrivals
    )
    lost = len(sent) - len(latencies)
    duplicates = sum(len(times) - 1 for times in receiver.arrivals.values())
    pid = installation.controller.process.pid  # type: ignore[union-attr]
    rss = rss_mib(pid)
    for answer, count in sorted(answers.items()):
        print(f"intake answers: {count:5d} {answer}")
    print(f"incidents opened: {len(set(incident_of.values()))}; resolved: {resolved}")
    if latencies:
        p50 = statistics.median(latencies)
        print(
            f"alert-to-page: p50 {p50:.2f}s, max {latencies[-1]:.2f}s over {len(latencies)} alerts"
        )
    p95 = p95_of(latencies)
    print(
        f"incidents: p95 {p95:.2f} s alert-to-page over {len(sent)} alerts, {lost} lost,"
        f" {duplicates} duplicate pages, controller RSS {rss:.0f} MiB"
    )


if __name__ == "__main__":
    main()
