"""The incident and on-call glue where it has logic: targets made people, batches, status, passes.

No API server: indexes are plain dicts shaped like Kopf's; pages are built but
not sent (the channels have their own tests), except through a fake pager.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from types import SimpleNamespace
from typing import Any

from changegate.api.v1alpha1 import ServiceOnCall
from changegate.api.v1alpha1.common import ConditionStatus
from changegate.api.v1alpha1.incident import (
    Acknowledgement,
    EscalationOutcome,
    Incident,
    PageChannel,
    PageResult,
)
from changegate.api.v1alpha1.serviceoncall import Escalation, OnCall
from changegate.core.ports import PageOutcome
from changegate.handlers.controller.incidents import (
    MAJOR_PAGED,
    REASSIGNED,
    IncidentWork,
    due_of,
    next_batch,
    settled,
    with_outcomes,
    with_status,
)
from changegate.handlers.controller.indexes import Indexes
from changegate.handlers.controller.paging import Directory, Pager
from changegate.handlers.controller.serviceoncalls import on_call_due, on_call_patch
from tests.unit.builders import service_on_call
from tests.unit.oncall.schedules import on_call, rotation, utc

T0 = utc("2025-03-04T12:00")  # a Tuesday; the default rotation hands over daily at 09:00


def soc(service: str, schedule: OnCall, escalation: dict[str, Any] | None = None) -> ServiceOnCall:
    found = service_on_call(service=service, namespace=f"{service}-ns", production=(service,))
    spec = found.spec.model_copy(update={"on_call": schedule})
    if escalation is not None:
        spec.on_call = schedule.model_copy(
            update={"escalation": Escalation.model_validate(escalation)}
        )
    return found.model_copy(update={"spec": spec})


def indexes(*socs: ServiceOnCall, records: dict[str, Any] | None = None) -> Indexes:
    by_service = {s.spec.service.name: [s] for s in socs}
    by_name = {(s.metadata.namespace, s.metadata.name): [s] for s in socs}
    return Indexes.of(
        {
            "service_on_calls_by_service": by_service,
            "service_on_calls": by_name,
            "deployments_by_service": records or {},
        }
        | {
            name: {}
            for name in (
                "environments_by_namespace", "policies_by_service", "validity_by_service",
                "changes_by_name", "standard_changes_by_template", "expiry_by_change",
                "templates_by_name", "records_by_name", "running_deployments",
                "running_statefulsets", "running_daemonsets",
            )
        }
    )  # fmt: skip


TWO_STEPS = {
    "steps": [
        {"delaySeconds": 0, "targets": [{"type": "OnCall"}]},
        {"delaySeconds": 300, "targets": [{"type": "User", "name": "lead-1"}]},
    ]
}
PAYMENTS = soc("payments", on_call(rotation(participants=("alice", "bob"))), TWO_STEPS)
SEARCH = soc("search", on_call(rotation(participants=("carol",))))
MANAGERS = soc("incident-management", on_call(manager="imelda"))
EMPTY = soc("ghost", on_call())


def incident(service: str = "payments", **spec: Any) -> Incident:
    return Incident.model_validate(
        {
            "metadata": {
                "name": "inc-1",
                "namespace": "payments-ns",
                "uid": "uid-1",
                "creationTimestamp": T0,
                "resourceVersion": "1",
            },
            "spec": {"service": service, "summary": "errors", "severity": "High", **spec},
        }
    )


def directory(*socs: ServiceOnCall) -> Directory:
    return Directory(indexes(*socs), "incident-management")


def settle(found: Incident, where: Directory, now: dt.datetime) -> Incident:
    return with_status(found, settled(found, where.indexes, now))


def sent_to(found: Incident, where: Directory, now: dt.datetime) -> Incident:
    """One pass: the batch owed now, all Sent, recorded."""
    found = settle(found, where, now)
    batch = next_batch(found, where, now)
    assert batch is not None
    outcomes = [
        (o.page, PageOutcome(PageChannel.WEBHOOK, o.page.user, PageResult.SENT, 1, now))
        for o in batch.outbound
    ]
    return with_status(found, with_outcomes(found.status, "uid-1", batch, outcomes, now))


def test_targets_are_made_people_from_the_schedules() -> None:
    where = directory(PAYMENTS, MANAGERS)
    step = PAYMENTS.spec.on_call.escalation
    assert step is not None
    reach = where.reach(step.steps[0].targets[0], "payments", T0)
    # 4 March 2025 is day 57 from 6 January: an odd day, bob's shift.
    assert (reach.users, reach.on_call, reach.via) == (("bob",), "bob", PAYMENTS)
    assert where.reach(step.steps[1].targets[0], "payments", T0).users == ("lead-1",)
    managers = where.incident_managers("payments", T0)
    assert (managers.users, managers.via) == (("imelda",), MANAGERS)
    assert Directory(indexes(PAYMENTS), "").incident_managers("payments", T0).users == ()
    assert where.on_call("ghost", T0) == ()


def test_the_first_step_pages_the_on_call_then_waits_for_its_delay() -> None:
    where = directory(PAYMENTS)
    found = settle(incident(), where, T0)
    assert found.status.escalation is not None
    assert found.status.escalation.policy == PAYMENTS.spec.on_call.escalation
    batch = next_batch(found, where, T0)
    assert batch is not None
    assert [o.page.user for o in batch.outbound] == ["bob"]
    paged = sent_to(incident(), where, T0)
    assert [p.user for p in paged.status.pages] == ["bob"]
    assert [r.outcome for r in paged.status.escalation.records] == [EscalationOutcome.PAGED]  # type: ignore[union-attr]
    assert next_batch(paged, where, T0 + dt.timedelta(seconds=299)) is None
    assert due_of(paged, T0) == T0 + dt.timedelta(seconds=300)
    later = next_batch(paged, where, T0 + dt.timedelta(seconds=300))
    assert later is not None
    assert [o.page.user for o in later.outbound] == ["lead-1"]


def test_the_same_page_keeps_its_key_when_decided_again() -> None:
    where = directory(PAYMENTS)
    found = settle(incident(), where, T0)
    first = next_batch(found, where, T0)
    again = next_batch(found, where, T0 + dt.timedelta(seconds=5))
    assert first is not None
    assert again is not None
    assert [o.page.idempotency_key for o in first.outbound] == [
        o.page.idempotency_key for o in again.outbound
    ]


def test_an_acknowledgement_stops_the_escalation() -> None:
    where = directory(PAYMENTS)
    paged = sent_to(incident(), where, T0)
    ack = Acknowledgement(user="bob", time=T0 + dt.timedelta(seconds=60))
    acked = paged.model_copy(
        update={"spec": paged.spec.model_copy(update={"acknowledgements": [ack]})}
    )
    later = T0 + dt.timedelta(seconds=600)
    acked = settle(acked, where, later)
    assert next_batch(acked, where, later) is None
    assert due_of(acked, later) is None


def test_a_step_that_finds_nobody_is_recorded_and_the_next_follows_at_once() -> None:
    policy = {
        "steps": [{"delaySeconds": 0, "targets": [{"type": "OnCall"}]}, TWO_STEPS["steps"][1]]
    }
    where = directory(soc("ghost", on_call(), policy))
    first = sent_to(incident("ghost"), where, T0)
    records = first.status.escalation.records  # type: ignore[union-attr]
    assert [r.outcome for r in records] == [EscalationOutcome.NOBODY]
    assert first.status.pages == []
    assert any(e.action == "NobodyToPage" for e in first.status.timeline)
    # The next step (300 s after the first) hands over at once: nobody was paged.
    then = next_batch(first, where, T0)
    assert then is not None
    assert [o.page.user for o in then.outbound] == ["lead-1"]


def test_reassigning_pages_the_new_owner_once_and_says_from_and_to() -> None:
    where = directory(PAYMENTS, SEARCH)
    paged = sent_to(incident(), where, T0)
    moved = paged.model_copy(update={"spec": paged.spec.model_copy(update={"service": "search"})})
    batch = next_batch(settle(moved, where, T0), where, T0)
    assert batch is not None
    assert batch.owner == "search"
    assert [o.page.user for o in batch.outbound] == ["carol"]
    assert [n.action for n in batch.notes] == [REASSIGNED]
    assert "from payments to search" in batch.notes[0].message
    done = sent_to(moved, where, T0)
    assert done.status.escalation is not None
    assert done.status.escalation.service == "search"
    assert next_batch(done, where, T0) is None


def test_a_major_incident_pages_the_incident_manager_and_every_on_call_once() -> None:
    where = directory(PAYMENTS, SEARCH, MANAGERS, EMPTY)
    paged = sent_to(incident(), where, T0)
    major = paged.model_copy(update={"spec": paged.spec.model_copy(update={"major": True})})
    batch = next_batch(settle(major, where, T0), where, T0)
    assert batch is not None
    assert sorted(o.page.user or "" for o in batch.outbound) == ["bob", "carol", "imelda"]
    assert [n.action for n in batch.notes] == [MAJOR_PAGED]
    done = sent_to(major, where, T0)
    assert next_batch(done, where, T0) is None
    assert due_of(done, T0) == T0 + dt.timedelta(seconds=300)  # only the next step remains


def test_a_resolved_incident_owes_nothing() -> None:
    where = directory(PAYMENTS)
    resolved = incident(resolution={"code": "Fixed", "note": "rolled back"})
    found = settle(resolved, where, T0)
    assert found.status.escalation is None
    assert next_batch(found, where, T0) is None
    assert due_of(found, T0) is None
    assert due_of(resolved, T0) == T0  # its status lags: one pass to write it


def test_suspect_changes_come_from_the_services_records() -> None:
    from changegate.core.incident.suspects import DeploymentFact

    facts = [
        DeploymentFact("payments", "r-old", T0 - dt.timedelta(hours=30)),
        DeploymentFact("payments", "r-1", T0 - dt.timedelta(hours=2)),
        DeploymentFact("payments", "r-2", T0 - dt.timedelta(hours=1)),
    ]
    where = Directory(indexes(PAYMENTS, records={"payments": facts}))
    found = settle(incident(), where, T0)
    assert [s.name for s in found.status.suspect_changes] == ["r-2", "r-1"]
    assert found.status.suspect_changes[0].seconds_before == 3600


def test_on_call_status_names_who_until_when_and_nobody_as_a_condition() -> None:
    patch = on_call_patch(PAYMENTS, T0)
    assert patch is not None
    assert patch["onCall"]["user"] == "bob"
    assert patch["onCall"]["untilTime"] == "2025-03-05T09:00:00Z"
    assert [(c["type"], c["status"]) for c in patch["conditions"]] == [("OnCall", "True")]
    written = PAYMENTS.model_copy(
        update={
            "status": PAYMENTS.status.model_validate(
                {"onCall": patch["onCall"], "conditions": patch["conditions"]}
            )
        }
    )
    assert on_call_patch(written, T0 + dt.timedelta(hours=1)) is None
    assert on_call_due(written, T0) == utc("2025-03-05T09:00")
    nobody = on_call_patch(EMPTY, T0)
    assert nobody is not None
    assert nobody["onCall"] is None
    condition = nobody["conditions"][0]
    assert (condition["status"], condition["reason"]) == (
        ConditionStatus.FALSE.value,
        "NoRotations",
    )


def test_the_pager_runs_one_pass_at_a_time_and_once_more_for_what_came_meanwhile() -> None:
    async def scenario() -> list[str]:
        pager = Pager(events=None, secrets=None, clock=lambda: T0)  # type: ignore[arg-type]
        seen: list[str] = []
        gate = asyncio.Event()

        async def work() -> None:
            seen.append("start")
            await gate.wait()
            seen.append("end")

        pager.kick("k", work)
        await asyncio.sleep(0)
        pager.kick("k", work)
        pager.kick("k", work)  # coalesced with the one before
        gate.set()
        for _ in range(20):
            await asyncio.sleep(0)
        return seen

    assert asyncio.run(scenario()) == ["start", "end", "start", "end"]


class KickRecorder:
    """A pager and a scheduler wakeup that note what an Incident event asked of them."""

    def __init__(self) -> None:
        self.kicked: list[object] = []
        self.woken: list[dt.datetime] = []

    def kick(self, key: object, _: object) -> None:
        self.kicked.append(key)

    def due_at(self, at: dt.datetime) -> None:
        self.woken.append(at)


def test_an_event_kicks_a_pass_only_when_one_is_owed_and_wakes_the_scheduler_for_later() -> None:
    """A new Incident is paged at once; the echo of the pass's own write (next step in 5
    minutes) costs no read, only the scheduler's wakeup; one the index lacks is read anyway."""
    paged = sent_to(incident(), directory(PAYMENTS), T0)
    store: dict[Any, list[Incident]] = {("payments-ns", "new"): [incident()]}
    store[("payments-ns", "paged")] = [paged]
    recorder = KickRecorder()
    state = SimpleNamespace(clock=lambda: T0)
    work = IncidentWork(
        state,  # type: ignore[arg-type]
        dataclasses.replace(indexes(PAYMENTS), incidents=store),
        recorder,  # type: ignore[arg-type]
        recorder,  # type: ignore[arg-type]
    )
    for name in ("new", "paged", "unparsable"):
        work.kick_if_owed("payments-ns", name)
    assert recorder.kicked == [("payments-ns", "new"), ("payments-ns", "unparsable")]
    assert recorder.woken == [T0 + dt.timedelta(seconds=300)]
    # A note (or any spec change) leaves the phase but not observedGeneration: a pass now.
    noted = paged.metadata.model_copy(update={"generation": (paged.metadata.generation or 0) + 1})
    store[("payments-ns", "paged")] = [paged.model_copy(update={"metadata": noted})]
    work.kick_if_owed("payments-ns", "paged")
    assert recorder.kicked[-1] == ("payments-ns", "paged")


