"""The review of people's writes to an Incident: who may act, and the stamps of each act.

Tables per rule of core/incident/review.py, then the whole chain, then the
webhook's glue (handlers/webhook/incidents.py) over a warm in-memory state.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pytest

from changegate.api.v1alpha1.incident import Incident
from changegate.core.common import User, timestamp
from changegate.core.incident import review
from changegate.core.incident.review import IncidentWrite, Responders, Verdict, review_incident
from tests.unit.builders import NOW, OPERATOR, REQUESTER, TEAMMATE, sample, service_on_call

MANAGER = User("incident-manager-1", frozenset({"incident-managers"}))
OUTSIDER = User("outsider-1", frozenset({"team-search"}))
TEAM = Responders(
    "payments-api",
    frozenset({REQUESTER.username, TEAMMATE.username}),
    frozenset({"incident-managers"}),
)
UNDECLARED = Responders("payments-api", None, frozenset({"incident-managers"}))
STAMP_TIME = timestamp(NOW)


def incident_body(**spec: Any) -> dict[str, Any]:
    """The sample incident, not yet acted on (no acks, notes, assignee; not major), then `spec`."""
    body = sample("incident")
    body["spec"].update(
        {"acknowledgements": [], "notes": [], "major": False, "freezeChanges": False}
    )
    body["spec"].pop("assignee", None)
    body["spec"].update(spec)
    body["status"] = {
        "suspectChanges": [
            {"name": "payments-api-7", "finishTime": "2026-11-17T09:40:00Z", "secondsBefore": 1320}
        ]
    }
    return body


def incident(**spec: Any) -> Incident:
    return Incident.model_validate(incident_body(**spec))


def edited(old: Incident, change: Callable[[dict[str, Any]], None]) -> Incident:
    body = copy.deepcopy(old.to_json())
    change(body["spec"])
    return Incident.model_validate(body)


def write(
    new: Incident,
    old: Incident | None = None,
    user: User = REQUESTER,
    responders: Responders = TEAM,
    operator: bool = False,
) -> IncidentWrite:
    return IncidentWrite(old, new, user, responders, NOW, operator)


def outcome(verdict: Verdict | None) -> tuple[bool, str] | None:
    return None if verdict is None else (verdict.allowed, verdict.reason)


ACKED = incident(acknowledgements=[{"user": "product-dev-1", "time": STAMP_TIME}])
NOTED = incident(notes=[{"author": "product-dev-1", "time": STAMP_TIME, "text": "first"}])
BASE = incident()


def add(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        spec.setdefault(field, []).append(value)

    return change


def put(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        spec[field] = value

    return change


# -- acts: what counts as acting --------------------------------------------------


@pytest.mark.parametrize(
    ("old", "change", "acts"),
    [
        pytest.param(BASE, add("acknowledgements", {}), ["acknowledgements"], id="ack"),
        pytest.param(BASE, add("notes", {"text": "x"}), ["notes"], id="note"),
        pytest.param(BASE, put("assignee", "product-dev-2"), ["assignee"], id="assignee"),
        pytest.param(BASE, put("commander", "product-dev-2"), ["commander"], id="commander"),
        pytest.param(BASE, put("causedBy", "payments-api-7"), ["causedBy"], id="cause"),
        pytest.param(BASE, put("service", "checkout-web"), ["service"], id="reassign"),
        pytest.param(BASE, put("major", True), ["major"], id="major"),
        pytest.param(
            BASE,
            put("resolution", {"code": "Fixed", "note": "rolled back"}),
            ["resolution"],
            id="resolve",
        ),
        pytest.param(BASE, put("severity", "Low"), ["severity"], id="severity-is-an-edit"),
        pytest.param(BASE, lambda spec: None, [], id="nothing"),
    ],
)
def test_what_counts_as_an_act(
    old: Incident, change: Callable[[dict[str, Any]], None], acts: list[str]
) -> None:
    assert write(edited(old, change), old).acts() == acts


def test_a_new_incident_acts_only_through_what_it_carries() -> None:
    assert write(BASE).acts() == []
    assert write(incident(major=True, assignee="product-dev-2")).acts() == ["assignee", "major"]


# -- rules, one table each ----------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(write(ACKED, operator=True), (True, "WrittenByOperator"), id="operator"),
        pytest.param(write(ACKED), None, id="a-person"),
    ],
)
def test_written_by_operator(case: IncidentWrite, expected: tuple[bool, str] | None) -> None:
    assert outcome(review.written_by_operator(case)) == expected


@pytest.mark.parametrize(
    ("old", "change", "expected"),
    [
        pytest.param(NOTED, add("notes", {"text": "second"}), None, id="append-note"),
        pytest.param(
            NOTED, lambda s: s["notes"][0].update(text="rewritten"), (False, "AppendOnly"),
            id="edit-old-note",
        ),
        pytest.param(NOTED, put("notes", []), (False, "AppendOnly"), id="remove-note"),
        pytest.param(
            ACKED, lambda s: s["acknowledgements"][0].update(user="product-dev-2"),
            (False, "AppendOnly"), id="edit-old-ack",
        ),
        pytest.param(ACKED, add("acknowledgements", {}), None, id="append-ack"),
    ],
)  # fmt: skip
def test_lists_are_append_only(
    old: Incident, change: Callable[[dict[str, Any]], None], expected: tuple[bool, str] | None
) -> None:
    assert outcome(review.lists_append_only(write(edited(old, change), old))) == expected


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(put("assignedBy", "product-dev-2"), (False, "StampedField"), id="forged-by"),
        pytest.param(put("reassignedTime", STAMP_TIME), (False, "StampedField"), id="forged-time"),
        pytest.param(
            lambda s: s.update(assignee="product-dev-2", assignedBy="x"), None, id="with-its-act"
        ),
    ],
)
def test_stamps_are_the_webhooks(
    change: Callable[[dict[str, Any]], None], expected: tuple[bool, str] | None
) -> None:
    assert outcome(review.stamps_by_webhook(write(edited(BASE, change), BASE))) == expected


@pytest.mark.parametrize(
    ("user", "responders", "allowed"),
    [
        pytest.param(REQUESTER, TEAM, True, id="team-member"),
        pytest.param(MANAGER, TEAM, True, id="incident-manager"),
        pytest.param(OUTSIDER, TEAM, False, id="outsider"),
        pytest.param(REQUESTER, UNDECLARED, False, id="no-serviceoncall-no-team"),
        pytest.param(MANAGER, UNDECLARED, True, id="no-serviceoncall-manager"),
    ],
)
def test_only_responders_act(user: User, responders: Responders, allowed: bool) -> None:
    verdict = review.responders_only(
        write(edited(ACKED, add("notes", {"text": "x"})), ACKED, user, responders)
    )
    assert (verdict is None) is allowed
    if verdict is not None:
        assert verdict.reason == "NotAResponder"
        assert "incident-managers" in verdict.message


def test_a_refusal_names_who_may_act() -> None:
    verdict = review.responders_only(
        write(edited(BASE, add("notes", {"text": "x"})), BASE, OUTSIDER)
    )
    assert verdict is not None
    assert verdict.message == (
        f"outsider-1 may not act on Incident {BASE.metadata.name} (spec.notes): only the team of"
        " service payments-api (product-dev-1, product-dev-2) and the incident managers"
        " (group incident-managers) may"
    )


@pytest.mark.parametrize(
    ("user", "change", "expected"),
    [
        pytest.param(REQUESTER, put("major", True), None, id="team-declares-major"),
        pytest.param(
            REQUESTER, lambda s: s.update(major=True, freezeChanges=True),
            (False, "FreezeByIncidentManagers"), id="team-freezes",
        ),
        pytest.param(
            MANAGER, lambda s: s.update(major=True, freezeChanges=True), None, id="manager-freezes"
        ),
    ],
)  # fmt: skip
def test_only_incident_managers_freeze(
    user: User, change: Callable[[dict[str, Any]], None], expected: tuple[bool, str] | None
) -> None:
    case = write(edited(BASE, change), BASE, user)
    assert outcome(review.freeze_by_incident_managers(case)) == expected


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        pytest.param("payments-api-7", None, id="a-suspect"),
        pytest.param("orders-api-3", (False, "CauseNotASuspect"), id="not-a-suspect"),
    ],
)
def test_the_cause_is_a_suspect(cause: str, expected: tuple[bool, str] | None) -> None:
    case = write(edited(BASE, put("causedBy", cause)), BASE)
    assert outcome(review.cause_among_suspects(case)) == expected


# -- the chain: stamps --------------------------------------------------------------


def test_an_ack_is_stamped_with_the_writer_and_now() -> None:
    verdict = review_incident(
        write(edited(ACKED, add("acknowledgements", {"comment": "on it"})), ACKED, TEAMMATE)
    )
    assert (verdict.allowed, verdict.reason) == (True, "ActsStamped")
    assert verdict.patch == [
        {"op": "add", "path": "/spec/acknowledgements/1/user", "value": "product-dev-2"},
        {"op": "add", "path": "/spec/acknowledgements/1/time", "value": STAMP_TIME},
    ]
    assert verdict.warnings == ()


def test_a_forged_name_is_overwritten_with_a_warning() -> None:
    forged = edited(BASE, add("notes", {"author": "product-dev-2", "text": "not me"}))
    verdict = review_incident(write(forged, BASE, REQUESTER))
    assert verdict.allowed
    assert {"op": "add", "path": "/spec/notes/0/author", "value": "product-dev-1"} in verdict.patch
    assert verdict.warnings == (
        "spec.notes[0].author named product-dev-2; recorded as product-dev-1, the authenticated user",
    )


@pytest.mark.parametrize(
    ("change", "stamps"),
    [
        pytest.param(put("assignee", "product-dev-2"), ("assignedBy", "assignedTime"), id="assignee"),
        pytest.param(put("commander", "incident-manager-1"), ("commanderAssignedBy", "commanderAssignedTime"), id="commander"),
        pytest.param(put("causedBy", "payments-api-7"), ("causeConfirmedBy", "causeConfirmedTime"), id="cause"),
        pytest.param(put("service", "checkout-web"), ("reassignedBy", "reassignedTime"), id="reassign"),
        pytest.param(
            put("resolution", {"code": "Fixed", "note": "rolled back", "resolvedBy": "someone"}),
            ("resolution/resolvedBy", "resolution/time"), id="resolution",
        ),
    ],
)  # fmt: skip
def test_each_act_is_stamped(
    change: Callable[[dict[str, Any]], None], stamps: tuple[str, str]
) -> None:
    verdict = review_incident(write(edited(BASE, change), BASE, REQUESTER))
    by, at = stamps
    assert verdict.allowed, verdict.message
    assert {"op": "add", "path": f"/spec/{by}", "value": "product-dev-1"} in verdict.patch
    assert {"op": "add", "path": f"/spec/{at}", "value": STAMP_TIME} in verdict.patch


def test_metadata_edits_and_bare_creations_pass_unstamped() -> None:
    assert review_incident(write(BASE, None, OUTSIDER)) == Verdict(True)
    relabelled = edited(BASE, lambda spec: None)
    relabelled.metadata.labels["x"] = "y"
    assert review_incident(write(relabelled, BASE, OUTSIDER)) == Verdict(True)


def test_an_outsider_creating_an_acted_incident_is_refused() -> None:
    verdict = review_incident(write(incident(major=True), None, OUTSIDER))
    assert (verdict.allowed, verdict.reason) == (False, "NotAResponder")


def test_the_chain_runs_in_this_order() -> None:
    assert [rule.__name__ for rule in review.RULES] == [
        "written_by_operator",
        "lists_append_only",
        "sources_by_controller",
        "stamps_by_webhook",
        "no_change_to_stamp",
        "responders_only",
        "freeze_by_incident_managers",
        "cause_among_suspects",
        "stamp_acts",
    ]


# -- the webhook's glue ---------------------------------------------------------------


def review_of(obj: dict[str, Any], old: dict[str, Any] | None, user: User) -> Any:
    from changegate.handlers.webhook.server import Review

    return Review(
        uid="u1",
        group="changegate.io",
        kind="Incident",
        operation="UPDATE" if old else "CREATE",
        user=user,
        namespace="payments-prod",
        name=obj["metadata"]["name"],
        object=obj,
        old_object=old,
    )


@pytest.mark.parametrize(
    ("user", "allowed"),
    [(REQUESTER, True), (MANAGER, True), (OUTSIDER, False), (OPERATOR, True)],
    ids=["team", "manager", "outsider", "operator"],
)
def test_the_webhook_reads_the_team_from_the_serviceoncall_cache(user: User, allowed: bool) -> None:
    from changegate.handlers.webhook.incidents import IncidentAdmission
    from tests.unit.test_webhook_server import state_with

    state = state_with(service_on_call().to_json())
    admission = IncidentAdmission(state, clock=lambda: NOW)
    old = incident_body()
    new = copy.deepcopy(old)
    new["spec"]["acknowledgements"] = [{"comment": "on it"}]
    answer = asyncio.run(admission.incident(review_of(new, old, user)))
    assert answer.allowed is allowed
    if not allowed:
        assert answer.code == 403
        assert "product-dev-1, product-dev-2" in answer.message


def test_the_webhook_answers_400_for_an_unparsable_incident() -> None:
    from changegate.handlers.webhook.incidents import IncidentAdmission
    from tests.unit.test_webhook_server import state_with

    admission = IncidentAdmission(state_with(), clock=lambda: NOW)
    bad = incident_body()
    bad["spec"]["severity"] = "Apocalyptic"
    answer = asyncio.run(admission.incident(review_of(bad, None, REQUESTER)))
    assert (answer.allowed, answer.code) == (False, 400)


@pytest.mark.parametrize(
    ("spec", "resolved", "keys"),
    [
        ({"major": True, "freezeChanges": True}, False, {("freeze", "payments-api"), ("freeze", "checkout-web")}),
        ({"major": True, "freezeChanges": False}, False, set()),
        ({"major": True, "freezeChanges": True}, True, set()),
    ],
    ids=["open-major-freezing", "major-not-freezing", "resolved"],
)  # fmt: skip
def test_the_freeze_index_holds_open_major_freezing_incidents(
    spec: dict[str, Any], resolved: bool, keys: set[tuple[str, str]]
) -> None:
    from changegate.handlers.webhook.caches import index_freezes

    body = incident_body(affectedServices=["checkout-web"], **spec)
    if resolved:
        body["spec"]["resolution"] = {"code": "Fixed", "note": "done"}
    index = index_freezes(body)
    assert set(index) == keys
    assert set(index.values()) <= {f"payments-prod/{body['metadata']['name']}"}
