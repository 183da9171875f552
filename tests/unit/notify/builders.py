"""Incidents, pages and recording sleeps for the notification tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from changegate.api.v1alpha1.incident import Incident
from changegate.core.incident.notification import page_for
from changegate.core.ports import Page, PageAction

T0 = dt.datetime(2025, 3, 30, 1, 30, tzinfo=dt.UTC)
UID = "5f0c7d4e-3d1b-4f43-9a43-0d1f6a3e2b11"
# Secret values the tests look for where they must never appear.
HOOK_TOKEN = "T000/B000/s3cr3tHookToken"
SIGNING_KEY = "sign-me-with-this-key-9f8e7d"


def incident(**spec: Any) -> Incident:
    """An Incident of payments as the API server would return it, with links in status."""
    return Incident.model_validate(
        {
            "metadata": {"name": "payments-5xx", "namespace": "payments-prod", "uid": UID},
            "spec": {
                "service": "payments",
                "summary": "Error rate above 5% on payments-api",
                "severity": "Critical",
                **spec,
            },
            "status": {
                "dashboards": [
                    {"name": "Golden signals", "url": "https://grafana.example.com/d/payments"}
                ],
                "runbooks": [{"name": "Runbook", "url": "https://wiki.example.com/payments"}],
            },
        }
    )


def page(
    *,
    step: int = 0,
    user: str | None = "alice",
    on_call: str | None = "alice",
    action: PageAction = PageAction.TRIGGER,
    **spec: Any,
) -> Page:
    return page_for(incident(**spec), action=action, step=step, user=user, on_call=on_call, now=T0)


class Sleeps:
    """An injected sleep that records the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def clock() -> dt.datetime:
    return T0


def no_jitter(delay: float) -> float:
    return delay
