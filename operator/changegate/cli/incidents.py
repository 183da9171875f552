"""`changegate incident ...`: declare, list, show and act on Incidents as yourself.

Each action is a JSON patch of the Incident's spec, as `approve` is for a
ChangeRequest: lists are appended to with `/-` (the API keeps them
append-only) and the admission webhook stamps who did it and when, so the CLI
never types an identity. Pure builders (bodies, patches, table, page) sit
above the commands, which only read, patch and print; refusals leave as the
API server's own message through `commands.main`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from changegate.adapters.kube import Incidents
from changegate.api.v1alpha1 import (
    Acknowledgement,
    Incident,
    IncidentPhase,
    IncidentSpec,
    Note,
    Resolution,
    ResolutionCode,
    Severity,
)
from changegate.cli.cluster import FIELD_MANAGER, Connection, print_warning
from changegate.cli.errors import CommandError, ExitCode
from changegate.cli.formats import OutputFormat, dump
from changegate.cli.summary import sync_lines, timestamp
from changegate.cli.table import UNKNOWN, format_table, human_duration

COLUMNS = ("NAME", "SERVICE", "SEVERITY", "PHASE", "AGE", "ACKNOWLEDGED BY")
LABEL_WIDTH = 16  # the longest label, "To acknowledge:", and a space

Patch = list[dict[str, Any]]


# -- what is written -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Declaration:
    """An Incident raised by hand: `changegate incident declare`."""

    namespace: str
    service: str
    summary: str
    severity: Severity
    name: str | None = None
    description: str | None = None
    major: bool = False


def declared_incident(declaration: Declaration) -> dict[str, Any]:
    """The body to create, checked against the API model first (a clear usage error)."""
    metadata: dict[str, Any] = {"namespace": declaration.namespace}
    if declaration.name:
        metadata["name"] = declaration.name
    else:  # the API server picks a unique suffix, as `kubectl create --generate-name`
        metadata["generateName"] = f"{declaration.service}-"
    spec = {
        "service": declaration.service,
        "summary": declaration.summary,
        "severity": declaration.severity.value,
        "description": declaration.description,
        "major": declaration.major,
        "origin": "Manual",
    }
    try:
        incident = Incident.model_validate({"metadata": metadata, "spec": spec})
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise CommandError(f"the Incident would be refused: {problems}", ExitCode.USAGE) from None
    # The metadata as given (no empty labels or finalizers); the status is the operator's.
    body = {key: value for key, value in incident.to_json().items() if key != "status"}
    return {**body, "metadata": metadata}


def spec_alias(attribute: str) -> str:
    """The spec's JSON name for a model attribute; a usage error when this API lacks it."""
    field = IncidentSpec.model_fields.get(attribute)
    if field is None:
        camel = attribute.split("_")[0] + "".join(p.title() for p in attribute.split("_")[1:])
        raise CommandError(f"this version of the Incident API has no spec.{camel}", ExitCode.USAGE)
    return field.alias or attribute


def appended(incident: Incident, attribute: str, value: dict[str, Any]) -> Patch:
    """Append one entry to a spec list (`/-`), or add the list when the body has none yet."""
    alias = spec_alias(attribute)
    if attribute in incident.spec.model_fields_set:
        return [{"op": "add", "path": f"/spec/{alias}/-", "value": value}]
    # Created without the list (the intake's bodies, old objects): add it whole. A
    # concurrent append makes this a replacement, which append-only refuses.
    return [{"op": "add", "path": f"/spec/{alias}", "value": [value]}]


def set_field(attribute: str, value: Any) -> Patch:
    """Set one spec field (`add` replaces a value that is there)."""
    return [{"op": "add", "path": f"/spec/{spec_alias(attribute)}", "value": value}]


def ack_patch(incident: Incident, comment: str | None) -> Patch:
    return appended(incident, "acknowledgements", Acknowledgement(comment=comment).to_json())


def note_patch(incident: Incident, text: str) -> Patch:
    return appended(incident, "notes", Note(text=text).to_json())


def reassign_patch(incident: Incident, service: str) -> Patch:
    """Move the incident to another service; the test fails a concurrent reassignment."""
    alias = spec_alias("service")
    return [
        {"op": "test", "path": f"/spec/{alias}", "value": incident.spec.service},
        {"op": "replace", "path": f"/spec/{alias}", "value": service},
    ]


def major_patch(freeze_changes: bool) -> Patch:
    patch = set_field("major", True)
    return patch + set_field("freeze_changes", True) if freeze_changes else patch


