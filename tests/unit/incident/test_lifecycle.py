"""The Incident lifecycle: phase, conditions, times, timeline; and suspect changes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from changegate.api.v1alpha1.common import ConditionStatus, find_condition
from changegate.api.v1alpha1.deploymentrecord import DeploymentRecord
from changegate.api.v1alpha1.incident import (
    Acknowledgement,
    AlertState,
    Incident,
    IncidentAlert,
    IncidentOrigin,
    IncidentPhase,
    IncidentSpec,
    IncidentStatus,
    Resolution,
    ResolutionCode,
    Severity,
    SourceAlert,
)
from changegate.core.incident.lifecycle import TIMELINE_LIMIT, reconcile, with_timeline
from changegate.core.incident.suspects import (
    DeploymentFact,
    fact_of,
    suspect_changes,
    suspect_status,
)
from tests.unit.incident.builders import at

CREATED = at(2)
ACK = Acknowledgement(user="dev-1", time=at(7), comment="looking")
LATER_ACK = Acknowledgement(user="dev-2", time=at(9))
FIXED = Resolution(code=ResolutionCode.FIXED, note="rolled back", resolved_by="dev-1", time=at(32))
AUTO = Resolution(
    code=ResolutionCode.AUTO_RESOLVED, note="alerts resolved", resolved_by="changegate", time=at(40)
)


def incident(
    *,
    acks: tuple[Acknowledgement, ...] = (),
    resolution: Resolution | None = None,
    alert_start: float | None = 0,
    **status: Any,
) -> Incident:
    alerts = (
        []
        if alert_start is None
        else [IncidentAlert(fingerprint="a1", state=AlertState.FIRING, start_time=at(alert_start))]
    )
    return Incident(
        metadata={"name": "payments-1", "generation": 3},
        spec=IncidentSpec(
            service="payments", summary="errors", severity=Severity.HIGH,
            origin=IncidentOrigin.ALERT if alerts else IncidentOrigin.MANUAL,
            alert=SourceAlert(fingerprint="a1", name="HighErrorRate") if alerts else None,
            acknowledgements=list(acks), resolution=resolution,
        ),
        status=IncidentStatus(alerts=alerts, **status),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("case", "phase", "tta", "ttr", "acked_by"),
    [
        (incident(), IncidentPhase.TRIGGERED, None, None, None),
        (incident(acks=(ACK,)), IncidentPhase.ACKNOWLEDGED, 300, None, "dev-1"),
        (incident(acks=(ACK, LATER_ACK)), IncidentPhase.ACKNOWLEDGED, 300, None, "dev-1"),
        (incident(acks=(ACK,), resolution=FIXED), IncidentPhase.RESOLVED, 300, 32 * 60, "dev-1"),
        (incident(resolution=AUTO), IncidentPhase.RESOLVED, None, 40 * 60, None),
        (incident(resolution=FIXED, alert_start=None), IncidentPhase.RESOLVED, None, 30 * 60, None),
        (incident(resolution=FIXED, alert_start=-3), IncidentPhase.RESOLVED, None, 35 * 60, None),
    ],
    ids=["triggered", "acknowledged", "first-ack-counts", "fixed", "never-acknowledged", "manual-from-creation", "from-alert-start"],
)  # fmt: skip
def test_phase_and_times(
    case: Incident, phase: IncidentPhase, tta: int | None, ttr: int | None, acked_by: str | None
) -> None:
    status = reconcile(case, CREATED, at(50))
    assert status.phase is phase
    assert (status.time_to_acknowledge_seconds, status.time_to_resolve_seconds) == (tta, ttr)
    assert status.acknowledged_by == acked_by
    assert status.triggered_time == CREATED
    assert status.observed_generation == 3


def test_conditions_follow_the_phase() -> None:
    status = reconcile(incident(acks=(ACK,), resolution=AUTO), CREATED, at(50))
    acked, resolved = (
        find_condition(status.conditions, "Acknowledged"),
        find_condition(status.conditions, "Resolved"),
    )
    assert acked is not None
    assert acked.status is ConditionStatus.TRUE
    assert resolved is not None
    assert (resolved.status, resolved.reason) == (ConditionStatus.TRUE, "AutoResolved")


def test_reconciling_twice_equals_once_and_transitions_are_written_once() -> None:
    case = incident()
    first = reconcile(case, CREATED, at(3))
    assert first.timeline == []
    acked = case.model_copy(
        update={"status": first, "spec": case.spec.model_copy(update={"acknowledgements": [ACK]})}
    )
    second = reconcile(acked, CREATED, at(8))
    assert [(e.action, e.actor) for e in second.timeline] == [("Acknowledged", "dev-1")]
    again = reconcile(acked.model_copy(update={"status": second}), CREATED, at(20))
    assert again == second


def test_a_resolution_without_a_stamped_time_is_timed_when_first_seen() -> None:
    unstamped = Resolution(code=ResolutionCode.FIXED, note="n")
    first = reconcile(incident(resolution=unstamped), CREATED, at(10))
    assert first.resolved_time == at(10)
    later = incident(resolution=unstamped, resolved_time=first.resolved_time)
    assert reconcile(later, CREATED, at(99)).resolved_time == at(10)


def test_the_timeline_keeps_the_newest_entries() -> None:
    status = reconcile(incident(resolution=FIXED), CREATED, at(50))
    grown = with_timeline(status.timeline * TIMELINE_LIMIT, status.timeline)
    assert len(grown) == TIMELINE_LIMIT


ALERT_START = at(0)
FACTS = [
    DeploymentFact("payments", "payments-api-41", ALERT_START - dt.timedelta(hours=25)),
    DeploymentFact("payments", "payments-api-42", ALERT_START - dt.timedelta(hours=23)),
    DeploymentFact("payments", "payments-api-43", ALERT_START - dt.timedelta(minutes=10)),
    DeploymentFact("payments", "payments-api-44", ALERT_START + dt.timedelta(minutes=1)),
    DeploymentFact("checkout", "checkout-9", ALERT_START - dt.timedelta(minutes=5)),
    DeploymentFact("payments", "payments-api-edge", ALERT_START - dt.timedelta(hours=24)),
]


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("payments", [("payments-api-43", 600), ("payments-api-42", 23 * 3600), ("payments-api-edge", 24 * 3600)]),
        ("checkout", [("checkout-9", 300)]),
        ("search", []),
    ],
)  # fmt: skip
def test_suspects_finished_in_the_day_before_the_alert_newest_first(
    service: str, expected: list[tuple[str, int]]
) -> None:
    found = suspect_changes(service, FACTS, ALERT_START)
    assert [(s.name, s.seconds_before) for s in found] == expected


def test_suspects_are_bounded_and_become_status_entries() -> None:
    many = [
        DeploymentFact("payments", f"r-{i:02d}", ALERT_START - dt.timedelta(minutes=i))
        for i in range(30)
    ]
    found = suspect_changes("payments", many, ALERT_START)
    assert [s.name for s in found][:3] == ["r-00", "r-01", "r-02"]
    assert len(suspect_status(found)) == 16


def test_a_deployment_record_becomes_a_fact() -> None:
    record = DeploymentRecord.model_validate(
        {
            "metadata": {"name": "payments-api-43"},
            "spec": {
                "service": "payments", "environment": "production", "namespace": "payments-prod",
                "production": True, "workload": {"kind": "Deployment", "name": "payments-api"},
                "revision": 43, "images": [{"container": "api", "image": "registry.example/payments:1.2"}],
                "admission": "Restart", "startTime": at(-11).isoformat(), "finishTime": at(-10).isoformat(),
                "result": "Succeeded",
            },
        }
    )  # fmt: skip
    assert fact_of(record) == DeploymentFact("payments", "payments-api-43", at(-10))
