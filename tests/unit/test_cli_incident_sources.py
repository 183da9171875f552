"""`changegate incident show` for acts made in PagerDuty or ServiceNow.

The controller applies them stamped as itself; the page names who acted there,
"<externalUser> via PagerDuty", where a person's own act shows their username.
"""

from __future__ import annotations

from changegate.cli.incidents import describe_incident
from tests.unit.test_cli_incidents import incident

VIA_PD = {"via": "PagerDuty", "externalUser": "Alice Responder"}


def test_acts_from_a_vendor_name_who_acted_there() -> None:
    shown = incident(
        acknowledgements=[{"user": "changegate", "time": "2026-11-17T09:02:00Z", **VIA_PD}],
        notes=[
            {"author": "changegate", "time": "2026-11-17T09:03:00Z", "text": "db", **VIA_PD},
            {"author": "oncall-1", "time": "2026-11-17T09:04:00Z", "text": "mine"},
        ],
        assignee="product-dev-2",
        assignedBy="changegate",
        assignedVia="ServiceNow",
        assignedExternalUser="bob@example.com",
        resolution={"code": "Fixed", "note": "done", "resolvedBy": "changegate", **VIA_PD},
    )
    lines = describe_incident(shown)
    for line in [
        "  2026-11-17T09:02:00Z Alice Responder via PagerDuty",
        "  2026-11-17T09:03:00Z Alice Responder via PagerDuty: db",
        "  2026-11-17T09:04:00Z oncall-1: mine",
        "Assignee:       product-dev-2 (by bob@example.com via ServiceNow)",
        "Resolution:     Fixed by Alice Responder via PagerDuty: done",
    ]:
        assert line in lines, f"{line!r} not in\n" + "\n".join(lines)