def resolve_patch(code: ResolutionCode, note: str) -> Patch:
    return set_field("resolution", Resolution(code=code, note=note).to_json())


def cause_patch(record: str) -> Patch:
    """Name the DeploymentRecord (one of status.suspectChanges) confirmed as the cause."""
    return set_field("caused_by", record)


def stamp(incident: Incident, attribute: str) -> str | None:
    """A spec field the webhook stamps (who named the commander, ...), where the API has it.

    Read by name: the stamps arrived with the webhook for Incidents, and the CLI
    must still read objects an older operator wrote without them."""
    value = getattr(incident.spec, attribute, None)
    return str(value) if value is not None else None


# -- what is shown ---------------------------------------------------------------------


def phase_of(incident: Incident) -> str:
    return incident.status.phase.value if incident.status.phase else UNKNOWN


def acknowledged_by(incident: Incident) -> str:
    """Who acknowledged it first: the operator's record, else the first stamped entry."""
    if incident.status.acknowledged_by:
        return incident.status.acknowledged_by
    users = [a.user for a in incident.spec.acknowledgements if a.user]
    return users[0] if users else UNKNOWN


def age_of(incident: Incident, now: datetime) -> str:
    created = incident.metadata.creation_timestamp
    return human_duration((now - created).total_seconds()) if created else UNKNOWN


def incident_row(incident: Incident, now: datetime, with_namespace: bool) -> list[str]:
    row = [
        incident.metadata.name or "",
        incident.spec.service,
        incident.spec.severity.value + (" (major)" if incident.spec.major else ""),
        phase_of(incident),
        age_of(incident, now),
        acknowledged_by(incident),
    ]
    return [incident.metadata.namespace or "", *row] if with_namespace else row


