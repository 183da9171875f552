"""The "Sync:" section of `changegate incident show` and `changegate status`.

One row per external system from status.sync (steps delivered and refused,
failed attempts, next try, ticket, last error), the ticket's number and link
from status.externalTicket where it names the same system.
"""

from __future__ import annotations

from changegate.api.v1alpha1.common import SyncState, TicketSystem
from changegate.cli.incidents import describe_incident
from changegate.cli.summary import describe_change, steps_text, sync_lines
from tests.unit.test_cli import change
from tests.unit.test_cli_incidents import incident

UID = "0b6f8c9e-4d2a-4f51-9a57-3c1e2d4f5a6b"
PAGERDUTY = {"system": "PagerDuty", "key": UID, "delivered": ["trigger", "acknowledge"]}
SERVICENOW = {
    "system": "ServiceNow",
    "key": UID,
    "delivered": ["create"],
    "failed": ["note/1"],
    "attempts": 3,
    "nextAttemptTime": "2026-11-17T09:05:30Z",
    "lastError": "acknowledge: HTTP 503",
    "ticketId": "a1b2c3",
}
TICKET = {
    "system": "ServiceNow",
    "id": "INC0010001",
    "url": "https://example.service-now.com/nav_to.do?uri=incident.do?sys_id=a1b2c3",
}


def test_incident_show_prints_each_systems_outbox_and_the_ticket_link() -> None:
    shown = incident(status={"sync": [PAGERDUTY, SERVICENOW], "externalTicket": TICKET})
    lines = describe_incident(shown)
    at = lines.index("Sync:")
    assert lines[at + 1].split() == [
        "SYSTEM", "DELIVERED", "REFUSED", "ATTEMPTS", "NEXT", "ATTEMPT", "TICKET", "LAST", "ERROR",
    ]  # fmt: skip
    pagerduty = ["PagerDuty", "trigger,", "acknowledge", "-", "0", "-", "-", "-"]
    assert lines[at + 2].split() == pagerduty
    assert lines[at + 3].split() == [
        "ServiceNow", "create", "note/1", "3", "2026-11-17T09:05:30Z", "INC0010001",
        "acknowledge:", "HTTP", "503",
    ]  # fmt: skip
    assert lines[at + 4] == f"  ServiceNow INC0010001: {TICKET['url']}"
    # Columns line up as kubectl's do: every row's ATTEMPTS starts where its header does.
    column = lines[at + 1].index("ATTEMPTS")
    assert lines[at + 2][column] == "0"
    assert lines[at + 3][column] == "3"


def test_the_outbox_ticket_stands_in_when_status_has_no_external_ticket() -> None:
    state = SyncState.model_validate(
        {**SERVICENOW, "ticketId": "CHG0030001", "ticketUrl": "https://sn.example.com/chg"}
    )
    lines = sync_lines([state], None)
    assert "CHG0030001" in lines[2].split()
    assert lines[-1] == "  ServiceNow CHG0030001: https://sn.example.com/chg"


def test_status_of_a_change_prints_its_sync_section() -> None:
    state = {**SERVICENOW, "delivered": ["create", "approved"], "failed": [], "attempts": 0}
    state.update(nextAttemptTime=None, lastError=None)
    lines = describe_change(change(sync=[state], externalTicket={**TICKET, "id": "CHG0030001"}))
    row = lines[lines.index("Sync:") + 2].split()
    assert row == ["ServiceNow", "create,", "approved", "-", "0", "-", "CHG0030001", "-"]


def test_nothing_synced_prints_no_section() -> None:
    assert "Sync:" not in describe_incident(incident())
    assert sync_lines([], None) == []


def test_a_long_outbox_shows_its_latest_steps_and_how_many_came_before() -> None:
    steps = ["create", *(f"note/{i}" for i in range(1, 9)), "resolve"]
    assert steps_text(steps) == "+7 earlier, note/7, note/8, resolve"
    assert steps_text(["trigger"]) == "trigger"
    assert steps_text([]) == "-"


def test_a_pagerduty_only_outbox_names_no_ticket() -> None:
    state = SyncState(system=TicketSystem.PAGER_DUTY, key=UID, delivered=["trigger"])
    lines = sync_lines([state], None)
    assert len(lines) == 3  # the heading, the header row, one row: no link line
