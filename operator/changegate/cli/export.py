"""`changegate report export` and `changegate report verify`: tamper-evident evidence.

Export: DeploymentRecords and ChangeRequests of a period as JSON Lines with a
running SHA-256 (core/change/hashchain.py). Verify: an exported file line by line,
or, without a file, every service's chain of DeploymentRecords in the cluster. Read
as the caller (the auditor role is enough); both join `changegate report`'s actions
when this module is imported.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any

from pydantic import RootModel

from changegate.adapters.kube import ObjectPages
from changegate.cli.cluster import Connection
from changegate.cli.errors import CommandError, ExitCode
from changegate.cli.report import REPORT_ACTIONS, now, period_of
from changegate.core.change.hashchain import (
    HASH_FIELD,
    chain_breaks,
    export_breaks,
    export_lines,
)
from changegate.core.common import parse_time, timestamp

# Metadata an export keeps: what identifies the object and what the operator marked on it.
KEPT_METADATA = ("name", "namespace", "uid", "creationTimestamp", "labels", "annotations")
SHOWN_BREAKS = 50


class RawObject(RootModel[dict[str, Any]]):
    """An object as the API server stores it: the hashes are over exactly that."""


# -- export ---------------------------------------------------------------------------


def raw_objects(connection: Connection, plural: str) -> Iterator[dict[str, Any]]:
    """Every object of a kind, a page at a time, exactly as stored."""
    for page in ObjectPages(connection.login.api).pages(plural, dict):
        yield from page.items


def kept(body: dict[str, Any]) -> dict[str, Any]:
    """The object as exported: kind, identifying metadata, spec and status."""
    metadata = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {k: metadata[k] for k in KEPT_METADATA if k in metadata},
        "spec": body.get("spec") or {},
        "status": body.get("status") or {},
    }


def _within(moment: str | None, since: datetime, until: datetime) -> bool:
    parsed = parse_time(moment)
    return parsed is not None and since <= parsed < until


def _in_scope(body: dict[str, Any], args: argparse.Namespace) -> bool:
    spec, metadata = body.get("spec") or {}, body.get("metadata") or {}
    namespace = spec.get("namespace") or metadata.get("namespace")
    return (not args.service or spec.get("service") in args.service) and (
        not args.namespaces or namespace in args.namespaces
    )


def exported_objects(
    connection: Connection, args: argparse.Namespace, since: datetime, until: datetime
) -> list[dict[str, Any]]:
    """Records that finished in the period, then changes raised in it, each in a fixed order."""
    records = [
        kept(b)
        for b in raw_objects(connection, "deploymentrecords")
        if _within((b.get("spec") or {}).get("finishTime"), since, until) and _in_scope(b, args)
    ]
    records.sort(key=lambda b: (b["spec"].get("finishTime", ""), b["metadata"].get("name", "")))
    changes = [
        kept(b)
        for b in raw_objects(connection, "changerequests")
        if _within((b.get("metadata") or {}).get("creationTimestamp"), since, until)
        and _in_scope(b, args)
    ]
    changes.sort(
        key=lambda b: tuple(
            b["metadata"].get(k, "") for k in ("creationTimestamp", "namespace", "name")
        )
    )
    return records + changes


@contextmanager
def output(path: str | None) -> Iterator[IO[str]]:
    if path is None or path == "-":
        yield sys.stdout
        return
    try:
        with open(path, "w", encoding="utf-8") as stream:
            yield stream
    except OSError as error:
        raise CommandError(f"-f {path}: {error}", ExitCode.USAGE) from None


def export_evidence(args: argparse.Namespace, connection: Connection) -> None:
    period = period_of(args, now())
    objects = exported_objects(connection, args, period.since, period.until)
    header = {
        "since": timestamp(period.since),
        "until": timestamp(period.until),
        "exportedAt": timestamp(now()),
    }
    last = ""
    with output(args.file) as stream:
        for line in export_lines(header, objects):
            stream.write(line + "\n")
            last = line
    digest = RawObject.model_validate_json(last).root[HASH_FIELD]
    print(
        f"exported {len(objects)} objects; last sha256 {digest} (keep it elsewhere:"
        " `changegate report verify FILE --expect` it)",
        file=sys.stderr,
    )


# -- verify ---------------------------------------------------------------------------


def read_lines(path: str) -> list[str]:
    try:
        if path == "-":
            return sys.stdin.read().splitlines()
        with open(path, encoding="utf-8") as stream:
            return stream.read().splitlines()
    except OSError as error:
        raise CommandError(f"{path}: {error}", ExitCode.USAGE) from None


def report_breaks(breaks: Iterable[object], what: str) -> None:
    """Print the breaks (or that there are none); a break is a failure for pipelines."""
    found = [str(b) for b in breaks]
    if not found:
        print(f"{what}: verified, nothing edited, removed, inserted or reordered")
        return
    for line in found[:SHOWN_BREAKS]:
        print(line)
    if len(found) > SHOWN_BREAKS:
        print(f"... and {len(found) - SHOWN_BREAKS} more")
    raise CommandError(f"{what} does not verify: {len(found)} break(s)", ExitCode.TAMPERED)


def verify_evidence(args: argparse.Namespace, connection: Connection) -> None:
    if args.file:
        report_breaks(export_breaks(read_lines(args.file), args.expect), args.file)
        return
    if args.expect:
        raise CommandError("--expect checks an exported file: name the FILE", ExitCode.USAGE)
    records = raw_objects(connection, "deploymentrecords")
    report_breaks(chain_breaks(records), "the DeploymentRecord chains")


REPORT_ACTIONS.update({"export": export_evidence, "verify": verify_evidence})
