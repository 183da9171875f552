"""`changegate incident ...` and `changegate oncall` without a cluster.

Flags, the bodies and JSON patches the commands write, the tables and pages
they print, and `main` against fake Incidents and ServiceOnCalls. The real API
server and the webhook's stamping are in tests/integration/test_cli_incidents.py.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from changegate.adapters.kube import Forbidden, Incidents, ServiceOnCalls
from changegate.api.v1alpha1 import Incident, ResolutionCode, ServiceOnCall, Severity
from changegate.cli import incidents as incident_cli
from changegate.cli import main
from changegate.cli import oncall as oncall_cli
from changegate.cli.errors import CommandError, ExitCode
from changegate.cli.incidents import (
    Declaration,
    ack_patch,
    cause_patch,
    declared_incident,
    describe_incident,
    incident_table,
    major_patch,
    note_patch,
    reassign_patch,
    resolve_patch,
    set_field,
)
from changegate.cli.oncall import on_call_document, on_call_table, shifts_of
from changegate.cli.parser import build_parser

NOW = datetime(2026, 11, 17, 9, 30, tzinfo=UTC)


def incident(name: str = "payments-api-x7k2q", **spec: Any) -> Incident:
    status = spec.pop("status", {})
    created = spec.pop("created", "2026-11-17T09:00:00Z")
    return Incident.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": "payments-prod",
                "creationTimestamp": created,
                "resourceVersion": "3",
            },
            "spec": {
                "service": "payments-api",
                "summary": "5xx above 5%",
                "severity": "High",
                **spec,
            },
            "status": status,
        }
    )


# --- flags ----------------------------------------------------------------------------


def test_incident_actions_parse_with_connection_flags_anywhere() -> None:
    args = build_parser().parse_args(
        ["incident", "resolve", "inc-1", "--code", "fixed", "--note", "rolled back", "-n", "ns"]
    )
    assert (args.command, args.action, args.name) == ("incident", "resolve", "inc-1")
    assert (args.code, args.note, args.namespace) == (ResolutionCode.FIXED, "rolled back", "ns")
    args = build_parser().parse_args(["-n", "ns", "incident", "major", "inc-1", "--freeze-changes"])
    assert (args.action, args.freeze_changes, args.namespace) == ("major", True, "ns")


def test_declare_takes_a_case_insensitive_severity() -> None:
    args = build_parser().parse_args(
        [
            "incident",
            "declare",
            "--service",
            "payments-api",
            "--summary",
            "down",
            "--severity",
            "critical",
        ]
    )
    assert args.severity is Severity.CRITICAL
    assert args.name is None


def test_oncall_takes_an_optional_service_an_instant_and_a_count() -> None:
    args = build_parser().parse_args(
        ["oncall", "payments-api", "--at", "2025-01-08T12:00:00Z", "--next", "3"]
    )
    assert (args.service, args.at, args.next) == ("payments-api", "2025-01-08T12:00:00Z", 3)
    args = build_parser().parse_args(["oncall", "-o", "json"])
    assert (args.service, args.at, args.next, args.output) == (None, None, 0, "json")


@pytest.mark.parametrize(
    "argv",
    [
        ["incident", "resolve", "inc-1", "--code", "AutoResolved", "--note", "x"],  # the intake's
        ["incident", "resolve", "inc-1", "--code", "Fixed"],  # a note is required
        ["incident", "declare", "--service", "a", "--summary", "b", "--severity", "dire"],
        ["incident", "note", "inc-1"],
        ["incident", "page", "inc-1"],
        ["oncall", "--next", "-1"],
    ],
)
def test_bad_usage_exits_with_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


# --- what is written ------------------------------------------------------------------


def test_a_declared_incident_is_manual_and_named_by_the_api_server() -> None:
    body = declared_incident(
        Declaration("payments-prod", "payments-api", "checkout fails", Severity.CRITICAL)
    )
    assert body["metadata"] == {"namespace": "payments-prod", "generateName": "payments-api-"}
    assert body["spec"]["origin"] == "Manual"
    assert (body["spec"]["severity"], body["spec"]["summary"]) == ("Critical", "checkout fails")
    assert "status" not in body
    named = declared_incident(
        Declaration("payments-prod", "payments-api", "x", Severity.LOW, name="inc-1", major=True)
    )
    assert named["metadata"]["name"] == "inc-1"
    assert named["spec"]["major"] is True


def test_a_declaration_the_api_would_refuse_is_a_usage_error() -> None:
    with pytest.raises(CommandError) as refused:
        declared_incident(Declaration("payments-prod", "Payments API!", "x", Severity.LOW))
    assert refused.value.code is ExitCode.USAGE
    assert "spec.service" in refused.value.message


def test_acknowledgements_and_notes_are_appended_without_an_identity() -> None:
    listed = incident(acknowledgements=[], notes=[])
    assert ack_patch(listed, "looking") == [
        {"op": "add", "path": "/spec/acknowledgements/-", "value": {"comment": "looking"}}
    ]
    assert note_patch(listed, "db failover") == [
        {"op": "add", "path": "/spec/notes/-", "value": {"text": "db failover"}}
    ]


def test_a_body_without_the_list_gets_the_whole_list() -> None:
    bare = incident()  # as the intake creates them: no acknowledgements key at all
    assert ack_patch(bare, None) == [{"op": "add", "path": "/spec/acknowledgements", "value": [{}]}]
    assert note_patch(bare, "n") == [{"op": "add", "path": "/spec/notes", "value": [{"text": "n"}]}]


def test_single_field_acts_are_set_with_add() -> None:
    assert set_field("assignee", "product-dev-2") == [
        {"op": "add", "path": "/spec/assignee", "value": "product-dev-2"}
    ]
    assert set_field("commander", "incident-manager-1") == [
        {"op": "add", "path": "/spec/commander", "value": "incident-manager-1"}
    ]
    assert cause_patch("payments-api-r42") == [
        {"op": "add", "path": "/spec/causedBy", "value": "payments-api-r42"}
    ]
    assert resolve_patch(ResolutionCode.WORKAROUND, "cache flushed") == [
        {
            "op": "add",
            "path": "/spec/resolution",
            "value": {"code": "Workaround", "note": "cache flushed"},
        }
    ]


def test_major_freezes_changes_only_when_asked() -> None:
    assert major_patch(False) == [{"op": "add", "path": "/spec/major", "value": True}]
    assert major_patch(True) == [
        {"op": "add", "path": "/spec/major", "value": True},
        {"op": "add", "path": "/spec/freezeChanges", "value": True},
    ]


def test_a_reassignment_fails_if_someone_reassigned_it_meanwhile() -> None:
    assert reassign_patch(incident(), "checkout") == [
        {"op": "test", "path": "/spec/service", "value": "payments-api"},
        {"op": "replace", "path": "/spec/service", "value": "checkout"},
    ]


def test_a_field_this_api_lacks_is_refused_before_anything_is_written() -> None:
    with pytest.raises(CommandError) as refused:
        set_field("no_such_field", "x")
    assert refused.value.message == "this version of the Incident API has no spec.noSuchField"


# --- what is shown --------------------------------------------------------------------


def test_the_list_is_newest_first_with_who_acknowledged() -> None:
    older = incident(
        "payments-api-old",
        created="2026-11-16T09:30:00Z",
        status={"phase": "Resolved", "acknowledgedBy": "oncall-1"},
    )
    newer = incident(
        "payments-api-new", severity="Critical", major=True, status={"phase": "Triggered"}
    )
    assert incident_table([older, newer], NOW) == [
        "NAME               SERVICE        SEVERITY           PHASE       AGE   ACKNOWLEDGED BY",
        "payments-api-new   payments-api   Critical (major)   Triggered   30m   <none>",
        "payments-api-old   payments-api   High               Resolved    24h   oncall-1",
    ]


def test_all_namespaces_adds_a_namespace_column() -> None:
    lines = incident_table([incident()], NOW, with_namespace=True)
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert lines[1].split()[0] == "payments-prod"


def test_show_reads_like_kubectl_describe() -> None:
    shown = incident(
        major=True,
        freezeChanges=True,
        assignee="product-dev-2",
        assignedBy="oncall-1",
        commander="incident-manager-1",
        commanderAssignedBy="incident-manager-1",
        causedBy="payments-api-r42",
        causeConfirmedBy="oncall-1",
        acknowledgements=[{"user": "oncall-1", "time": "2026-11-17T09:02:00Z", "comment": "on it"}],
        notes=[{"author": "oncall-1", "time": "2026-11-17T09:05:00Z", "text": "db failover"}],
        resolution={"code": "Fixed", "note": "rolled back", "resolvedBy": "oncall-1"},
        status={
            "phase": "Resolved",
            "triggeredTime": "2026-11-17T09:00:00Z",
            "acknowledgedTime": "2026-11-17T09:02:00Z",
            "acknowledgedBy": "oncall-1",
            "resolvedTime": "2026-11-17T09:20:00Z",
            "timeToAcknowledgeSeconds": 120,
            "timeToResolveSeconds": 1260,
            "alerts": [
                {
                    "fingerprint": "a1b2",
                    "name": "HighErrorRate",
                    "state": "Resolved",
                    "severity": "High",
                    "startTime": "2026-11-17T08:59:00Z",
                    "endTime": "2026-11-17T09:19:00Z",
                }
            ],
            "suspectChanges": [
                {
                    "name": "payments-api-r42",
                    "finishTime": "2026-11-17T08:50:00Z",
                    "secondsBefore": 540,
                }
            ],
            "pages": [
                {
                    "time": "2026-11-17T09:00:01Z",
                    "channel": "Slack",
                    "user": "oncall-1",
                    "result": "Sent",
                }
            ],
            "externalTicket": {
                "system": "ServiceNow",
                "id": "INC0010001",
                "state": "Resolved",
                "syncedTime": "2026-11-17T09:21:00Z",
            },
            "timeline": [
                {"time": "2026-11-17T09:02:00Z", "actor": "oncall-1", "action": "Acknowledged"}
            ],
        },
    )
    text = "\n".join(describe_incident(shown))
    for line in [
        "Major:          yes, changes frozen",
        "Assignee:       product-dev-2 (by oncall-1)",
        "Commander:      incident-manager-1 (by incident-manager-1)",
        "Caused by:      payments-api-r42 (by oncall-1)",
        "Resolution:     Fixed by oncall-1: rolled back",
        "Ticket:         ServiceNow INC0010001, Resolved, synced 2026-11-17T09:21:00Z",
        "Acknowledged:   2026-11-17T09:02:00Z by oncall-1",
        "To acknowledge: 2m",
        "To resolve:     21m",
        "  a1b2 HighErrorRate Resolved High, started 2026-11-17T08:59:00Z, ended 2026-11-17T09:19:00Z",
        "  payments-api-r42 finished 2026-11-17T08:50:00Z, 9m before the alert",
        "  2026-11-17T09:02:00Z oncall-1: on it",
        "  2026-11-17T09:05:00Z oncall-1: db failover",
        "  2026-11-17T09:00:01Z Slack oncall-1 step 0: Sent",
        "  2026-11-17T09:02:00Z oncall-1 Acknowledged",
    ]:
        assert line in text.splitlines(), f"{line!r} not in\n{text}"


def test_a_fresh_incident_shows_no_empty_sections() -> None:
    lines = describe_incident(incident())
    assert "To acknowledge: -" in lines
    assert not any(line.endswith(":") for line in lines)  # no section without entries


# --- main against fake Incidents ------------------------------------------------------


class FakeIncidents:
    """Incidents as the API server would answer, the webhook stamping `user`."""

    def __init__(
        self, current: Incident, user: str = "oncall-1", refusal: Exception | None = None
    ) -> None:
        self.current = current
        self.user = user
        self.refusal = refusal
        self.patches: list[list[dict[str, Any]]] = []
        self.created: list[dict[str, Any]] = []

    def get(self, namespace: str, name: str) -> Incident:
        assert (namespace, name) == ("payments-prod", self.current.metadata.name)
        return self.current

    def find(self, namespace: str | None) -> list[Incident]:
        return [self.current]

    def create(self, body: dict[str, Any]) -> Incident:
        self.created.append(body)
        return incident("payments-api-x7k2q")

    def patch(self, current: Incident, operations: list[dict[str, Any]]) -> Incident:
        if self.refusal:
            raise self.refusal
        self.patches.append(operations)
        body = current.to_json()
        for op in operations:
            apply(body, op, self.user)
        self.current = Incident.model_validate(body)
        return self.current


def apply(body: dict[str, Any], op: dict[str, Any], user: str) -> None:
    """Enough of RFC 6902 for these patches, and the webhook's stamps."""
    *parents, last = op["path"].strip("/").split("/")
    target: Any = body
    for key in parents:
        target = target[key]
    if op["op"] == "test":
        assert target[last] == op["value"]
        return
    value = op["value"]
    if isinstance(value, dict) and last in ("-", "acknowledgements", "notes"):
        value = {**value, ("author" if "text" in value else "user"): user}
    if last == "-":
        target.append(value)
    else:
        target[last] = value
    if last == "assignee":
        target["assignedBy"] = user


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeIncidents:
    incidents = FakeIncidents(incident(acknowledgements=[], notes=[]))
    monkeypatch.setattr(incident_cli, "incidents_of", lambda connection: incidents)
    return incidents


