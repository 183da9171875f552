"""An open major incident with freezeChanges: Normal and Standard rollouts of its services wait.

The webhook passes the freezes into decide_rollout as plain (service, incident)
pairs; rollbacks, restarts, break-glass and Emergency changes still pass.
"""

from __future__ import annotations

import pytest

from changegate.core.change.admission import (
    BREAK_GLASS,
    Reason,
    WorkloadRequest,
    decide_rollout,
)
from changegate.core.change.facts import ChangeFacts
from tests.unit.builders import (
    EMERGENCY_MEMBER,
    NEW_IMAGE,
    NOW,
    OLD_IMAGE,
    REGISTRY,
    approved_change,
    change_request,
    facts,
    policy,
    request,
    restarted,
    rollout,
    target,
    update,
    workload_body,
)

INCIDENT = "payments-prod/payments-api-high-error-rate-3f9a"
FROZEN = (("payments-api", INCIDENT),)
ELSEWHERE = (("checkout-web", "payments-prod/other"),)
NEWER_IMAGE = f"{REGISTRY}/payments-api:1.43.0"
IMAGE_UPDATE = update(images={"api": NEW_IMAGE})
ROLLBACK = update(workload_body(images={"api": NEW_IMAGE}), images={"api": OLD_IMAGE})
RESTART = request(workload_body(), restarted(workload_body()))
GLASS = update(user=EMERGENCY_MEMBER, images={"api": NEWER_IMAGE}, annotations={BREAK_GLASS: "x"})
EARLIER = facts(
    name="payments-api-1-41-0",
    phase="Completed",
    targets=[target(images={"api": OLD_IMAGE})],
    window=(-48, -46),
    rollouts=[rollout(images={"api": OLD_IMAGE})],
)


@pytest.mark.parametrize(
    ("req", "changes", "freezes", "expect"),
    [
        pytest.param(
            IMAGE_UPDATE, (facts(approved_change()),), FROZEN, (False, Reason.INCIDENT_FREEZE),
            id="normal-refused",
        ),
        pytest.param(
            IMAGE_UPDATE, (facts(change_request(type="Standard", phase="Approved")),), FROZEN,
            (False, Reason.INCIDENT_FREEZE), id="standard-refused",
        ),
        pytest.param(
            IMAGE_UPDATE, (facts(change_request(type="Emergency", requester="oncall-1")),), FROZEN,
            (True, Reason.APPROVED_CHANGE), id="emergency-passes",
        ),
        pytest.param(IMAGE_UPDATE, (), FROZEN, (False, Reason.INCIDENT_FREEZE), id="no-change"),
        pytest.param(ROLLBACK, (EARLIER,), FROZEN, (True, Reason.ROLLBACK), id="rollback-passes"),
        pytest.param(RESTART, (), FROZEN, (True, Reason.RESTART), id="restart-passes"),
        pytest.param(GLASS, (), FROZEN, (True, Reason.BREAK_GLASS), id="break-glass-passes"),
        pytest.param(
            IMAGE_UPDATE, (facts(approved_change()),), ELSEWHERE, (True, Reason.APPROVED_CHANGE),
            id="another-service-frozen",
        ),
        pytest.param(
            IMAGE_UPDATE, (facts(approved_change()),), (), (True, Reason.APPROVED_CHANGE),
            id="no-freeze",
        ),
    ],
)  # fmt: skip
def test_an_incident_freeze_refuses_normal_and_standard_rollouts(
    req: WorkloadRequest,
    changes: tuple[ChangeFacts, ...],
    freezes: tuple[tuple[str, str], ...],
    expect: tuple[bool, Reason],
) -> None:
    decision = decide_rollout(req, policy(), changes, NOW, freezes)
    assert (decision.allowed, decision.reason) == expect


def test_the_refusal_names_the_incident_and_the_way_out() -> None:
    decision = decide_rollout(IMAGE_UPDATE, policy(), (facts(approved_change()),), NOW, FROZEN)
    assert INCIDENT in decision.message
    assert decision.near_misses == (f"major incident {INCIDENT} freezes changes to payments-api",)
    assert decision.fix is not None
    assert "roll back" in decision.fix
