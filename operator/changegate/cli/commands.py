"""What each command does, and `main`, which runs one and turns failures into exit codes.

The parsed flags become typed options here; pure builders (draft, table,
summary) shape the objects and text; ChangeRequests talks to the cluster.
Expected failures print `error: ...` to stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import yaml

from changegate.adapters.kube import ChangeRequests
from changegate.api.v1alpha1 import Approval, ApprovalDecision, ChangeRequest
from changegate.cli import export  # noqa: F401  (its import adds `report export|verify`)
from changegate.cli.cluster import Connection, append_approval, cancel, cluster_errors
from changegate.cli.draft import (
    RequestOptions,
    TargetRef,
    draft_change,
    manifest,
    parse_image,
    parse_time,
)
from changegate.cli.errors import CommandError, ExitCode
from changegate.cli.formats import OutputFormat, dump, dump_change, dump_changes
from changegate.cli.incidents import run_incident
from changegate.cli.manifest import manifest_namespace, manifest_targets
from changegate.cli.oncall import show_on_call
from changegate.cli.parser import build_parser
from changegate.cli.pipeline import (
    SourceHints,
    detect_source,
    read_git_commit_time,
    with_commit_time,
)
from changegate.cli.progress import follow
from changegate.cli.report import run_report
from changegate.cli.review import review_change
from changegate.cli.summary import describe_change
from changegate.cli.table import change_table


def read_manifest(source: str) -> list[Any]:
    """The YAML documents of --from-file (a path, or - for stdin)."""
    try:
        if source == "-":
            return list(yaml.safe_load_all(sys.stdin))
        with open(source, encoding="utf-8") as stream:
            return list(yaml.safe_load_all(stream))
    except (OSError, yaml.YAMLError) as error:
        raise CommandError(f"--from-file {source}: {error}", ExitCode.USAGE) from None


def request_options(
    args: argparse.Namespace, namespace: str, documents: list[Any] | None = None
) -> RequestOptions:
    """The request's flags as typed options, CI hints filling unset source flags."""
    flags = SourceHints(
        repository=args.repository,
        commit=args.commit,
        commit_time=args.commit_time,
        branch=args.branch,
        pull_request=args.pull_request,
        pipeline_run=args.pipeline_run,
    )
    return RequestOptions(
        namespace=namespace,
        service=args.service,
        change_type=args.change_type,
        targets=tuple(TargetRef.parse(t) for t in args.targets),
        images=tuple(parse_image(i) for i in args.images),
        name=args.name,
        template=args.template,
        summary=args.summary,
        description=args.description,
        risk=args.risk,
        impact=args.impact,
        backout_plan=args.backout_plan,
        emergency_reason=args.emergency_reason,
        window_start=parse_time(args.window_start, "--window-start") if args.window_start else None,
        window_end=parse_time(args.window_end, "--window-end") if args.window_end else None,
        source=with_commit_time(flags.over(detect_source(os.environ)), read_git_commit_time),
        declared=manifest_targets(documents, args.from_file) if documents is not None else (),
    )


def follow_if_asked(
    args: argparse.Namespace, changes: ChangeRequests, change: ChangeRequest
) -> ChangeRequest:
    if not args.wait:
        return change
    return follow(changes, change, args.until, args.timeout)


def request_change(args: argparse.Namespace, connection: Connection) -> None:
    documents = read_manifest(args.from_file) if args.from_file else None
    namespace = chosen_namespace(args, connection)
    if documents is not None and not args.namespace:
        namespace = manifest_namespace(documents) or namespace
    draft = draft_change(request_options(args, namespace, documents), now())
    if args.dry_run:
        print(dump(manifest(draft), OutputFormat.YAML))
        return
    changes = connection.changes()
    created = changes.create(manifest(draft))
    print(created.metadata.name, flush=True)
    follow_if_asked(args, changes, created)


def decide_change(
    args: argparse.Namespace, connection: Connection, decision: ApprovalDecision
) -> None:
    changes = connection.changes()
    change = changes.get(chosen_namespace(args, connection), args.name)
    approval = Approval(decision=decision, comment=args.comment)
    decided = append_approval(changes, change, approval)
    recorded = decided.spec.approvals[-1] if decided.spec.approvals else approval
    verb = "approved" if decision is ApprovalDecision.APPROVED else "rejected"
    print(
        f"changerequest/{decided.metadata.name} {verb} by {recorded.approver or 'you'}", flush=True
    )
    if decision is ApprovalDecision.APPROVED:
        follow_if_asked(args, changes, decided)


def approve_change(args: argparse.Namespace, connection: Connection) -> None:
    decide_change(args, connection, ApprovalDecision.APPROVED)


def reject_change(args: argparse.Namespace, connection: Connection) -> None:
    decide_change(args, connection, ApprovalDecision.REJECTED)


def cancel_change(args: argparse.Namespace, connection: Connection) -> None:
    changes = connection.changes()
    change = changes.get(chosen_namespace(args, connection), args.name)
    cancelled = cancel(changes, change)
    print(f"changerequest/{cancelled.metadata.name} cancelled")


def show_change(args: argparse.Namespace, connection: Connection) -> None:
    changes = connection.changes()
    change = follow_if_asked(
        args, changes, changes.get(chosen_namespace(args, connection), args.name)
    )
    print(dump_change(change, args.output) if args.output else "\n".join(describe_change(change)))


def list_changes(args: argparse.Namespace, connection: Connection) -> None:
    scope = None if args.all_namespaces else chosen_namespace(args, connection)
    found = connection.changes().find(scope)
    selected = [
        c
        for c in found
        if (args.service is None or c.spec.service == args.service)
        and (args.phase is None or c.status.phase is args.phase)
    ]
    if args.output:
        print(dump_changes(selected, args.output))
    elif not selected:
        where = "any namespace" if scope is None else f"{scope} namespace"
        print(f"No changes found in {where}.", file=sys.stderr)
    else:
        print("\n".join(change_table(selected, now(), with_namespace=scope is None)))


COMMANDS: dict[str, Callable[[argparse.Namespace, Connection], None]] = {
    "request": request_change,
    "approve": approve_change,
    "reject": reject_change,
    "cancel": cancel_change,
    "status": show_change,
    "list": list_changes,
    "incident": run_incident,
    "oncall": show_on_call,
    "report": run_report,
    "review": review_change,
}


def chosen_namespace(args: argparse.Namespace, connection: Connection) -> str:
    return str(args.namespace or connection.namespace)


def now() -> datetime:
    return datetime.now(UTC)


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        with cluster_errors():
            COMMANDS[args.command](args, Connection(args.kubeconfig, args.context))
    except CommandError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return int(error.code)
    except KeyboardInterrupt:
        return 130
    return int(ExitCode.OK)
