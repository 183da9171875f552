"""Escalation properties: no page at or after the ack, each target once, crashes lose nothing.

A simulated controller ticks at given instants; at each it plans, pages (a
channel that logs every key it receives), records, and plans again until
nothing is owed, as a level-based reconcile does after its own status write.
A crash pages some of what is owed and records only part of that.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from changegate.api.v1alpha1.incident import EscalationOutcome, IncidentEscalation
from changegate.api.v1alpha1.serviceoncall import (
    Escalation,
    EscalationStep,
    EscalationTarget,
    EscalationTargetType,
)
from changegate.core.incident.escalation import (
    DuePage,
    EscalationFacts,
    Handled,
    escalation_key,
    plan_escalation,
    record_outcomes,
    take_snapshot,
)
from tests.unit.incident.builders import T0

UID = "uid-7"
POOL = (
    EscalationTarget(type=EscalationTargetType.ON_CALL),
    EscalationTarget(type=EscalationTargetType.ROTATION, name="primary"),
    EscalationTarget(type=EscalationTargetType.USER, name="bob"),
    EscalationTarget(type=EscalationTargetType.USER, name="carol"),
    EscalationTarget(type=EscalationTargetType.INCIDENT_MANAGER),
)
# Delays and instants on one grid, so acks land exactly on due instants often.
GRID = 60
LOOPS = 500


def sec(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def name_of(target: EscalationTarget) -> str:
    return f"{target.type.value}/{target.name or ''}"


def step(delay: int, targets: list[EscalationTarget]) -> EscalationStep:
    return EscalationStep(delay_seconds=delay, targets=targets)


def escalation(steps: list[EscalationStep], repeat: int) -> Escalation:
    return Escalation(steps=steps, repeat=repeat)


steps = st.builds(
    step,
    st.sampled_from([0, GRID, 2 * GRID, 5 * GRID]),
    st.lists(st.sampled_from(POOL), min_size=1, max_size=3),
)
policies = st.builds(escalation, st.lists(steps, min_size=1, max_size=4), st.integers(0, 2))
instants = st.integers(0, 40).map(lambda n: n * GRID // 2)
# Crashes: at the n-th planning of the run, page the first `sent` owed and record `kept` of them.
crashes = st.dictionaries(
    st.integers(0, 30), st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=6
)


@dataclass(frozen=True)
class Scenario:
    policy: Escalation | None
    nobody: frozenset[str]
    ack: int | None
    resolved: int | None
    ticks: tuple[int, ...]

    @property
    def stop(self) -> int | None:
        return min((t for t in (self.ack, self.resolved) if t is not None), default=None)


scenarios = st.builds(
    Scenario,
    policy=st.one_of(st.none(), policies),
    nobody=st.frozensets(st.sampled_from([name_of(t) for t in POOL])),
    ack=st.none() | instants,
    resolved=st.none() | instants,
    ticks=st.lists(instants, min_size=1, max_size=12, unique=True).map(lambda t: tuple(sorted(t))),
)


@dataclass
class Run:
    """What the simulated controller did: the channel's log and the status it left."""

    escalation: IncidentEscalation
    sent: list[tuple[str, int]] = field(default_factory=list)
    plans: int = 0


def facts(scenario: Scenario, escalation: IncidentEscalation) -> EscalationFacts:
    return EscalationFacts(
        incident_uid=UID,
        service="payments",
        policy=escalation.policy,
        triggered=T0,
        acknowledged=None if scenario.ack is None else sec(scenario.ack),
        resolved=None if scenario.resolved is None else sec(scenario.resolved),
        records=tuple(escalation.records),
    )


def outcome(scenario: Scenario, page: DuePage) -> EscalationOutcome:
    found_nobody = name_of(page.target) in scenario.nobody
    return EscalationOutcome.NOBODY if found_nobody else EscalationOutcome.PAGED


