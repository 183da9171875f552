"""`python -m bench.report_profile`: the reports' reading path, in process, under cProfile.

The same DeploymentRecords and ChangeRequests as `make bench-report`, stamped as
the API server returns them (uid, resourceVersion, managedFields) and written as
list pages to files once (in a child process, so its memory does not count).
Then `report compliance` or `report dora` runs as the CLI does, each page read
from its file where the API server would have served it. Prints wall and CPU time and
peak RSS, and with --profile the top of the profile: where to look before
loading a control plane for `make bench-report`. Not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any
from unittest import mock

from bench.report import YEAR, change_request, deployment_record, served, stamp
from changegate.adapters.kube import ObjectPages
from changegate.cli.parser import build_parser
from changegate.cli.report import EMERGENCIES, PAGE_SIZE, run_report

UNTIL = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
CREATED = UNTIL - datetime.timedelta(days=1)
KINDS = {"changerequests": change_request, "deploymentrecords": deployment_record}


def write_pages(directory: Path, count: int) -> None:
    """Each kind's list in pages, and the ChangeRequests' list filtered by type Emergency
    (the field selector `report dora` asks for) in pages of its own."""
    start = UNTIL - YEAR
    for plural, make in KINDS.items():
        items = [served(make(i, count, start), i, CREATED) for i in range(count)]
        for serial, item in enumerate(items):
            item["metadata"]["resourceVersion"] = str(1000 + serial)
        write_list(directory, plural, items)
        if plural == "changerequests":
            chosen = [i for i in items if i["spec"]["type"] == "Emergency"]
            write_list(directory, f"{plural}-{EMERGENCIES}", chosen)


def write_list(directory: Path, name: str, items: list[dict[str, Any]]) -> None:
    for first in range(0, len(items), PAGE_SIZE):
        last = min(len(items), first + PAGE_SIZE)
        metadata: dict[str, Any] = {"resourceVersion": "9"}
        if last < len(items):
            metadata |= {"continue": str(last), "remainingItemCount": len(items) - last}
        page = {"apiVersion": "changegate.io/v1alpha1", "kind": "List",
                "items": items[first:last], "metadata": metadata}  # fmt: skip
        (directory / f"{name}-{first}.json").write_text(json.dumps(page))


def fetch_from(directory: Path) -> Any:
    def fetch(
        _: ObjectPages, plural: str, namespace: str | None, selector: str | None, token: str | None
    ) -> bytes:
        name = f"{plural}-{selector}" if selector else plural
        path = directory / f"{name}-{token or 0}.json"
        return path.read_bytes() if path.exists() else b'{"items": [], "metadata": {}}'

    return fetch


def run(action: str, directory: Path) -> int:
    """The report as `changegate report ACTION -o json` for the year, printed to a file
    as the CLI would to a pipe; the size of its output."""
    args = build_parser().parse_args(
        ["report", action, "--since", stamp(UNTIL - YEAR), "--until", stamp(UNTIL), "-o", "json"]
    )
    with tempfile.TemporaryFile("w+") as out:
        with mock.patch.object(ObjectPages, "_fetch", fetch_from(directory)), redirect_stdout(out):
            run_report(args, mock.MagicMock())
        return out.tell()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report_profile", description=__doc__)
    parser.add_argument("action", choices=["compliance", "dora"])
    parser.add_argument("--records", type=int, default=100_000, help="of each kind")
    parser.add_argument("--pages", type=Path, default=Path("/tmp/changegate-report-pages"))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    directory = args.pages / str(args.records)
    if args.write:
        directory.mkdir(parents=True, exist_ok=True)
        write_pages(directory, args.records)
        return 0
    if not directory.exists():
        command = [sys.executable, "-m", "bench.report_profile", args.action, "--write"]
        subprocess.run([*command, "--records", str(args.records), "--pages", str(args.pages)],
                       check=True)  # fmt: skip
    profile = cProfile.Profile() if args.profile else None
    began, cpu = time.monotonic(), time.process_time()
    if profile:
        profile.enable()
    size = run(args.action, directory)
    if profile:
        profile.disable()
    seconds, cpu = time.monotonic() - began, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"report {args.action}: {seconds:.2f} s ({cpu:.2f} s CPU), {peak:.0f} MiB peak,"
        f" {size:,} characters out"
    )
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
