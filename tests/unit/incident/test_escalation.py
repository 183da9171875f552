"""Escalation: steps and delays, ack and resolve races, repeats, nobody found, snapshots, restarts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pytest

from changegate.api.v1alpha1.incident import (
    Acknowledgement,
    EscalationOutcome,
    Incident,
    IncidentEscalation,
    IncidentSpec,
    IncidentStatus,
    Resolution,
    ResolutionCode,
    Severity,
)
from changegate.api.v1alpha1.serviceoncall import (
    Escalation,
    EscalationStep,
    EscalationTarget,
    EscalationTargetType,
)
from changegate.core.incident.escalation import (
    NOBODY_ACTION,
    DuePage,
    EscalationFacts,
    EscalationPlan,
    EscalationState,
    Handled,
    escalation_key,
    facts_of,
    plan_escalation,
    record_outcomes,
    take_snapshot,
)
from tests.unit.incident.builders import T0

UID = "0b5e6f2c-uid"
SERVICE = "payments"
ON_CALL = EscalationTarget(type=EscalationTargetType.ON_CALL)
PRIMARY = EscalationTarget(type=EscalationTargetType.ROTATION, name="primary")
BOB = EscalationTarget(type=EscalationTargetType.USER, name="bob")
CAROL = EscalationTarget(type=EscalationTargetType.USER, name="carol")
MANAGER = EscalationTarget(type=EscalationTargetType.INCIDENT_MANAGER)
PAGED, NOBODY = EscalationOutcome.PAGED, EscalationOutcome.NOBODY


def sec(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def policy(*steps: tuple[int, list[EscalationTarget]], repeat: int = 0) -> Escalation:
    return Escalation(
        steps=[EscalationStep(delay_seconds=d, targets=targets) for d, targets in steps],
        repeat=repeat,
    )


# Due at 0, 300 and 900 seconds after the trigger: delays add up.
THREE = policy((0, [ON_CALL]), (300, [BOB]), (600, [MANAGER]))


def snapshot(of: Escalation | None = THREE) -> IncidentEscalation:
    return take_snapshot(None, SERVICE, of, T0)


def facts(
    escalation: IncidentEscalation,
    *,
    ack: float | None = None,
    resolved: float | None = None,
) -> EscalationFacts:
    return EscalationFacts(
        incident_uid=UID,
        service=escalation.service,
        policy=escalation.policy,
        triggered=T0,
        acknowledged=None if ack is None else sec(ack),
        resolved=None if resolved is None else sec(resolved),
        records=tuple(escalation.records),
    )


def record(
    escalation: IncidentEscalation,
    pages: Iterable[DuePage],
    at: float,
    outcome: EscalationOutcome = PAGED,
) -> IncidentEscalation:
    handled = [Handled(page, outcome) for page in pages]
    return record_outcomes(escalation, UID, handled, sec(at)).escalation


def plan(escalation: IncidentEscalation, at: float, **times: float | None) -> EscalationPlan:
    return plan_escalation(facts(escalation, **times), sec(at))


def owed(result: EscalationPlan) -> list[tuple[int, int, str]]:
    return [(p.cycle, p.step, p.target.name or p.target.type.value) for p in result.due]


def first_step_paged() -> IncidentEscalation:
    escalation = snapshot()
    return record(escalation, plan(escalation, 0).due, 0)


# -- steps and delays ----------------------------------------------------------------------


def test_the_first_step_is_due_at_the_trigger_and_the_next_when_its_delay_has_passed() -> None:
    escalation = snapshot()
    first = plan(escalation, 0)
    assert owed(first) == [(0, 0, "OnCall")]
    assert (first.due[0].service, first.due[0].due) == (SERVICE, T0)
    escalation = record(escalation, first.due, 0)
    waiting = plan(escalation, 299)
    assert (waiting.due, waiting.next_time, waiting.state) == (
        (),
        sec(300),
        EscalationState.ESCALATING,
    )
    assert owed(plan(escalation, 300)) == [(0, 1, "bob")]


def test_delays_are_cumulative_from_the_trigger() -> None:
    escalation = first_step_paged()
    escalation = record(escalation, plan(escalation, 300).due, 300)
    assert plan(escalation, 300).next_time == sec(900)
    assert owed(plan(escalation, 899)) == []
    assert owed(plan(escalation, 900)) == [(0, 2, "IncidentManager")]


def test_a_late_controller_pages_every_step_owed_with_the_time_each_fell_due() -> None:
    result = plan(snapshot(), 1000)
    assert owed(result) == [(0, 0, "OnCall"), (0, 1, "bob"), (0, 2, "IncidentManager")]
    assert [p.due for p in result.due] == [sec(0), sec(300), sec(900)]


def test_a_target_named_twice_in_a_step_is_paged_once() -> None:
    escalation = snapshot(policy((0, [ON_CALL, BOB, ON_CALL])))
    assert owed(plan(escalation, 0)) == [(0, 0, "OnCall"), (0, 0, "bob")]


def test_once_every_step_is_recorded_the_escalation_is_exhausted() -> None:
    escalation = snapshot()
    escalation = record(escalation, plan(escalation, 900).due, 900)
    assert plan(escalation, 5000) == EscalationPlan(EscalationState.EXHAUSTED, (), None)


# -- acknowledgement and resolution --------------------------------------------------------


@pytest.mark.parametrize(
    ("ack", "now", "expected", "state"),
    [
        (None, 300, [(0, 1, "bob")], EscalationState.ESCALATING),
        (200, 300, [], EscalationState.ACKNOWLEDGED),  # ack before the step
        (300, 300, [], EscalationState.ACKNOWLEDGED),  # ack at the step's instant: the ack wins
        (301, 300, [(0, 1, "bob")], EscalationState.ESCALATING),  # the step came first
        (301, 301, [], EscalationState.ACKNOWLEDGED),  # and nothing after the ack
        (100, 1000, [], EscalationState.ACKNOWLEDGED),  # owed before the ack, never sent: dropped
        (0, 0, [], EscalationState.ACKNOWLEDGED),  # acknowledged at the trigger
    ],
)
def test_the_first_acknowledgement_stops_every_later_step(
    ack: float | None, now: float, expected: list[tuple[int, int, str]], state: EscalationState
) -> None:
    result = plan(first_step_paged(), now, ack=ack)
    assert (owed(result), result.state) == (expected, state)


def test_the_scheduler_is_not_woken_for_a_step_after_a_known_ack() -> None:
    assert plan(first_step_paged(), 100, ack=300).next_time is None
    assert plan(first_step_paged(), 100, ack=301).next_time == sec(300)


@pytest.mark.parametrize(
    ("resolved", "ack", "now", "expected", "state"),
    [
        (100, None, 300, [], EscalationState.RESOLVED),
        (300, None, 300, [], EscalationState.RESOLVED),
        (301, None, 300, [(0, 1, "bob")], EscalationState.ESCALATING),
        (400, 200, 1000, [], EscalationState.RESOLVED),  # acknowledged, then resolved
        (50, None, 0, [(0, 0, "OnCall")], EscalationState.ESCALATING),  # not resolved yet at 0
    ],
)
def test_resolving_stops_everything(
    resolved: float,
    ack: float | None,
    now: float,
    expected: list[tuple[int, int, str]],
    state: EscalationState,
) -> None:
    escalation = snapshot() if now == 0 else first_step_paged()
    result = plan(escalation, now, resolved=resolved, ack=ack)
    assert (owed(result), result.state) == (expected, state)
    assert result.next_time is None or result.next_time < sec(resolved)


# -- repeats -------------------------------------------------------------------------------


def run_to_the_end(escalation: IncidentEscalation, until: float) -> list[tuple[float, int, int]]:
    """Page everything owed at each instant the plan names; (when, cycle, step) of each page."""
    paged: list[tuple[float, int, int]] = []
    now = 0.0
    while now <= until:
        result = plan(escalation, now)
        paged += [(now, p.cycle, p.step) for p in result.due]
        escalation = record(escalation, result.due, now)
        if result.next_time is None:
            break
        now = (result.next_time - T0).total_seconds()
    return paged


def test_the_whole_policy_repeats_its_times_continuing_the_chain() -> None:
    escalation = snapshot(policy((0, [ON_CALL]), (300, [BOB]), repeat=2))
    assert run_to_the_end(escalation, 10_000) == [
        (0, 0, 0),
        (300, 0, 1),
        (300, 1, 0),
        (600, 1, 1),
        (600, 2, 0),
        (900, 2, 1),
    ]


def test_a_first_step_delay_spaces_the_rounds() -> None:
    escalation = snapshot(policy((60, [ON_CALL]), (120, [BOB]), repeat=1))
    assert run_to_the_end(escalation, 10_000) == [(60, 0, 0), (180, 0, 1), (240, 1, 0), (360, 1, 1)]


def test_each_round_pages_with_its_own_key_and_counts_steps_across_rounds() -> None:
    escalation = snapshot(policy((0, [ON_CALL]), (300, [BOB]), repeat=1))
    due = plan(escalation, 600).due
    assert [(p.cycle, p.step, p.sequence) for p in due] == [
        (0, 0, 0),
        (0, 1, 1),
        (1, 0, 2),
        (1, 1, 3),
    ]
    assert len({p.key for p in due}) == 4


# -- nobody found --------------------------------------------------------------------------


def test_a_step_that_finds_nobody_moves_on_at_once_and_says_so() -> None:
    escalation = snapshot()
    recorded = record_outcomes(
        escalation, UID, [Handled(p, NOBODY) for p in plan(escalation, 10).due], sec(10)
    )
    (note,) = recorded.notes
    assert (note.action, note.time) == (NOBODY_ACTION, sec(10))
    assert "nobody to page (the on-call of payments)" in note.message
    assert "step 1 of round 0 is due at once" in note.message
    after = plan(recorded.escalation, 10)
    assert owed(after) == [(0, 1, "bob")]
    assert after.due[0].due == T0  # handed over when the empty step fell due
    escalation = record(recorded.escalation, after.due, 10)
    assert plan(escalation, 10).next_time == sec(600)  # the chain goes on from there


def test_a_step_with_someone_to_page_keeps_its_delay() -> None:
    escalation = snapshot(policy((0, [ON_CALL, PRIMARY]), (300, [BOB])))
    on_call, primary = plan(escalation, 0).due
    escalation = record(escalation, [on_call], 0, NOBODY)
    recorded = record_outcomes(escalation, UID, [Handled(primary, PAGED)], sec(0))
    assert recorded.notes == ()
    assert owed(plan(recorded.escalation, 0)) == []
    assert plan(recorded.escalation, 0).next_time == sec(300)


def test_a_step_half_handled_stays_owed_and_does_not_hand_over() -> None:
    escalation = snapshot(policy((0, [ON_CALL, PRIMARY]), (300, [BOB])))
    on_call, _ = plan(escalation, 0).due
    escalation = record(escalation, [on_call], 0, NOBODY)
    assert owed(plan(escalation, 0)) == [(0, 0, "primary")]


def test_the_last_step_finding_nobody_says_no_step_is_left() -> None:
    escalation = snapshot(policy((0, [CAROL])))
    recorded = record_outcomes(
        escalation, UID, [Handled(p, NOBODY) for p in plan(escalation, 0).due], sec(0)
    )
    assert "no step is left" in recorded.notes[0].message
    assert plan(recorded.escalation, 0).state is EscalationState.EXHAUSTED


def test_recording_nobody_twice_keeps_one_record_and_one_note() -> None:
    escalation = snapshot()
    handled = [Handled(p, NOBODY) for p in plan(escalation, 0).due]
    once = record_outcomes(escalation, UID, handled, sec(0))
    twice = record_outcomes(once.escalation, UID, handled, sec(5))
    assert twice.escalation == once.escalation
    assert twice.notes == ()


# -- the policy snapshot -------------------------------------------------------------------


def test_a_live_incident_follows_the_policy_it_triggered_with() -> None:
    taken = snapshot()
    edited = policy((0, [ON_CALL]), (60, [CAROL]))
    later = take_snapshot(taken, SERVICE, edited, sec(30))
    assert later is taken
    escalation = record(later, plan(later, 0).due, 0)
    assert owed(plan(escalation, 60)) == []
    assert owed(plan(escalation, 300)) == [(0, 1, "bob")]


def test_the_snapshot_is_a_copy_that_later_edits_of_the_service_do_not_reach() -> None:
    original = policy((0, [ON_CALL]), (300, [BOB]))
    taken = take_snapshot(None, SERVICE, original, sec(0))
    original.steps[1].targets[0] = CAROL
    assert taken.policy is not None
    assert taken.policy.steps[1].targets == [BOB]
    assert (taken.snapshot_time, taken.records) == (sec(0), [])


def test_without_an_escalation_policy_the_on_call_is_paged_once() -> None:
    escalation = snapshot(None)
    assert escalation.policy is None
    result = plan(escalation, 0)
    assert [(p.target, p.service, p.sequence) for p in result.due] == [(ON_CALL, SERVICE, 0)]
    escalation = record(escalation, result.due, 0)
    assert plan(escalation, 86_400) == EscalationPlan(EscalationState.EXHAUSTED, (), None)


# -- restarts and keys ---------------------------------------------------------------------


def test_a_page_not_recorded_before_a_crash_is_owed_again_with_the_same_key() -> None:
    escalation = first_step_paged()
    before = plan(escalation, 300)
    after_restart = plan(escalation, 420)
    assert owed(after_restart) == owed(before) == [(0, 1, "bob")]
    assert after_restart.due[0].key == before.due[0].key
    assert after_restart.due[0].due == sec(300)
    escalation = record(escalation, after_restart.due, 420)
    assert owed(plan(escalation, 420)) == []


def test_planning_twice_gives_the_same_answer() -> None:
    escalation = first_step_paged()
    assert plan(escalation, 450) == plan(escalation, 450)


def test_a_recorded_target_is_never_owed_again_whatever_its_outcome() -> None:
    escalation = snapshot(policy((60, [ON_CALL]), repeat=1))
    escalation = record(escalation, plan(escalation, 60).due, 60, NOBODY)
    escalation = record(escalation, plan(escalation, 60).due, 60)
    assert [(r.cycle, r.outcome) for r in escalation.records] == [(0, NOBODY), (1, PAGED)]
    assert plan(escalation, 1000) == EscalationPlan(EscalationState.EXHAUSTED, (), None)


def test_keys_are_stable_and_distinct_per_incident_round_step_and_target() -> None:
    key = escalation_key(UID, 0, 1, BOB)
    assert key == escalation_key(UID, 0, 1, BOB.model_copy())
    assert key.startswith("changegate-esc-")
    assert len(key) <= 255
    others = {
        escalation_key("other-uid", 0, 1, BOB),
        escalation_key(UID, 1, 1, BOB),
        escalation_key(UID, 0, 2, BOB),
        escalation_key(UID, 0, 1, CAROL),
        escalation_key(UID, 0, 1, PRIMARY.model_copy(update={"name": "bob"})),
    }
    assert key not in others
    assert len(others) == 5


# -- from an Incident ----------------------------------------------------------------------


def incident(escalation: IncidentEscalation | None, **spec: object) -> Incident:
    return Incident(
        metadata={"name": "payments-1", "uid": UID},
        spec=IncidentSpec(service=SERVICE, summary="errors", severity=Severity.HIGH, **spec),
        status=IncidentStatus(triggered_time=T0, escalation=escalation),
    )


def test_facts_of_an_incident_without_a_snapshot_are_none() -> None:
    assert facts_of(incident(None), T0) is None


def test_facts_of_an_incident_read_its_snapshot_and_times() -> None:
    escalation = first_step_paged()
    ack = Acknowledgement(user="dev-1", time=sec(200))
    found = facts_of(incident(escalation, acknowledgements=[ack]), sec(-5))
    assert found == facts(escalation, ack=200)


def test_an_acknowledgement_of_unknown_time_stops_everything() -> None:
    found = facts_of(incident(snapshot(), acknowledgements=[Acknowledgement(user="dev")]), T0)
    assert found is not None
    assert plan_escalation(found, sec(0)) == EscalationPlan(EscalationState.ACKNOWLEDGED, (), None)


def test_a_resolution_of_unknown_time_stops_everything() -> None:
    resolution = Resolution(code=ResolutionCode.FIXED, note="restarted")
    found = facts_of(incident(snapshot(), resolution=resolution), T0)
    assert found is not None
    assert plan_escalation(found, sec(0)).state is EscalationState.RESOLVED
