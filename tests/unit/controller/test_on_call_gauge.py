"""The on-call gauge behind the nobody-on-call alert: set wherever on-call status is refreshed.

`changegate_service_on_call{service}` is 1 while someone is on call, 0 while
nobody is (the chart's ChangegateNobodyOnCall alert), and gone once the
ServiceOnCall is deleted.
"""

from __future__ import annotations

from typing import cast

import kopf
from prometheus_client import REGISTRY

from changegate.api.v1alpha1 import ServiceOnCall
from changegate.api.v1alpha1.serviceoncall import Rotation
from changegate.handlers.controller.serviceoncalls import forget_on_call, on_call_patch
from tests.unit.builders import service_on_call
from tests.unit.oncall.schedules import on_call, rotation, utc

T0 = utc("2025-03-04T12:00")


def gauge(service: str) -> float | None:
    return REGISTRY.get_sample_value("changegate_service_on_call", {"service": service})


def declared(service: str, *rotations: Rotation) -> ServiceOnCall:
    found = service_on_call(service=service, namespace=f"{service}-ns", production=(service,))
    spec = found.spec.model_copy(update={"on_call": on_call(*rotations)})
    return found.model_copy(update={"spec": spec})


def test_someone_on_call_is_one_and_nobody_is_zero() -> None:
    on_call_patch(declared("gauge-staffed", rotation(participants=("alice",))), T0)
    on_call_patch(declared("gauge-empty"), T0)
    assert gauge("gauge-staffed") == 1
    assert gauge("gauge-empty") == 0


def test_a_deleted_service_leaves_the_gauge() -> None:
    on_call_patch(declared("gauge-gone"), T0)
    assert gauge("gauge-gone") == 0
    body = cast(kopf.Body, {"spec": {"service": {"name": "gauge-gone"}}})
    forget_on_call(body)
    forget_on_call(body)  # twice: already gone is fine
    assert gauge("gauge-gone") is None