def handle(
    run: Run, scenario: Scenario, due: tuple[DuePage, ...], tick: int, crash: tuple[int, int] | None
) -> None:
    """Page what is owed, then record it; a crash pages a prefix and records less."""
    sent = due if crash is None else due[: crash[0]]
    kept = sent if crash is None else sent[: crash[1]]
    run.sent += [(page.key, tick) for page in sent]
    handled = [Handled(page, outcome(scenario, page)) for page in kept]
    run.escalation = record_outcomes(run.escalation, UID, handled, sec(tick)).escalation


def settle(run: Run, scenario: Scenario, tick: int, crash_at: dict[int, tuple[int, int]]) -> None:
    """Plan and handle at `tick` until nothing is owed; check each plan on the way."""
    for _ in range(LOOPS):
        plan = plan_escalation(facts(scenario, run.escalation), sec(tick))
        assert plan == plan_escalation(facts(scenario, run.escalation), sec(tick))
        recorded = {r.key for r in run.escalation.records}
        assert not recorded & {p.key for p in plan.due}, "a recorded target owed again"
        assert len({p.key for p in plan.due}) == len(plan.due)
        assert all(p.due <= sec(tick) for p in plan.due)
        if not plan.due:
            return
        handle(run, scenario, plan.due, tick, crash_at.get(run.plans))
        run.plans += 1
    raise AssertionError("the escalation never settled")


def simulate(scenario: Scenario, crash_at: dict[int, tuple[int, int]]) -> Run:
    run = Run(take_snapshot(None, "payments", scenario.policy, T0))
    for tick in scenario.ticks:
        settle(run, scenario, tick, crash_at)
    return run


def expected_keys(scenario: Scenario) -> set[str]:
    """An oracle: the keys a crash-free controller ticking at `ticks` pages."""
    policy = scenario.policy or Escalation(
        steps=[EscalationStep(delay_seconds=0, targets=[POOL[0]])]
    )
    keys: set[str] = set()
    at, hand_over = 0, False
    for cycle in range(policy.repeat + 1):
        for index, step in enumerate(policy.steps):
            at += 0 if hand_over else step.delay_seconds
            targets = {name_of(t): t for t in step.targets}
            tick = next((t for t in scenario.ticks if t >= at), None)
            reached = tick is not None and (scenario.stop is None or tick < scenario.stop)
            if reached:
                keys |= {escalation_key(UID, cycle, index, t) for t in targets.values()}
            hand_over = reached and set(targets) <= scenario.nobody
    return keys


@settings(max_examples=150, deadline=None)
@given(scenarios, crashes)
def test_no_page_is_sent_at_or_after_the_first_ack_or_the_resolution(
    scenario: Scenario, crash_at: dict[int, tuple[int, int]]
) -> None:
    run = simulate(scenario, crash_at)
    if scenario.stop is not None:
        assert all(tick < scenario.stop for _, tick in run.sent)


@settings(max_examples=150, deadline=None)
@given(scenarios)
def test_each_round_step_and_target_is_paged_and_recorded_at_most_once(scenario: Scenario) -> None:
    run = simulate(scenario, {})
    keys = [key for key, _ in run.sent]
    assert len(keys) == len(set(keys))
    records = [(r.cycle, r.step, name_of(r.target)) for r in run.escalation.records]
    assert len(records) == len(set(records))
    assert set(keys) == {r.key for r in run.escalation.records}


@settings(max_examples=150, deadline=None)
@given(scenarios)
def test_a_crash_free_controller_pages_exactly_what_the_policy_owes(scenario: Scenario) -> None:
    assert {key for key, _ in simulate(scenario, {}).sent} == expected_keys(scenario)


@settings(max_examples=150, deadline=None)
@given(scenarios, crashes)
def test_crashing_and_calling_again_never_loses_or_duplicates_a_page(
    scenario: Scenario, crash_at: dict[int, tuple[int, int]]
) -> None:
    calm = simulate(scenario, {})
    crashed = simulate(scenario, crash_at)
    assert {key for key, _ in crashed.sent} == {key for key, _ in calm.sent}
    as_set = {(r.key, r.outcome, r.time) for r in crashed.escalation.records}
    assert as_set == {(r.key, r.outcome, r.time) for r in calm.escalation.records}
    assert len(crashed.escalation.records) == len(as_set)
