"""The command line: `changegate request|approve|...|incident|oncall|report|review`.

argparse only. Connection flags (--kubeconfig, --context, -n) are accepted
before or after the command, as kubectl accepts them, because `kubectl
changegate ...` hands every argument after the plugin's name to us.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

from changegate.api.v1alpha1 import ChangePhase, ChangeType, Level, ResolutionCode, Severity
from changegate.cli.formats import OutputFormat
from changegate.cli.progress import AWAITABLE
from changegate.cli.report_text import ReportFormat

E = TypeVar("E", bound=StrEnum)

DESCRIPTION = """\
Raise, approve and follow changegate ChangeRequests, act on Incidents and see who
is on call, as yourself (your kubeconfig identity). Also installed as kubectl-changegate, so `kubectl changegate ...` works."""

EPILOG = """\
exit codes: 0 ok, 1 refused by the API server or unreachable, 2 bad usage,
3 the change ended Failed, Rejected, Cancelled or Expired, 4 --wait timed out,
5 report verify found the evidence edited, removed, inserted or reordered"""

REQUEST_EPILOG = """\
Unset source flags are read from the CI environment: GitHub Actions
(GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_SHA, GITHUB_RUN_ID, GITHUB_REF),
GitLab CI (CI_PROJECT_URL, CI_COMMIT_SHA, CI_COMMIT_TIMESTAMP, CI_PIPELINE_URL),
Azure Pipelines, Bitbucket Pipelines, CircleCI and Jenkins (GIT_URL, GIT_COMMIT,
BUILD_URL). Without a commit time, the checkout's git history is asked for it.

example:
  changegate request --service payments-api --target deployment/payments-api \\
      --image api=registry.example.com/payments/api:1.4.2 --wait --until Approved"""

# A person ends an incident with one of these; AutoResolved is the intake's.
PERSON_CODES = tuple(c for c in ResolutionCode if c is not ResolutionCode.AUTO_RESOLVED)

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `15m`, `2h` or `1h30m`."""
    if text.isdigit():
        return float(text)
    match = _DURATION.match(text)
    if not text or match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 15m or 1h30m")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return float(hours * 3600 + minutes * 60 + seconds)


def enum_parser(enum: type[E], allowed: tuple[E, ...] = ()) -> Callable[[str], E]:
    """A case-insensitive argparse type for a StrEnum: `normal` means Normal."""
    members = allowed or tuple(enum)
    by_name = {member.value.lower(): member for member in members}

    def parse(text: str) -> E:
        try:
            return by_name[text.lower()]
        except KeyError:
            choices = ", ".join(member.value for member in members)
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {choices}") from None

    parse.__name__ = enum.__name__
    return parse


def add_connection_flags(parser: argparse.ArgumentParser, inherit: bool) -> None:
    """--kubeconfig, --context, -n; on a command they only override when given."""
    default = argparse.SUPPRESS if inherit else None
    parser.add_argument(
        "--kubeconfig",
        default=default,
        help="kubeconfig file (default: KUBECONFIG, ~/.kube/config)",
    )
    parser.add_argument("--context", default=default, help="kubeconfig context to use")
    parser.add_argument(
        "-n", "--namespace", default=default, help="namespace (default: the context's namespace)"
    )


def add_wait_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait", action="store_true", help="show progress until the change settles"
    )
    parser.add_argument(
        "--until",
        type=enum_parser(ChangePhase, AWAITABLE),
        default=ChangePhase.COMPLETED,
        metavar="PHASE",
        help="with --wait, stop once the change is Approved, InProgress or Completed"
        " (default: Completed; a change that ends Failed, Rejected, Cancelled or Expired"
        " always stops the wait)",
    )
    parser.add_argument(
        "--timeout",
        type=parse_duration,
        default=parse_duration("30m"),
        help="with --wait, give up after this long, for example 90s, 15m, 2h (default: 30m)",
    )


def add_output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        type=OutputFormat,
        choices=list(OutputFormat),
        help="print the object(s) as json or yaml instead of text",
    )


