"""ServiceOnCall status.dora and the DORA gauges, from indexes shaped like Kopf's.

A hand-worked service: three production deployments in the last 30 days (one
failed rollout, one confirmed as an incident's cause), one older, one in
staging; the figures, the status patch, the gauges, and when they fall due.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from prometheus_client import REGISTRY

from changegate.api.v1alpha1.incident import Incident
from changegate.api.v1alpha1.serviceoncall import DoraMetrics, ServiceOnCall
from changegate.core.report.evidence import Record
from changegate.handlers.controller import dora
from changegate.handlers.controller.indexes import (
    Indexes,
    RecordFact,
    production_records_by_service,
)
from changegate.handlers.controller.state import ControllerState
from changegate.settings import Role, Settings
from tests.unit.builders import NOW, at, iso, service_on_call
from tests.unit.controller.test_glue import indexes as empty_but

SERVICE = "dora-pay"
SOC = service_on_call(service=SERVICE, namespace="dora-pay", production=("dora-pay-prod",))


def record(name: str, finished: float, result: str = "Succeeded", **spec: Any) -> Record:
    return Record.model_validate(
        {
            "metadata": {"name": name, "creationTimestamp": iso(at(finished))},
            "spec": {
                "service": SERVICE, "environment": "production", "namespace": "dora-pay-prod",
                "production": True, "workload": {"kind": "Deployment", "name": "api"},
                "admission": "Change", "startTime": iso(at(finished - 0.1)),
                "finishTime": iso(at(finished)), "result": result, **spec,
            },
        }
    )  # fmt: skip


RECORDS = [
    record("r1", -48, leadTimeSeconds=3600),
    record("r2", -24, "Failed", leadTimeSeconds=7200),
    record("r3", -23, leadTimeSeconds=1800),  # recovers r2 after 3600 s
    record("r0", -40 * 24, leadTimeSeconds=60),  # before the 30 days
]
CAUSE = Incident.model_validate(
    {
        "metadata": {"name": "inc-1", "namespace": "dora-pay", "creationTimestamp": iso(at(-22))},
        "spec": {
            "service": SERVICE, "summary": "errors", "severity": "High", "causedBy": "r3",
            "causeConfirmedTime": iso(at(-21)),
            "resolution": {"code": "Fixed", "note": "rolled forward", "time": iso(at(-20))},
        },
        "status": {"triggeredTime": iso(at(-22)), "resolvedTime": iso(at(-20))},
    }
)  # fmt: skip


def indexes(records: list[Record], incidents: list[Incident] = ()) -> Indexes:  # type: ignore[assignment]
    return empty_but(
        **{
            "service_on_calls": {("dora-pay", SOC.metadata.name): [SOC]},
            "production_records_by_service": (
                {SERVICE: [RecordFact.of(r) for r in records]} if records else {}
            ),
            "incidents_by_name": {("dora-pay", i.metadata.name): [i] for i in incidents},
        }
    )


def test_the_status_shows_the_hand_worked_figures_of_the_last_30_days() -> None:
    figures = dora.service_figures(SERVICE, indexes(RECORDS, [CAUSE]), NOW)
    status = dora.dora_status(figures, NOW)
    assert status.model_dump(exclude_none=True) == {
        "period_seconds": 30 * 86400,
        "horizon_seconds": 86400,
        "computed_time": NOW,
        "deployments": 3,
        "successful_deployments": 2,
        "deployments_per_week": 0.47,  # 2 successful in 30 days
        "deployment_frequency": "Monthly",
        "failed_deployments": 2,  # r2's rollout failed, r3 caused inc-1
        "change_fail_percent": 66.7,
        "median_lead_time_seconds": 2700,  # of the successful: 3600 and 1800
        "p90_lead_time_seconds": 3420,
        "median_recovery_time_seconds": 7200,  # 3600 (r2 to r3) and 10800 (r3 to inc-1 resolved)
        "p90_recovery_time_seconds": 10080,
        "unrecovered_deployments": 0,
        "rework_deployments": 0,
        "rework_percent": 0.0,
    }


def test_a_service_without_deployments_has_zeros_and_no_rates() -> None:
    status = dora.dora_status(dora.service_figures(SERVICE, indexes([]), NOW), NOW)
    assert (status.deployments, status.deployment_frequency) == (0, "None")
    assert status.change_fail_percent is None
    assert status.median_lead_time_seconds is None


class Kube:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, str, dict[str, Any]]] = []

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.patches.append((plural, namespace, name, status))


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": SERVICE, **labels})


def test_a_refresh_writes_status_dora_and_the_gauges_then_forget_drops_them() -> None:
    kube = Kube()
    state = ControllerState(Settings(role=Role.CONTROLLER), kube, clock=lambda: NOW)  # type: ignore[arg-type]
    dora.refresh_dora(state, indexes(RECORDS, [CAUSE]), "dora-pay", SOC.metadata.name or "", NOW)
    [(plural, namespace, _, patch)] = kube.patches
    assert (plural, namespace) == ("serviceoncalls", "dora-pay")
    assert patch["dora"]["deployments"] == 3
    assert patch["dora"]["computedTime"] == "2026-11-17T10:00:00Z"
    assert gauge("changegate_dora_deployments") == 3
    assert gauge("changegate_dora_change_fail_rate") == pytest.approx(2 / 3)
    assert gauge("changegate_dora_lead_time_seconds", quantile="0.9") == 3420
    assert gauge("changegate_dora_recovery_time_seconds", quantile="0.5") == 7200
    dora.forget(SERVICE)
    assert gauge("changegate_dora_deployments") is None
    assert gauge("changegate_dora_lead_time_seconds", quantile="0.5") is None


def with_dora(computed: dt.datetime) -> ServiceOnCall:
    metrics = DoraMetrics(period_seconds=1, computed_time=computed)
    return SOC.model_copy(update={"status": SOC.status.model_copy(update={"dora": metrics})})


@pytest.mark.parametrize(
    ("soc", "exported", "newest", "due"),
    [
        (SOC, True, None, dora.NOW),  # never computed
        (with_dora(at(-0.5)), False, None, dora.NOW),  # a restarted process exports at once
        (with_dora(at(-0.5)), True, at(-0.2), dora.NOW),  # a record written since
        (with_dora(at(-0.5)), True, at(-0.5), dora.NOW),  # ... in the same second
        (with_dora(at(-0.5)), True, at(-1), at(0.5)),  # else an hour after
        (with_dora(at(-0.5)), True, None, at(0.5)),
    ],
)
def test_when_the_figures_fall_due(
    soc: ServiceOnCall, exported: bool, newest: dt.datetime | None, due: dt.datetime
) -> None:
    dora.exported.discard(SERVICE)
    if exported:
        dora.exported.add(SERVICE)
    try:
        assert dora.dora_due(soc, newest) == due
    finally:
        dora.exported.discard(SERVICE)


def test_the_newest_evidence_is_a_record_written_or_a_cause_confirmed() -> None:
    def newest(found: Indexes) -> object:
        return dora.newest_evidence(SERVICE, found, dora.confirmed_causes(found))

    assert newest(indexes(RECORDS)) == at(-23)
    assert newest(indexes(RECORDS, [CAUSE])) == at(-21)
    assert newest(indexes([])) is None
    assert dora.confirmed_causes(indexes(RECORDS, [CAUSE])) == {SERVICE: at(-21)}


def test_a_fact_keeps_every_field_the_figures_read() -> None:
    full = record(
        "r9", -1, "Failed", admission="Rollback", changeType="Emergency",
        changeRequest={"name": "fix", "namespace": "dora-pay-prod"},
        source={"commit": "abc", "commitTime": iso(at(-3))}, leadTimeSeconds=7200,
        images=[{"container": "api", "image": "registry.example.com/api:1"}], deployer="dev-1",
    )  # fmt: skip
    back = RecordFact.of(full).record()
    assert back.metadata == full.metadata
    assert back.spec.model_dump(exclude={"images", "deployer", "source"}) == full.spec.model_dump(
        exclude={"images", "deployer", "source"}
    )
    assert back.spec.source is not None
    assert back.spec.source.commit_time == at(-3)


def test_the_index_keeps_production_records_only() -> None:
    body = {
        "metadata": {"name": "r1"},
        "spec": RECORDS[0].spec.model_dump(mode="json", by_alias=True),
    }
    index: Any = production_records_by_service  # Kopf's decorated function, called as Kopf does
    fact = index(body)[SERVICE]
    assert (fact.name, fact.finish, fact.lead_time_seconds) == ("r1", at(-48), 3600)
    body["spec"]["production"] = False
    assert index(body) == {}
