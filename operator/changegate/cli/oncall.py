"""`changegate oncall [SERVICE] [--at TIME] [--next N]`: who is on call, and until when.

Reads ServiceOnCalls (every namespace's, or those of -n; all, or one service's) and asks the pure on-call core, not the status the controller
wrote, so any instant can be asked about. Nobody on call is printed as such,
with the core's reason, never as an empty cell.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from changegate.adapters.kube import ServiceOnCalls
from changegate.api.v1alpha1 import ServiceOnCall
from changegate.cli.cluster import FIELD_MANAGER, Connection, print_warning
from changegate.cli.draft import parse_time
from changegate.cli.errors import CommandError
from changegate.cli.formats import dump
from changegate.cli.summary import timestamp
from changegate.cli.table import format_table
from changegate.core.oncall.schedule import OnCallAnswer, service_schedule, upcoming
from changegate.core.oncall.wallclock import ScheduleError

COLUMNS = ("SERVICE", "NAMESPACE", "ON CALL", "FROM", "UNTIL", "WHY")
NOBODY = "nobody"


@dataclass(frozen=True, slots=True)
class ServiceShifts:
    """One service's answers from the instant asked about: now, then the next shifts."""

    service: str
    namespace: str
    shifts: tuple[OnCallAnswer, ...]
    error: str | None = None  # the schedule cannot be evaluated (an unknown time zone)


def shifts_of(service_on_call: ServiceOnCall, at: datetime, following: int) -> ServiceShifts:
    """Who is on call at `at` and in the `following` shifts after it, by the pure core."""
    service = service_on_call.spec.service.name
    namespace = service_on_call.metadata.namespace or ""
    try:
        schedule = service_schedule(service_on_call.spec.on_call)
        answers = upcoming(schedule, at, 1 + following)
    except ScheduleError as error:
        return ServiceShifts(service, namespace, (), f"cannot evaluate its schedule: {error}")
    return ServiceShifts(service, namespace, answers)


def people(answer: OnCallAnswer) -> str:
    return ", ".join(answer.users) if not answer.nobody else NOBODY


def until_text(answer: OnCallAnswer) -> str:
    return timestamp(answer.until) if answer.until else "for good"


def shift_rows(found: ServiceShifts) -> list[list[str]]:
    if found.error:
        return [[found.service, found.namespace, NOBODY, "-", "-", found.error]]
    return [
        [
            found.service,
            found.namespace,
            people(answer),
            timestamp(answer.at),
            until_text(answer),
            answer.message,
        ]
        for answer in found.shifts
    ]


def on_call_table(services: Sequence[ServiceShifts]) -> list[str]:
    """One row per shift, services by name: the first row of each is the instant asked about."""
    ordered = sorted(services, key=lambda s: (s.service, s.namespace))
    return format_table(COLUMNS, [row for found in ordered for row in shift_rows(found)])


def answer_document(answer: OnCallAnswer) -> dict[str, Any]:
    return {
        "from": timestamp(answer.at),
        "until": timestamp(answer.until) if answer.until else None,
        "nobody": answer.nobody,
        "reason": answer.reason.value,
        "message": answer.message,
        "onCall": [
            {
                key: value
                for key, value in {
                    "user": entry.user,
                    "source": entry.source.value,
                    "rotation": entry.rotation,
                    "replaces": entry.replaces,
                }.items()
                if value is not None
            }
            for entry in answer.entries
        ],
    }


def on_call_document(services: Sequence[ServiceShifts], at: datetime) -> dict[str, Any]:
    """What -o json|yaml prints: the instant asked about, and each service's shifts."""
    items: list[dict[str, Any]] = []
    for found in sorted(services, key=lambda s: (s.service, s.namespace)):
        item: dict[str, Any] = {"service": found.service, "namespace": found.namespace}
        if found.error:
            item["error"] = found.error
        item["shifts"] = [answer_document(a) for a in found.shifts]
        items.append(item)
    return {"at": timestamp(at), "items": items}


def instant(args: argparse.Namespace) -> datetime:
    return parse_time(args.at, "--at") if args.at else datetime.now(UTC)


def on_call_reader(connection: Connection) -> ServiceOnCalls:
    """ServiceOnCalls as the caller."""
    return ServiceOnCalls(connection.login.api, FIELD_MANAGER, print_warning)


def service_on_calls(args: argparse.Namespace, connection: Connection) -> list[ServiceOnCall]:
    """The ServiceOnCalls asked about: every namespace's, or only those of -n when given
    (a product team may read only its own namespaces)."""
    reader = on_call_reader(connection)
    scope = args.namespace or None
    if args.service:
        found = reader.of_service(args.service, scope)
        if not found:
            raise CommandError(f"no ServiceOnCall declares the service {args.service!r}")
        return found
    return reader.find(scope)


def show_on_call(args: argparse.Namespace, connection: Connection) -> None:
    """`changegate oncall`"""
    at = instant(args)
    services = [shifts_of(s, at, args.next) for s in service_on_calls(args, connection)]
    if args.output:
        print(dump(on_call_document(services, at), args.output))
    elif not services:
        print("No ServiceOnCalls found.", file=sys.stderr)
    else:
        print("\n".join(on_call_table(services)))