def add_request_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    request = commands.add_parser(
        "request",
        help="raise a ChangeRequest (prints its name)",
        description="Raise a ChangeRequest; print its name on stdout.",
        epilog=REQUEST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_flags(request, inherit=True)
    request.add_argument("--service", required=True, help="the service (its ServiceOnCall)")
    request.add_argument(
        "--target",
        dest="targets",
        action="append",
        default=[],
        metavar="KIND/NAME",
        help="workload to change, repeatable: deployment, statefulset, daemonset, pod,"
        " replicaset, job or cronjob; KIND defaults to deployment"
        " (default: deployment/<service>)",
    )
    request.add_argument(
        "--image",
        dest="images",
        action="append",
        default=[],
        metavar="CONTAINER=IMAGE",
        help="image a container must run, repeatable; applies to every target",
    )
    request.add_argument(
        "--type",
        dest="change_type",
        type=enum_parser(ChangeType),
        default=ChangeType.NORMAL,
        metavar="TYPE",
        help="Standard, Normal or Emergency (default: Normal)",
    )
    request.add_argument(
        "--from-file",
        metavar="MANIFEST",
        help="the manifest the pipeline applies (YAML, - for stdin): its workloads become the"
        " targets, with every image and the pod template's hash, so the change covers"
        " exactly that template",
    )
    request.add_argument("--template", help="the ChangeTemplate a Standard change follows")
    request.add_argument("--emergency-reason", help="why an Emergency change cannot wait")
    request.add_argument("--name", help="name of the ChangeRequest (default: <service>-<commit>)")
    request.add_argument("--summary", help="one line saying what changes (default: derived)")
    request.add_argument("--description", help="what changes and why")
    request.add_argument(
        "--risk", type=enum_parser(Level), metavar="LEVEL", help="Low, Medium or High"
    )
    request.add_argument(
        "--impact", type=enum_parser(Level), metavar="LEVEL", help="Low, Medium or High"
    )
    request.add_argument("--backout-plan", help="how the change is undone if it fails")
    request.add_argument("--repository", help="source repository URL")
    request.add_argument("--commit", help="commit SHA")
    request.add_argument("--commit-time", help="commit time (RFC 3339); starts the lead time")
    request.add_argument("--branch", help="branch or tag the commit was built from")
    request.add_argument("--pull-request", help="link to the reviewed pull request")
    request.add_argument("--pipeline-run", help="link to the pipeline run")
    request.add_argument("--window-start", metavar="TIME", help="window opens (RFC 3339)")
    request.add_argument(
        "--window-end", metavar="TIME", help="window closes (RFC 3339); alone, it opens now"
    )
    request.add_argument(
        "--dry-run", action="store_true", help="print the ChangeRequest as YAML; create nothing"
    )
    add_wait_flags(request)


def add_decision_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    approve = commands.add_parser("approve", help="approve a change as yourself")
    add_connection_flags(approve, inherit=True)
    approve.add_argument("name", help="the ChangeRequest")
    approve.add_argument("--comment", help="why")
    add_wait_flags(approve)

    reject = commands.add_parser("reject", help="reject a change as yourself (says why)")
    add_connection_flags(reject, inherit=True)
    reject.add_argument("name", help="the ChangeRequest")
    reject.add_argument("--comment", required=True, help="why it is rejected (required)")

    cancel = commands.add_parser("cancel", help="cancel a change before it rolls out")
    add_connection_flags(cancel, inherit=True)
    cancel.add_argument("name", help="the ChangeRequest")


def add_reading_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser("status", help="show one change: phase, approvals, rollouts")
    add_connection_flags(status, inherit=True)
    status.add_argument("name", help="the ChangeRequest")
    add_output_flag(status)
    add_wait_flags(status)

    listing = commands.add_parser("list", help="list changes as a table")
    add_connection_flags(listing, inherit=True)
    listing.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list changes in every namespace"
    )
    listing.add_argument("--service", help="only changes of this service")
    listing.add_argument(
        "--phase",
        type=enum_parser(ChangePhase),
        metavar="PHASE",
        help="only changes in this phase (Pending, Approved, InProgress, Completed, ...)",
    )
    add_output_flag(listing)


