"""Builders of slim evidence for the report tables: hand-worked timelines read easily."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from changegate.core.report.evidence import Change, Incident, Period, Record

T0 = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday
WEEK = Period(T0, T0 + timedelta(days=7))


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def record(
    name: str,
    finish: float,
    *,
    service: str = "payments-api",
    namespace: str = "payments-prod",
    workload: str = "api",
    admission: str = "Change",
    result: str = "Succeeded",
    change_type: str | None = "Normal",
    lead_hours: float | None = None,
    production: bool = True,
    environment: str = "production",
    change: str | None = None,
    start: float | None = None,
) -> Record:
    spec: dict[str, Any] = {
        "service": service,
        "environment": environment,
        "namespace": namespace,
        "production": production,
        "workload": {"kind": "Deployment", "name": workload},
        "images": [{"container": workload, "image": f"registry.example.com/{workload}:{name}"}],
        "admission": admission,
        "changeType": change_type,
        "startTime": at(finish if start is None else start).isoformat(),
        "finishTime": at(finish).isoformat(),
        "result": result,
        "deployer": "product-dev-1",
    }
    if change is not None:
        spec["changeRequest"] = {"name": change, "namespace": namespace}
    if lead_hours is not None:
        spec["source"] = {
            "repository": "https://git.example.com/payments/api",
            "commit": "abcdef1",
            "commitTime": at(finish - lead_hours).isoformat(),
        }
    return Record.model_validate({"metadata": {"name": name}, "spec": spec})


def incident(
    name: str,
    triggered: float,
    resolved: float | None = None,
    *,
    caused_by: str | None = None,
    duplicate: bool = False,
    service: str = "payments-api",
) -> Incident:
    spec: dict[str, Any] = {"service": service, "causedBy": caused_by}
    status: dict[str, Any] = {"triggeredTime": at(triggered).isoformat()}
    if resolved is not None:
        status["resolvedTime"] = at(resolved).isoformat()
        spec["resolution"] = {"code": "Duplicate" if duplicate else "Fixed"}
    return Incident.model_validate(
        {"metadata": {"name": name, "namespace": "payments-prod"}, "spec": spec, "status": status}
    )


def change(name: str, created: float, *, type_: str = "Normal", **spec: Any) -> Change:
    return Change.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": "payments-prod",
                "creationTimestamp": at(created).isoformat(),
            },
            "spec": {"service": "payments-api", "type": type_, "summary": name, **spec},
        }
    )