class CountingKube:
    """Counts reads of an Incident and keeps the status patches a pass writes."""

    def __init__(self, stored: Incident) -> None:
        self.stored = stored
        self.reads = 0
        self.patches: list[dict[str, Any]] = []

    def get_incident(self, *_: str) -> dict[str, Any]:
        self.reads += 1
        return self.stored.to_json()

    def patch_status(
        self, _: str, __: str, ___: str, patch: dict[str, Any], ____: Any
    ) -> dict[str, Any]:
        self.patches.append(patch)
        self.stored = Incident.model_validate(
            self.stored.to_json() | {"status": self.stored.status.to_json() | patch}
        )
        self.stored.metadata.resource_version = str(len(self.patches) + 1)
        return self.stored.to_json()


class SendingPager:
    """Runs each kicked pass at once and sends every page successfully."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.passes: list[Any] = []

    def kick(self, _: object, work: Any) -> None:
        self.passes.append(work)

    async def send(self, outbound: Any) -> list[tuple[Any, PageOutcome]]:
        pages = [o.page for o in outbound]
        self.sent += [p.user for p in pages]
        return [
            (p, PageOutcome(PageChannel.WEBHOOK, p.user, PageResult.SENT, 1, T0)) for p in pages
        ]


def test_an_incident_the_intake_just_wrote_is_paged_without_reading_it_back() -> None:
    """The alert-to-page path: the first batch starts from the body handed over, and the
    batch after it (to see whether more is owed) from the body the record wrote."""
    kube, pager = CountingKube(incident()), SendingPager()
    state = SimpleNamespace(clock=lambda: T0, kube=kube, settings=SimpleNamespace(
        incident_management_service="incident-management"))  # fmt: skip
    work = IncidentWork(state, indexes(PAYMENTS, MANAGERS), pager)  # type: ignore[arg-type]

    work.kick_opened(incident())
    [run] = pager.passes
    asyncio.run(run())

    assert pager.sent == list(directory(PAYMENTS).on_call("payments", T0))
    assert kube.patches  # the page recorded
    # Nor after it: the next batch starts from the Incident as the record wrote it.
    assert kube.reads == 0
    # A coalesced rerun of the same pass reads: the handed-over body is used once.
    asyncio.run(run())
    assert kube.reads == 1
    assert len(pager.sent) == 1  # and what it read was paged already