def count(text: str) -> int:
    """A whole number of at least 0, for --next."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number such as 3")
    return int(text)


def add_incident_action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    """One `changegate incident ACTION NAME` command: connection flags and the Incident."""
    action = actions.add_parser(name, help=help_text, description=help_text)
    add_connection_flags(action, inherit=True)
    action.add_argument("name", help="the Incident")
    return action


def add_incident_reading(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    declare = actions.add_parser(
        "declare",
        help="open an Incident by hand (prints its name)",
        description="Open an Incident by hand; print its name on stdout.",
    )
    add_connection_flags(declare, inherit=True)
    declare.add_argument("--service", required=True, help="the service (its ServiceOnCall)")
    declare.add_argument("--summary", required=True, help="one line saying what is wrong")
    declare.add_argument(
        "--severity",
        type=enum_parser(Severity),
        required=True,
        metavar="SEVERITY",
        help="Critical, High, Medium or Low",
    )
    declare.add_argument("--description", help="what is known so far")
    declare.add_argument("--major", action="store_true", help="declare it major at once")
    declare.add_argument("--name", help="name of the Incident (default: <service>-<random>)")

    listing = actions.add_parser("list", help="list incidents as a table, newest first")
    add_connection_flags(listing, inherit=True)
    listing.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list incidents in every namespace"
    )
    listing.add_argument("--service", help="only incidents of this service")
    listing.add_argument("--open", action="store_true", help="only incidents not yet resolved")
    add_output_flag(listing)

    show = add_incident_action(
        actions, "show", "show one incident: alerts, pages, suspects, timeline, times"
    )
    add_output_flag(show)


def add_incident_actions(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ack = add_incident_action(actions, "ack", "acknowledge an incident as yourself")
    ack.add_argument("--comment", help="what you are doing about it")
    note = add_incident_action(actions, "note", "add a note to an incident as yourself")
    note.add_argument("text", help="the note")
    assign = add_incident_action(actions, "assign", "name who works on an incident")
    assign.add_argument("user", help="user name of the assignee")
    commander = add_incident_action(actions, "commander", "name an incident's commander")
    commander.add_argument("user", help="user name of the incident commander")
    reassign = add_incident_action(actions, "reassign", "hand an incident to another service")
    reassign.add_argument("service", help="the service (its ServiceOnCall) that owns it now")
    major = add_incident_action(actions, "major", "declare an incident major")
    major.add_argument(
        "--freeze-changes",
        action="store_true",
        help="also refuse Normal and Standard rollouts of the affected services while it is open",
    )
    resolve = add_incident_action(actions, "resolve", "resolve an incident as yourself")
    resolve.add_argument(
        "--code",
        type=enum_parser(ResolutionCode, PERSON_CODES),
        required=True,
        metavar="CODE",
        help="Fixed, Workaround, NoActionNeeded or Duplicate",
    )
    resolve.add_argument("--note", required=True, help="what was done, for the record")
    cause = add_incident_action(
        actions, "cause", "confirm a suspect change (a DeploymentRecord) as the cause"
    )
    cause.add_argument("record", help="the DeploymentRecord")


def add_incident_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    incident = commands.add_parser(
        "incident",
        help="declare, list, show and act on incidents",
        description="Declare, list, show and act on Incidents as yourself; the webhook"
        " records who did what.",
    )
    add_connection_flags(incident, inherit=True)
    actions = incident.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_incident_reading(actions)
    add_incident_actions(actions)


def add_oncall_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    oncall = commands.add_parser(
        "oncall",
        help="who is on call, and until when",
        description="Who is on call for each service (or one) at an instant, until when,"
        " and the next shifts, worked out from each ServiceOnCall's schedule.",
    )
    add_connection_flags(oncall, inherit=True)
    oncall.add_argument("service", nargs="?", help="only this service (any namespace)")
    oncall.add_argument("--at", metavar="TIME", help="the instant (RFC 3339; default: now)")
    oncall.add_argument("--next", type=count, default=0, metavar="N", help="also the next N shifts")
    add_output_flag(oncall)


REPORT_EPILOG = """\
--since and --until take RFC 3339 times (2025-01-01T00:00:00Z), dates (2025-01-01),
or a span back from now (30d, 12w, 24h). By default the report covers the last 30
days, production only (--environment names another).