def incident_table(
    incidents: Sequence[Incident], now: datetime, with_namespace: bool = False
) -> list[str]:
    """The table `changegate incident list` prints, newest first."""
    headers = ("NAMESPACE", *COLUMNS) if with_namespace else COLUMNS
    ordered = sorted(
        incidents,
        key=lambda i: i.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    return format_table(headers, [incident_row(i, now, with_namespace) for i in ordered])


def dump_incidents(incidents: Sequence[Incident], fmt: OutputFormat) -> str:
    """A `v1` List, as `kubectl get -o` prints one."""
    document = {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": [i.to_json() for i in incidents],
    }
    return dump(document, fmt)


def field_line(label: str, value: str) -> str:
    return f"{label + ':':<{LABEL_WIDTH}}{value}"


def seconds_text(seconds: int | None) -> str:
    return human_duration(seconds) if seconds is not None else "-"


def describe_incident(incident: Incident) -> list[str]:
    """The human-readable page `changegate incident show NAME` prints."""
    return [
        *_headline(incident),
        *_people(incident),
        *_times(incident),
        *sync_lines(incident.status.sync, incident.status.external_ticket),
        *_sections(incident),
    ]


def _headline(incident: Incident) -> list[str]:
    spec = incident.spec
    major = "yes, changes frozen" if spec.freeze_changes else "yes" if spec.major else "no"
    lines = [
        field_line("Name", incident.metadata.name or ""),
        field_line("Namespace", incident.metadata.namespace or ""),
        field_line("Service", spec.service),
        field_line("Summary", spec.summary),
        field_line("Severity", spec.severity.value),
        field_line("Phase", phase_of(incident)),
        field_line("Major", major),
        field_line("Origin", spec.origin.value),
    ]
    if spec.description:
        lines.append(field_line("Description", spec.description))
    if spec.affected_services:
        lines.append(field_line("Also affects", ", ".join(spec.affected_services)))
    return lines


def by(incident: Incident, attribute: str, source: str | None = None) -> str:
    """` (by USER)` for a stamped act, or nothing before the webhook stamped it; an act made
    in PagerDuty or ServiceNow (`source`: the prefix of its via fields) names who made it there."""
    who = stamp(incident, attribute)
    if source and stamp(incident, f"{source}_via"):
        external = stamp(incident, f"{source}_external_user")
        who = actor(who, stamp(incident, f"{source}_via"), external)
    return f" (by {who})" if who else ""


def actor(user: str | None, via: str | None, external_user: str | None) -> str:
    """Who made an act: the stamped user, or `<externalUser> via PagerDuty` for a vendor's."""
    if via is None:
        return user or "?"
    return f"{external_user or 'someone'} via {via}"


def _people(incident: Incident) -> list[str]:
    spec = incident.spec
    assignee = f"{spec.assignee}{by(incident, 'assigned_by', 'assigned')}" if spec.assignee else "-"
    lines = [field_line("Assignee", assignee)]
    commander = stamp(incident, "commander")
    if commander:
        lines.append(field_line("Commander", commander + by(incident, "commander_assigned_by")))
    if stamp(incident, "reassigned_by"):
        moved = f"to {spec.service}{by(incident, 'reassigned_by', 'reassigned')}"
        lines.append(field_line("Reassigned", moved))
    cause = stamp(incident, "caused_by")
    if cause:
        lines.append(field_line("Caused by", cause + by(incident, "cause_confirmed_by")))
    if spec.resolution:
        res = spec.resolution
        who = actor(res.resolved_by, res.via, res.external_user) if res.resolved_by else None
        resolver = f" by {who}" if who else ""
        code = spec.resolution.code.value
        lines.append(field_line("Resolution", f"{code}{resolver}: {spec.resolution.note}"))
    ticket = incident.status.external_ticket
    if ticket:
        state = f", {ticket.state}" if ticket.state else ""
        synced = f", synced {timestamp(ticket.synced_time)}" if ticket.synced_time else ""
        lines.append(field_line("Ticket", f"{ticket.system.value} {ticket.id}{state}{synced}"))
    return lines


def _times(incident: Incident) -> list[str]:
    status = incident.status
    by = f" by {status.acknowledged_by}" if status.acknowledged_by else ""
    return [
        field_line("Triggered", timestamp(status.triggered_time)),
        field_line("Acknowledged", timestamp(status.acknowledged_time) + by),
        field_line("Resolved", timestamp(status.resolved_time)),
        field_line("To acknowledge", seconds_text(status.time_to_acknowledge_seconds)),
        field_line("To resolve", seconds_text(status.time_to_resolve_seconds)),
    ]


def _sections(incident: Incident) -> list[str]:
    spec, status = incident.spec, incident.status
    sections: list[tuple[str, list[str]]] = [
        (
            "Alerts",
            [
                f"{a.fingerprint} {a.name} {a.state.value}"
                f"{' ' + a.severity.value if a.severity else ''}, started {timestamp(a.start_time)}"
                f"{', ended ' + timestamp(a.end_time) if a.end_time else ''}"
                for a in status.alerts
            ],
        ),
        (
            "Suspect changes",
            [
                f"{s.name} finished {timestamp(s.finish_time)},"
                f" {human_duration(s.seconds_before)} before the alert"
                for s in status.suspect_changes
            ],
        ),
        (
            "Acknowledgements",
            [
                f"{timestamp(a.time)} {actor(a.user, a.via, a.external_user)}"
                f"{': ' + a.comment if a.comment else ''}"
                for a in spec.acknowledgements
            ],
        ),
        (
            "Notes",
            [
                f"{timestamp(n.time)} {actor(n.author, n.via, n.external_user)}: {n.text}"
                for n in spec.notes
            ],
        ),
        (
            "Pages",
            [
                f"{timestamp(p.time)} {p.channel.value} {p.user or '-'} step {p.escalation_step}:"
                f" {p.result.value}{' (' + p.message + ')' if p.message else ''}"
                for p in status.pages
            ],
        ),
        (
            "Timeline",
            [
                f"{timestamp(e.time)} {e.actor} {e.action}{': ' + e.message if e.message else ''}"
                for e in status.timeline
            ],
        ),
    ]
    return [line for title, lines in sections if lines for line in (f"{title}:", *_indent(lines))]


def _indent(lines: list[str]) -> list[str]:
    return [f"  {line}" for line in lines]


# -- the commands ----------------------------------------------------------------------


def incidents_of(connection: Connection) -> Incidents:
    """Incidents as the caller, written by the CLI's field manager."""
    return Incidents(connection.login.api, FIELD_MANAGER, print_warning)


def namespace_of(args: argparse.Namespace, connection: Connection) -> str:
    return str(args.namespace or connection.namespace)


def now() -> datetime:
    return datetime.now(UTC)


def declare(args: argparse.Namespace, connection: Connection) -> None:
    declaration = Declaration(
        namespace=namespace_of(args, connection),
        service=args.service,
        summary=args.summary,
        severity=args.severity,
        name=args.name,
        description=args.description,
        major=args.major,
    )
    created = incidents_of(connection).create(declared_incident(declaration))
    print(created.metadata.name, flush=True)


def list_incidents(args: argparse.Namespace, connection: Connection) -> None:
    scope = None if args.all_namespaces else namespace_of(args, connection)
    selected = [
        i
        for i in incidents_of(connection).find(scope)
        if (args.service is None or i.spec.service == args.service)
        and (not args.open or i.status.phase is not IncidentPhase.RESOLVED)
    ]
    if args.output:
        print(dump_incidents(selected, args.output))
    elif not selected:
        where = "any namespace" if scope is None else f"{scope} namespace"
        print(f"No incidents found in {where}.", file=sys.stderr)
    else:
        print("\n".join(incident_table(selected, now(), with_namespace=scope is None)))


def show(args: argparse.Namespace, connection: Connection) -> None:
    incident = incidents_of(connection).get(namespace_of(args, connection), args.name)
    if args.output:
        print(dump(incident.to_json(), args.output))
    else:
        print("\n".join(describe_incident(incident)))


def act(
    args: argparse.Namespace,
    connection: Connection,
    patch: Callable[[Incident], Patch],
    said: Callable[[Incident], str],
) -> None:
    """Read the incident, apply one patch, say what the API server recorded."""
    incidents = incidents_of(connection)
    incident = incidents.get(namespace_of(args, connection), args.name)
    patched = incidents.patch(incident, patch(incident))
    print(f"incident/{patched.metadata.name} {said(patched)}", flush=True)


def last_acknowledger(incident: Incident) -> str:
    entries = incident.spec.acknowledgements
    return (entries[-1].user or "you") if entries else "you"


def last_author(incident: Incident) -> str:
    entries = incident.spec.notes
    return (entries[-1].author or "you") if entries else "you"


def resolver(incident: Incident) -> str:
    resolution = incident.spec.resolution
    return (resolution.resolved_by if resolution else None) or "you"


def acknowledge(args: argparse.Namespace, connection: Connection) -> None:
    act(
        args,
        connection,
        lambda i: ack_patch(i, args.comment),
        lambda i: f"acknowledged by {last_acknowledger(i)}",
    )


def add_note(args: argparse.Namespace, connection: Connection) -> None:
    act(
        args,
        connection,
        lambda i: note_patch(i, args.text),
        lambda i: f"note added by {last_author(i)}",
    )


def assign(args: argparse.Namespace, connection: Connection) -> None:
    act(
        args,
        connection,
        lambda i: set_field("assignee", args.user),
        lambda i: f"assigned to {i.spec.assignee}{by(i, 'assigned_by')}",
    )


def name_commander(args: argparse.Namespace, connection: Connection) -> None:
    spec_alias("commander")  # refuse before reading anything when this API lacks it
    act(
        args,
        connection,
        lambda i: set_field("commander", args.user),
        lambda i: f"commander is {stamp(i, 'commander')}{by(i, 'commander_assigned_by')}",
    )


def reassign(args: argparse.Namespace, connection: Connection) -> None:
    act(
        args,
        connection,
        lambda i: reassign_patch(i, args.service),
        lambda i: f"reassigned to service {i.spec.service}{by(i, 'reassigned_by')}",
    )


def declare_major(args: argparse.Namespace, connection: Connection) -> None:
    frozen = ", changes frozen" if args.freeze_changes else ""
    act(
        args,
        connection,
        lambda i: major_patch(args.freeze_changes),
        lambda i: f"declared major{frozen}",
    )


def resolve(args: argparse.Namespace, connection: Connection) -> None:
    act(
        args,
        connection,
        lambda i: resolve_patch(args.code, args.note),
        lambda i: f"resolved ({args.code.value}) by {resolver(i)}",
    )


def confirm_cause(args: argparse.Namespace, connection: Connection) -> None:
    spec_alias("caused_by")
    act(
        args,
        connection,
        lambda i: cause_patch(args.record),
        lambda i: f"caused by {stamp(i, 'caused_by')}{by(i, 'cause_confirmed_by')}",
    )


ACTIONS: dict[str, Callable[[argparse.Namespace, Connection], None]] = {
    "declare": declare,
    "list": list_incidents,
    "show": show,
    "ack": acknowledge,
    "note": add_note,
    "assign": assign,
    "commander": name_commander,
    "reassign": reassign,
    "major": declare_major,
    "resolve": resolve,
    "cause": confirm_cause,
}


def run_incident(args: argparse.Namespace, connection: Connection) -> None:
    """`changegate incident ACTION ...`"""
    ACTIONS[args.action](args, connection)
