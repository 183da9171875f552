"""ServiceOnCall status.lastIncident's choice: the service's incident opened last, the name
breaking a tie; other services' incidents ignored; resolved ones count; none is None."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from changegate.api.v1alpha1.incident import Incident
from changegate.core.incident.latest import last_incident_ref, latest_incident

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def incident(
    name: str, minutes: float, service: str = "pay", namespace: str = "pay", resolved: bool = False
) -> Incident:
    spec: dict[str, Any] = {"service": service, "summary": "errors", "severity": "High"}
    if resolved:
        spec["resolution"] = {"code": "Fixed", "note": "done"}
    created = (T0 + dt.timedelta(minutes=minutes)).isoformat()
    return Incident.model_validate(
        {
            "metadata": {
                "name": name, "namespace": namespace, "uid": f"uid-{name}",
                "creationTimestamp": created,
            },
            "spec": spec,
        }
    )  # fmt: skip


@pytest.mark.parametrize(
    ("incidents", "want"),
    [
        ([], None),
        ([incident("other-1", 9, service="checkout")], None),
        ([incident("inc-a", 1), incident("inc-b", 5), incident("inc-c", 3)], "inc-b"),
        ([incident("inc-b", 5), incident("inc-a", 5)], "inc-b"),  # same second: the name
        ([incident("inc-old", 1), incident("inc-new", 2, resolved=True)], "inc-new"),
        ([incident("inc-1", 1), incident("other-9", 9, service="checkout")], "inc-1"),
    ],
    ids=["none", "another-service", "newest", "tie-by-name", "resolved-counts", "own-only"],
)
def test_the_latest_incident_of_the_service(incidents: list[Incident], want: str | None) -> None:
    found = latest_incident(incidents, "pay")
    assert (found.metadata.name if found else None) == want


def test_the_order_seen_never_changes_the_answer() -> None:
    incidents = [incident("inc-b", 5), incident("inc-a", 5), incident("inc-0", 1)]
    for order in (incidents, incidents[::-1]):
        found = latest_incident(order, "pay")
        assert found is not None
        assert found.metadata.name == "inc-b"


def test_a_deleted_latest_falls_back_to_the_next_then_to_none() -> None:
    first, second = incident("inc-1", 1), incident("inc-2", 2)
    assert latest_incident([first, second], "pay") is second
    assert latest_incident([first], "pay") is first
    assert latest_incident([], "pay") is None


def test_the_reference_names_namespace_and_uid() -> None:
    ref = last_incident_ref([incident("inc-1", 1, namespace="team-pay")], "pay")
    assert ref is not None
    assert ref.to_json() == {"name": "inc-1", "namespace": "team-pay", "uid": "uid-inc-1"}
    assert last_incident_ref([], "pay") is None