examples:
  changegate report compliance --since 2025-01-01 --until 2025-04-01 -o csv
  changegate report dora --since 365d --service payments-api -o markdown"""


def add_report_action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    """One action of `changegate report`, with the period and scope flags every report takes;
    modules that add an action (export, verify, ...) call this from add_report_commands."""
    action = actions.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=REPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    action.add_argument("--since", metavar="TIME", help="start of the period (default: 30d)")
    action.add_argument("--until", metavar="TIME", help="end of the period (default: now)")
    action.add_argument(
        "--service", action="append", metavar="NAME", help="only this service (repeatable)"
    )
    action.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        metavar="NAME",
        help="only this namespace (repeatable); a product team names its own",
    )
    action.add_argument(
        "--environment", metavar="NAME", help="this environment instead of production"
    )
    return action


def add_report_output_flag(action: argparse.ArgumentParser) -> None:
    action.add_argument(
        "-o",
        "--output",
        type=ReportFormat,
        choices=list(ReportFormat),
        default=ReportFormat.TABLE,
        help="table (default), json, csv, markdown, or html (a self-contained page with charts)",
    )


def add_report_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="compliance evidence and DORA figures over a period",
        description="Reports for change managers and auditors, read as yourself (the"
        " chart's auditor role is enough; a product team sees its own namespaces).",
    )
    add_connection_flags(report, inherit=True)
    actions = report.add_subparsers(dest="action", required=True, metavar="ACTION")
    compliance = add_report_action(
        actions,
        "compliance",
        "every production rollout with its change, approvers and commit; exceptions;"
        " what runs where",
    )
    add_report_output_flag(compliance)
    dora = add_report_action(
        actions, "dora", "the DORA figures per service and for all of them together"
    )
    dora.add_argument(
        "--horizon",
        type=parse_duration,
        default=parse_duration("24h"),
        help="a rollback or emergency fix this soon after a deployment marks it failed"
        " (default: 24h)",
    )
    add_report_output_flag(dora)
    add_evidence_actions(actions)


def add_evidence_actions(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`report export` and `report verify`: tamper-evident evidence (cli/export.py)."""
    export = add_report_action(
        actions,
        "export",
        "DeploymentRecords and ChangeRequests of the period as JSON Lines, each line carrying"
        " a running SHA-256 over the lines so far",
    )
    export.add_argument("-f", "--file", metavar="FILE", help="write to FILE (default: stdout)")
    verify = actions.add_parser(
        "verify",
        help="verify an exported FILE line by line, or every service's chain of records",
        description="With FILE: name each line edited, removed, inserted or reordered. Without:"
        " walk each service's hash chain of DeploymentRecords and name where it breaks."
        " Exit code 5 when anything does not verify.",
    )
    add_connection_flags(verify, inherit=True)
    verify.add_argument("file", nargs="?", metavar="FILE", help="an export (- for stdin)")
    verify.add_argument(
        "--expect", metavar="SHA256", help="the last line's sha256, as kept when exported"
    )


def add_review_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    review = commands.add_parser(
        "review",
        help="review an emergency change after the fact (change managers)",
        description="Append your review to an emergency ChangeRequest; the webhook records"
        " who and when, and marks the change reviewed. Reviews are never changed.",
    )
    add_connection_flags(review, inherit=True)
    review.add_argument("name", help="the ChangeRequest")
    review.add_argument("--note", required=True, help="what the review found (required)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="changegate",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_flags(parser, inherit=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_request_command(commands)
    add_decision_commands(commands)
    add_reading_commands(commands)
    add_incident_commands(commands)
    add_oncall_command(commands)
    add_report_commands(commands)
    add_review_command(commands)
    return parser
