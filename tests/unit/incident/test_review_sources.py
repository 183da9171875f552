"""Acts made in PagerDuty or ServiceNow: only the controller writes `via` and `externalUser`.

A table of writes that set or change those fields (refused for people, accepted
for the controller), and of people redoing an act that came from a vendor (the
old source is removed by the stamping patch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from changegate.core.incident.review import review_incident, sources_by_controller
from tests.unit.builders import REQUESTER
from tests.unit.incident.test_review import (
    BASE,
    MANAGER,
    STAMP_TIME,
    add,
    edited,
    incident,
    outcome,
    put,
    write,
)

VIA_PD = {"via": "PagerDuty", "externalUser": "Alice Responder"}
FROM_PD = incident(
    acknowledgements=[{"user": "changegate", "time": STAMP_TIME, **VIA_PD}],
    notes=[{"author": "changegate", "time": STAMP_TIME, "text": "from PD", **VIA_PD}],
    assignee="product-dev-2",
    assignedBy="changegate",
    assignedTime=STAMP_TIME,
    assignedVia="PagerDuty",
    assignedExternalUser="Alice Responder",
    resolution={"code": "Fixed", "note": "done", "resolvedBy": "changegate", **VIA_PD},
)


def merged(field: str, value: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        spec[field] = {**spec[field], **value}

    return change


@pytest.mark.parametrize(
    ("old", "change", "fields"),
    [
        pytest.param(BASE, add("acknowledgements", {"via": "PagerDuty"}), ["spec.acknowledgements[0].via"], id="ack-via"),
        pytest.param(BASE, add("notes", {"text": "x", "externalUser": "Bob"}), ["spec.notes[0].externalUser"], id="note-user"),
        pytest.param(BASE, add("notes", {"text": "x", **VIA_PD}), ["spec.notes[0].via", "spec.notes[0].externalUser"], id="note-both"),
        pytest.param(BASE, put("resolution", {"code": "Fixed", "note": "x", "via": "ServiceNow"}), ["spec.resolution.via"], id="resolution"),
        pytest.param(BASE, put("assignedVia", "PagerDuty"), ["spec.assignedVia"], id="assigned"),
        pytest.param(BASE, put("reassignedExternalUser", "Bob"), ["spec.reassignedExternalUser"], id="reassigned"),
        pytest.param(BASE, put("majorVia", "ServiceNow"), ["spec.majorVia"], id="major"),
        pytest.param(FROM_PD, merged("resolution", {"via": None}), ["spec.resolution.via"], id="removed"),
        pytest.param(FROM_PD, put("assignedExternalUser", "Mallory"), ["spec.assignedExternalUser"], id="renamed"),
    ],
)  # fmt: skip
def test_a_person_setting_a_source_is_refused(
    old: Any, change: Callable[[dict[str, Any]], None], fields: list[str]
) -> None:
    verdict = review_incident(write(edited(old, change), old, MANAGER))
    assert (verdict.allowed, verdict.reason) == (False, "SourceSetByController")
    assert verdict.message.startswith(", ".join(fields) + ": set only by changegate's controller")


def test_a_source_on_a_new_incident_is_refused() -> None:
    created = incident(notes=[{"text": "x", **VIA_PD}])
    assert outcome(sources_by_controller(write(created, None, REQUESTER))) == (
        False,
        "SourceSetByController",
    )


@pytest.mark.parametrize(
    ("change"),
    [
        pytest.param(add("notes", {"text": "mine"}), id="new-note"),
        pytest.param(lambda spec: None, id="nothing"),
        pytest.param(put("summary", "what is wrong, better said"), id="other-edit"),
    ],
)
def test_sources_already_there_pass(change: Callable[[dict[str, Any]], None]) -> None:
    assert sources_by_controller(write(edited(FROM_PD, change), FROM_PD, REQUESTER)) is None


def test_the_controller_sets_sources() -> None:
    changed = edited(BASE, add("acknowledgements", {"user": "changegate", **VIA_PD}))
    verdict = review_incident(write(changed, BASE, MANAGER, operator=True))
    assert (verdict.allowed, verdict.reason) == (True, "WrittenByOperator")
    assert verdict.patch == []


@pytest.mark.parametrize(
    ("change", "removed"),
    [
        pytest.param(put("assignee", "product-dev-1"), ["/spec/assignedVia", "/spec/assignedExternalUser"], id="assignee"),
        pytest.param(merged("resolution", {"note": "really done"}), ["/spec/resolution/via", "/spec/resolution/externalUser"], id="resolution"),
        pytest.param(add("notes", {"text": "mine"}), [], id="unrelated"),
    ],
)  # fmt: skip
def test_a_person_redoing_a_vendors_act_makes_it_theirs(
    change: Callable[[dict[str, Any]], None], removed: list[str]
) -> None:
    verdict = review_incident(write(edited(FROM_PD, change), FROM_PD, REQUESTER))
    assert verdict.allowed, verdict.message
    assert [op["path"] for op in verdict.patch if op["op"] == "remove"] == removed