@pytest.mark.parametrize(
    ("argv", "said", "patch"),
    [
        (
            ["ack", "--comment", "on it"],
            "acknowledged by oncall-1",
            [{"op": "add", "path": "/spec/acknowledgements/-", "value": {"comment": "on it"}}],
        ),
        (
            ["note", "db failover"],
            "note added by oncall-1",
            [{"op": "add", "path": "/spec/notes/-", "value": {"text": "db failover"}}],
        ),
        (
            ["assign", "product-dev-2"],
            "assigned to product-dev-2 (by oncall-1)",
            [{"op": "add", "path": "/spec/assignee", "value": "product-dev-2"}],
        ),
        (
            ["reassign", "checkout"],
            "reassigned to service checkout",
            reassign_patch(incident(), "checkout"),
        ),
    ],
)
def test_an_action_patches_and_says_what_the_server_recorded(
    fake: FakeIncidents,
    argv: list[str],
    said: str,
    patch: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    action, *rest = argv
    code = main(["incident", action, "payments-api-x7k2q", *rest, "-n", "payments-prod"])
    assert code == ExitCode.OK
    assert capsys.readouterr().out == f"incident/payments-api-x7k2q {said}\n"
    assert fake.patches == [patch]


def test_declare_prints_the_name_the_server_chose(
    fake: FakeIncidents, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["incident", "declare", "-n", "payments-prod", "--service", "payments-api"]
    code = main([*argv, "--summary", "checkout fails", "--severity", "High"])
    assert code == ExitCode.OK
    assert capsys.readouterr().out == "payments-api-x7k2q\n"
    assert fake.created[0]["metadata"]["generateName"] == "payments-api-"


def test_a_refusal_is_shown_in_the_api_servers_words(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    message = (
        'admission webhook "incidents.changegate.io" denied the request: outsider-1 may not act'
    )
    refusing = FakeIncidents(incident(), refusal=Forbidden(403, "Forbidden", message))
    monkeypatch.setattr(incident_cli, "incidents_of", lambda connection: refusing)
    code = main(["incident", "ack", "payments-api-x7k2q", "-n", "payments-prod"])
    assert code == ExitCode.ERROR
    assert capsys.readouterr().err == f"error: {message}\n"


def test_list_and_show_print_json_and_yaml(
    fake: FakeIncidents, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["incident", "list", "-n", "payments-prod", "-o", "json"]) == ExitCode.OK
    listed = json.loads(capsys.readouterr().out)
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["payments-api-x7k2q"]
    assert (
        main(["incident", "show", "payments-api-x7k2q", "-n", "payments-prod", "-o", "yaml"])
        == ExitCode.OK
    )
    shown = yaml.safe_load(capsys.readouterr().out)
    assert (shown["kind"], shown["spec"]["severity"]) == ("Incident", "High")


def test_list_open_leaves_resolved_incidents_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    resolved = FakeIncidents(incident(status={"phase": "Resolved"}))
    monkeypatch.setattr(incident_cli, "incidents_of", lambda connection: resolved)
    assert main(["incident", "list", "-n", "payments-prod", "--open"]) == ExitCode.OK
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "No incidents found in payments-prod namespace.\n")


# --- the typed adapter ----------------------------------------------------------------


class RecordingCustomObjects:
    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def patch_namespaced_custom_object_with_http_info(
        self, *args: Any, **kwargs: Any
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        self.calls.append(("patch", args, kwargs))
        return self.answer, 200, {}

    def list_cluster_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("list", args, kwargs))
        return {"items": [self.answer]}


def test_incidents_are_json_patched_by_the_cli_field_manager() -> None:
    custom = RecordingCustomObjects(incident().to_json())
    incidents = Incidents(None, "changegate-cli")  # type: ignore[arg-type]
    incidents.custom = custom  # type: ignore[assignment]
    patched = incidents.patch(incident(), major_patch(False))
    assert isinstance(patched, Incident)
    _, args, kwargs = custom.calls[0]
    assert args[2:5] == ("payments-prod", "incidents", "payments-api-x7k2q")
    assert args[5] == major_patch(False)
    assert kwargs == {
        "field_manager": "changegate-cli",
        "_content_type": "application/json-patch+json",
    }


def test_a_service_is_found_across_namespaces_by_its_field() -> None:
    custom = RecordingCustomObjects(service_on_call().to_json())
    reader = ServiceOnCalls(None)  # type: ignore[arg-type]
    reader.custom = custom  # type: ignore[assignment]
    found = reader.of_service("payments-api")
    assert [s.spec.service.name for s in found] == ["payments-api"]
    assert custom.calls == [
        (
            "list",
            ("changegate.io", "v1alpha1", "serviceoncalls"),
            {"field_selector": "spec.service.name=payments-api"},
        )
    ]


# --- who is on call -------------------------------------------------------------------


def service_on_call(service: str = "payments-api", **on_call: Any) -> ServiceOnCall:
    schedule = on_call or {
        "rotations": [
            {
                "name": "primary",
                "type": "Weekly",
                "participants": ["alice", "bob"],
                "startTime": "2025-01-06T09:00:00Z",
            }
        ]
    }
    return ServiceOnCall.model_validate(
        {
            "metadata": {"name": service, "namespace": f"{service}-prod"},
            "spec": {
                "service": {"name": service},
                "team": {"name": "team", "members": [{"user": "alice"}]},
                "environments": [
                    {"name": "production", "namespace": f"{service}-prod", "production": True}
                ],
                "onCall": schedule,
            },
        }
    )


AT = datetime(2025, 1, 8, 12, 0, tzinfo=UTC)


def test_the_shift_now_and_the_next_ones_come_from_the_schedule() -> None:
    found = shifts_of(service_on_call(), AT, 2)
    assert [(a.users, a.until) for a in found.shifts] == [
        (("alice",), datetime(2025, 1, 13, 9, tzinfo=UTC)),
        (("bob",), datetime(2025, 1, 20, 9, tzinfo=UTC)),
        (("alice",), datetime(2025, 1, 27, 9, tzinfo=UTC)),
    ]
    assert on_call_table([found]) == [
        "SERVICE        NAMESPACE           ON CALL   FROM                   UNTIL                  WHY",
        "payments-api   payments-api-prod   alice     2025-01-08T12:00:00Z   2025-01-13T09:00:00Z   alice (primary)",
        "payments-api   payments-api-prod   bob       2025-01-13T09:00:00Z   2025-01-20T09:00:00Z   bob (primary)",
        "payments-api   payments-api-prod   alice     2025-01-20T09:00:00Z   2025-01-27T09:00:00Z   alice (primary)",
    ]


def test_nobody_on_call_is_said_with_its_reason() -> None:
    empty = shifts_of(service_on_call("search", rotations=[]), AT, 0)
    table = on_call_table([empty])
    assert re.split(r"\s{3,}", table[1])[2:] == [
        "nobody",
        "2025-01-08T12:00:00Z",
        "for good",
        "nobody is on call: no rotation is declared",
    ]
    document = on_call_document([empty], AT)
    assert document["items"][0]["shifts"] == [
        {
            "from": "2025-01-08T12:00:00Z",
            "until": None,
            "nobody": True,
            "reason": "NoRotations",
            "message": "nobody is on call: no rotation is declared",
            "onCall": [],
        }
    ]


def test_a_schedule_that_cannot_be_evaluated_says_why() -> None:
    broken = service_on_call(timeZone="Mars/Olympus", rotations=[])
    found = shifts_of(broken, AT, 0)
    assert found.error is not None
    assert "Mars/Olympus" in found.error
    assert "nobody" in on_call_table([found])[1]


class FakeServiceOnCalls:
    def __init__(self, *items: ServiceOnCall) -> None:
        self.items = items

    def find(self, namespace: str | None) -> list[ServiceOnCall]:
        return [s for s in self.items if namespace in (None, s.metadata.namespace)]

    def of_service(self, service: str, namespace: str | None = None) -> list[ServiceOnCall]:
        return [s for s in self.find(namespace) if s.spec.service.name == service]


def test_oncall_prints_json_for_one_service(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readers = FakeServiceOnCalls(service_on_call(), service_on_call("search", rotations=[]))
    monkeypatch.setattr(oncall_cli, "on_call_reader", lambda connection: readers)
    code = main(
        ["oncall", "payments-api", "--at", "2025-01-08T12:00:00Z", "--next", "1", "-o", "json"]
    )
    assert code == ExitCode.OK
    printed = json.loads(capsys.readouterr().out)
    assert printed["at"] == "2025-01-08T12:00:00Z"
    assert [i["service"] for i in printed["items"]] == ["payments-api"]
    shifts = printed["items"][0]["shifts"]
    assert [s["onCall"][0]["user"] for s in shifts] == ["alice", "bob"]
    assert shifts[0]["onCall"][0] == {"user": "alice", "source": "Rotation", "rotation": "primary"}


def test_oncall_with_a_namespace_reads_only_that_namespace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readers = FakeServiceOnCalls(service_on_call(), service_on_call("search", rotations=[]))
    monkeypatch.setattr(oncall_cli, "on_call_reader", lambda connection: readers)
    assert main(["oncall", "-n", "search-prod", "--at", "2025-01-08T12:00:00Z"]) == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["search"]
    assert main(["oncall", "payments-api", "-n", "search-prod"]) == ExitCode.ERROR


def test_oncall_for_an_unknown_service_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(oncall_cli, "on_call_reader", lambda connection: FakeServiceOnCalls())
    assert main(["oncall", "billing"]) == ExitCode.ERROR
    assert capsys.readouterr().err == "error: no ServiceOnCall declares the service 'billing'\n"


def test_oncall_at_a_time_without_a_zone_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(oncall_cli, "on_call_reader", lambda connection: FakeServiceOnCalls())
    assert main(["oncall", "--at", "2025-01-08T12:00:00"]) == ExitCode.USAGE
    assert "time zone" in capsys.readouterr().err
