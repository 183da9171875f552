"""The CLI without a cluster: flags, CI variables, the ChangeRequest it builds, its text.

Everything here is pure or runs against a fake ChangeRequests; the real API
server, the webhook's stamping and kubectl's plugin mechanism are exercised in
tests/integration/test_cli.py.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from changegate.adapters.kube import ChangeRequests, Forbidden, NotFound, Unreachable
from changegate.api.v1alpha1 import (
    Approval,
    ApprovalDecision,
    AuditEntry,
    ChangePhase,
    ChangeRequest,
    ChangeType,
    ContainerImage,
    WorkloadKind,
)
from changegate.cli import main
from changegate.cli.cluster import FIELD_MANAGER, Connection, print_warning
from changegate.cli.draft import (
    RequestOptions,
    TargetRef,
    draft_change,
    manifest,
    parse_image,
    parse_time,
)
from changegate.cli.errors import CommandError, ExitCode
from changegate.cli.parser import build_parser, parse_duration
from changegate.cli.pipeline import SourceHints, detect_source, with_commit_time
from changegate.cli.progress import follow, has_reached
from changegate.cli.summary import Progress, describe_change
from changegate.cli.table import change_table, human_duration

NOW = datetime(2026, 11, 17, 9, 30, tzinfo=UTC)
SHA = "4f2c9a1e0b7d3c58a6e1f09b2d4c7e8a1b3f5d60"
IMAGE = "registry.example.com/payments/api:1.4.2"


def change(
    name: str = "payments-api-4f2c9a1",
    namespace: str = "payments-prod",
    phase: ChangePhase | None = ChangePhase.PENDING,
    **status: Any,
) -> ChangeRequest:
    return ChangeRequest.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": "2026-11-17T09:00:00Z",
                "resourceVersion": "7",
            },
            "spec": {
                "service": "payments-api",
                "type": "Normal",
                "summary": "Roll out 1.4.2",
                "requester": "product-dev-1",
                "targets": [
                    {"name": "payments-api", "images": [{"container": "api", "image": IMAGE}]}
                ],
                "approvals": [],
            },
            "status": {"phase": phase, **status},
        }
    )


# --- argument parsing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400), ("1h0m5s", 3605)],
)
def test_durations_read_like_kubectl_wait(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5d", "m", "-3s"])
def test_a_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(Exception, match="not a duration"):
        parse_duration(text)


def test_connection_flags_are_taken_before_or_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--kubeconfig", "k", "-n", "ns", "--context", "c", "list"])
    after = parser.parse_args(["list", "--kubeconfig", "k", "-n", "ns", "--context", "c"])
    neither = parser.parse_args(["list"])
    for args in (before, after):
        assert (args.kubeconfig, args.namespace, args.context) == ("k", "ns", "c")
    assert (neither.kubeconfig, neither.namespace, neither.context) == (None, None, None)


def test_request_flags_are_typed_and_repeatable() -> None:
    args = build_parser().parse_args(
        [
            "request",
            "--service=payments-api",
            "--type=emergency",
            "--target=sts/ledger",
            "--target=payments-api",
            "--image=api=repo/api:1",
            "--image=sidecar=repo/proxy:2",
            "--risk=low",
            "--wait",
            "--until=approved",
            "--timeout=10m",
        ]
    )
    assert args.change_type is ChangeType.EMERGENCY
    assert args.targets == ["sts/ledger", "payments-api"]
    assert args.images == ["api=repo/api:1", "sidecar=repo/proxy:2"]
    assert (args.wait, args.until, args.timeout) == (True, ChangePhase.APPROVED, 600)


@pytest.mark.parametrize(
    "argv",
    [
        ["reject", "chg-1"],  # a rejection says why
        ["request"],  # --service is required
        ["request", "--service=s", "--type=Urgent"],
        ["approve", "chg-1", "--wait", "--until=Rejected"],  # only happy-path phases
        ["list", "-o", "table"],
    ],
)
def test_bad_usage_exits_with_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("payments-api", WorkloadKind.DEPLOYMENT, "payments-api"),
        ("deployment/payments-api", WorkloadKind.DEPLOYMENT, "payments-api"),
        ("deploy/payments-api", WorkloadKind.DEPLOYMENT, "payments-api"),
        ("Deployment.apps/payments-api", WorkloadKind.DEPLOYMENT, "payments-api"),
        ("statefulset/ledger", WorkloadKind.STATEFUL_SET, "ledger"),
        ("sts/ledger", WorkloadKind.STATEFUL_SET, "ledger"),
        ("ds/agent", WorkloadKind.DAEMON_SET, "agent"),
    ],
)
def test_targets_take_kubectl_kind_names(text: str, kind: WorkloadKind, name: str) -> None:
    assert TargetRef.parse(text) == TargetRef(kind, name)


@pytest.mark.parametrize("text", ["service/x", "configmap/x", "deployment/"])
def test_targets_of_other_kinds_are_refused(text: str) -> None:
    with pytest.raises(CommandError, match="KIND/NAME") as refused:
        TargetRef.parse(text)
    assert refused.value.code is ExitCode.USAGE


def test_images_are_container_equals_image() -> None:
    assert parse_image(f"api={IMAGE}") == ContainerImage(container="api", image=IMAGE)
    with pytest.raises(CommandError, match="CONTAINER=IMAGE"):
        parse_image(IMAGE)
    with pytest.raises(CommandError, match="should match pattern"):
        parse_image("api=Not An Image")


def test_times_need_an_offset() -> None:
    assert parse_time("2026-11-17T09:00:00Z", "--x") == datetime(2026, 11, 17, 9, tzinfo=UTC)
    with pytest.raises(CommandError, match="time zone"):
        parse_time("2026-11-17T09:00:00", "--window-end")
    with pytest.raises(CommandError, match="RFC 3339"):
        parse_time("tomorrow", "--window-end")


# --- CI environment variables -------------------------------------------------------

CI_ENVIRONMENTS: list[tuple[str, dict[str, str], SourceHints]] = [
    (
        "github-push",
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SERVER_URL": "https://github.example.com",
            "GITHUB_REPOSITORY": "payments/api",
            "GITHUB_SHA": SHA,
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_REF_NAME": "main",
            "GITHUB_RUN_ID": "9132",
        },
        SourceHints(
            repository="https://github.example.com/payments/api",
            commit=SHA,
            branch="main",
            pipeline_run="https://github.example.com/payments/api/actions/runs/9132",
        ),
    ),
    (
        "github-pull-request-defaults-to-github.com",
        {
            "GITHUB_REPOSITORY": "payments/api",
            "GITHUB_SHA": SHA,
            "GITHUB_REF": "refs/pull/1287/merge",
            "GITHUB_HEAD_REF": "feature/3ds",
            "GITHUB_REF_NAME": "1287/merge",
        },
        SourceHints(
            repository="https://github.com/payments/api",
            commit=SHA,
            branch="feature/3ds",
            pull_request="https://github.com/payments/api/pull/1287",
        ),
    ),
    (
        "gitlab-merge-request",
        {
            "GITLAB_CI": "true",
            "CI_PROJECT_URL": "https://gitlab.example.com/payments/api",
            "CI_COMMIT_SHA": SHA,
            "CI_COMMIT_TIMESTAMP": "2026-11-16T16:12:00+01:00",
            "CI_COMMIT_REF_NAME": "feature/3ds",
            "CI_MERGE_REQUEST_IID": "42",
            "CI_PIPELINE_URL": "https://gitlab.example.com/payments/api/-/pipelines/777",
        },
        SourceHints(
            repository="https://gitlab.example.com/payments/api",
            commit=SHA,
            commit_time="2026-11-16T16:12:00+01:00",
            branch="feature/3ds",
            pull_request="https://gitlab.example.com/payments/api/-/merge_requests/42",
            pipeline_run="https://gitlab.example.com/payments/api/-/pipelines/777",
        ),
    ),
    (
        "jenkins",
        {
            "GIT_URL": "https://git.example.com/payments/api.git",
            "GIT_COMMIT": SHA,
            "GIT_BRANCH": "origin/main",
            "BUILD_URL": "https://jenkins.example.com/job/api/12/",
        },
        SourceHints(
            repository="https://git.example.com/payments/api.git",
            commit=SHA,
            branch="main",
            pipeline_run="https://jenkins.example.com/job/api/12/",
        ),
    ),
    (
        "azure-pipelines",
        {
            "BUILD_REPOSITORY_URI": "https://dev.azure.com/acme/payments/_git/api",
            "BUILD_SOURCEVERSION": SHA,
            "BUILD_SOURCEBRANCHNAME": "main",
            "SYSTEM_COLLECTIONURI": "https://dev.azure.com/acme/",
            "SYSTEM_TEAMPROJECT": "payments",
            "BUILD_BUILDID": "311",
        },
        SourceHints(
            repository="https://dev.azure.com/acme/payments/_git/api",
            commit=SHA,
            branch="main",
            pipeline_run="https://dev.azure.com/acme/payments/_build/results?buildId=311",
        ),
    ),
    (
        "circleci-ssh-remote-and-no-links",
        {
            "CIRCLE_REPOSITORY_URL": "git@github.com:payments/api.git",
            "CIRCLE_SHA1": SHA,
            "CIRCLE_BRANCH": "main",
            "CIRCLE_BUILD_URL": "not-a-link",
        },
        SourceHints(repository="git@github.com:payments/api.git", commit=SHA, branch="main"),
    ),
    ("nothing", {"HOME": "/home/ci"}, SourceHints()),
]


@pytest.mark.parametrize(
    ("env", "expected"),
    [(e, h) for _, e, h in CI_ENVIRONMENTS],
    ids=[n for n, _, _ in CI_ENVIRONMENTS],
)
def test_ci_variables_map_onto_the_source(env: dict[str, str], expected: SourceHints) -> None:
    assert detect_source(env) == expected


def test_flags_win_over_the_environment() -> None:
    flags = SourceHints(commit="abcdef1", pipeline_run="https://ci.example.com/run/1")
    env = detect_source(
        {"GITHUB_REPOSITORY": "payments/api", "GITHUB_SHA": SHA, "GITHUB_RUN_ID": "5"}
    )
    assert flags.over(env) == SourceHints(
        repository="https://github.com/payments/api",
        commit="abcdef1",
        pipeline_run="https://ci.example.com/run/1",
    )


def test_a_missing_commit_time_is_asked_of_git_only_when_needed() -> None:
    asked: list[str] = []

    def read(commit: str) -> str | None:
        asked.append(commit)
        return "2026-11-16T16:12:00Z"

    assert with_commit_time(SourceHints(commit=SHA), read).commit_time == "2026-11-16T16:12:00Z"
    given = SourceHints(commit=SHA, commit_time="2026-01-01T00:00:00Z")
    assert with_commit_time(given, read) == given
    assert with_commit_time(SourceHints(), read) == SourceHints()
    assert asked == [SHA]


# --- the ChangeRequest a request builds ---------------------------------------------


def options(**overrides: Any) -> RequestOptions:
    return RequestOptions(
        **{
            "namespace": "payments-prod",
            "service": "payments-api",
            "images": (ContainerImage(container="api", image=IMAGE),),
            "source": SourceHints(repository="https://git.example.com/payments/api", commit=SHA),
            **overrides,
        }
    )


def test_a_one_line_request_gets_sensible_defaults() -> None:
    drafted = draft_change(options(), NOW)
    assert drafted.metadata.name == "payments-api-4f2c9a1"
    assert drafted.metadata.namespace == "payments-prod"
    assert drafted.spec.type is ChangeType.NORMAL
    target = drafted.spec.targets[0]
    assert (target.kind, target.name) == (WorkloadKind.DEPLOYMENT, "payments-api")
    assert target.images == [ContainerImage(container="api", image=IMAGE)]
    assert drafted.spec.summary == f"Roll out {IMAGE} to Deployment/payments-api (commit 4f2c9a1)"
    assert drafted.spec.requester is None


def test_the_created_body_leaves_identity_and_approvals_to_the_webhook() -> None:
    body = manifest(draft_change(options(), NOW))
    assert set(body) == {"apiVersion", "kind", "metadata", "spec"}
    assert body["metadata"] == {"name": "payments-api-4f2c9a1", "namespace": "payments-prod"}
    assert not {"requester", "approvals", "cancel"} & set(body["spec"])
    assert body["spec"]["source"] == {
        "repository": "https://git.example.com/payments/api",
        "commit": SHA,
    }
    assert ChangeRequest.model_validate(body).spec == draft_change(options(), NOW).spec


def test_every_target_gets_every_image_and_the_source_keeps_its_links() -> None:
    drafted = draft_change(
        options(
            targets=(TargetRef.parse("payments-api"), TargetRef.parse("sts/ledger")),
            source=SourceHints(
                repository="https://git.example.com/payments/api",
                commit=SHA.upper(),
                commit_time="2026-11-16T16:12:00Z",
                branch="main",
                pull_request="https://git.example.com/payments/api/pull/1287",
                pipeline_run="https://ci.example.com/payments/api/runs/9132",
            ),
            name="pay-1287",
            summary="Payments API 1.4.2",
        ),
        NOW,
    )
    assert [(t.kind, t.name, len(t.images)) for t in drafted.spec.targets] == [
        (WorkloadKind.DEPLOYMENT, "payments-api", 1),
        (WorkloadKind.STATEFUL_SET, "ledger", 1),
    ]
    source = drafted.spec.source
    assert source is not None
    assert source.commit == SHA  # lower-cased, as the API wants it
    assert source.commit_time == datetime(2026, 11, 16, 16, 12, tzinfo=UTC)
    assert (drafted.metadata.name, drafted.spec.summary) == ("pay-1287", "Payments API 1.4.2")


def test_without_a_commit_the_name_carries_a_timestamp() -> None:
    drafted = draft_change(options(source=SourceHints(), images=()), NOW)
    assert drafted.metadata.name == "payments-api-20261117-093000"
    assert drafted.spec.source is None
    assert drafted.spec.summary == "Roll out a change of payments-api to Deployment/payments-api"


def test_a_window_end_alone_opens_the_window_now() -> None:
    end = NOW + timedelta(hours=2)
    window = draft_change(options(window_end=end), NOW).spec.window
    assert window is not None
    assert (window.start_time, window.end_time) == (NOW, end)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"change_type": ChangeType.STANDARD}, "give --template"),
        ({"template": "image-bump"}, "only for Standard"),
        ({"change_type": ChangeType.EMERGENCY}, "--emergency-reason"),
        ({"source": SourceHints(commit=SHA)}, "give --repository"),
        ({"source": SourceHints(repository="https://x.example.com/r")}, "give --commit"),
        (
            {"source": SourceHints(repository="https://x/r", commit="release-1")},
            "invalid source: commit: String should match",
        ),
        (
            {"source": SourceHints(repository="https://x/r", commit=SHA, commit_time="yesterday")},
            "--commit-time",
        ),
        ({"window_start": NOW}, "--window-start needs --window-end"),
        ({"window_start": NOW, "window_end": NOW}, "must be after"),
        (
            {"service": "Payments API", "targets": (TargetRef.parse("payments-api"),)},
            "invalid change: service: String should match",
        ),
        ({"service": "Payments API"}, "invalid target Deployment/Payments API: name: String"),
        ({"name": "Bad_Name"}, "--name 'Bad_Name': not a valid"),
    ],
)
def test_what_the_api_server_would_refuse_is_refused_first(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(CommandError, match=message) as refused:
        draft_change(options(**overrides), NOW)
    assert refused.value.code is ExitCode.USAGE


def test_standard_and_emergency_changes_carry_what_they_need() -> None:
    standard = draft_change(options(change_type=ChangeType.STANDARD, template="image-bump"), NOW)
    assert standard.spec.template_ref is not None
    assert standard.spec.template_ref.name == "image-bump"
    emergency = draft_change(
        options(change_type=ChangeType.EMERGENCY, emergency_reason="card payments down"), NOW
    )
    assert emergency.spec.emergency_reason == "card payments down"


def test_a_dry_run_prints_the_body_without_a_cluster(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no git history to ask for a commit time
    code = main(
        [
            "request",
            "-n",
            "payments-prod",
            "--service=payments-api",
            f"--image=api={IMAGE}",
            "--repository=https://git.example.com/payments/api",
            f"--commit={SHA}",
            "--commit-time=2026-11-16T16:12:00Z",
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    body = yaml.safe_load(out)
    assert body["metadata"]["name"] == "payments-api-4f2c9a1"
    assert body["spec"]["source"]["commitTime"] == "2026-11-16T16:12:00Z"


def test_a_usage_error_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["request", "-n", "x", "--service=payments-api", "--type=Standard", "--dry-run"])
    captured = capsys.readouterr()
    assert code == ExitCode.USAGE
    assert (
        captured.err == "error: a Standard change follows a ChangeTemplate: give --template NAME\n"
    )
    assert "Traceback" not in captured.err


def test_a_missing_kubeconfig_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["list", "--kubeconfig", str(tmp_path / "missing")])
    assert code == ExitCode.ERROR
    assert capsys.readouterr().err.startswith("error: cannot load the kubeconfig")


# --- what the API server says ---------------------------------------------------------


class RefusingChanges:
    """ChangeRequests whose every call gets the API server's answer `error`, after `warnings`."""

    def __init__(self, error: Exception, warnings: tuple[str, ...] = ()) -> None:
        self.error = error
        self.warnings = warnings

    def get(self, namespace: str, name: str) -> ChangeRequest:
        for text in self.warnings:
            print_warning(text)
        raise self.error


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            Forbidden(403, "Forbidden", "product-dev-1 cannot approve (segregation of duties)"),
            "error: product-dev-1 cannot approve (segregation of duties)\n",
        ),
        (
            NotFound(404, "Not Found", 'changerequests "x" not found'),
            'error: changerequests "x" not found\n',
        ),
        (
            Unreachable("cannot reach the API server: refused"),
            "error: cannot reach the API server: refused\n",
        ),
    ],
)
def test_a_refusal_is_shown_in_the_api_servers_words(
    error: Exception, said: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Connection, "changes", lambda self: RefusingChanges(error))
    code = main(["approve", "x", "-n", "payments-prod"])
    assert code == ExitCode.ERROR
    assert capsys.readouterr().err == said


class WarningCustomObjects:
    """The CustomObjectsApi calls of `cancel`, answering with the webhook's warnings."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.patches: list[Any] = []

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        return change().to_json()

    def patch_namespaced_custom_object_with_http_info(
        self, *args: Any, **kwargs: Any
    ) -> tuple[dict[str, Any], int, dict[str, str]]:
        self.patches.append((args[-1], kwargs["field_manager"]))
        return change(phase=ChangePhase.CANCELLED).to_json(), 200, self.headers


def test_warnings_are_printed_like_kubectl(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    custom = WarningCustomObjects({"Warning": '299 - "window is closed", 299 - "not pinned"'})

    def changes(self: Connection) -> ChangeRequests:
        adapter = ChangeRequests(None, FIELD_MANAGER, print_warning)  # type: ignore[arg-type]
        adapter.custom = custom  # type: ignore[assignment]
        return adapter

    monkeypatch.setattr(Connection, "changes", changes)
    code = main(["cancel", "payments-api-4f2c9a1", "-n", "payments-prod"])
    captured = capsys.readouterr()
    assert code == ExitCode.OK
    assert captured.err == "Warning: window is closed\nWarning: not pinned\n"
    assert captured.out == "changerequest/payments-api-4f2c9a1 cancelled\n"
    assert custom.patches == [
        ([{"op": "add", "path": "/spec/cancel", "value": True}], "changegate-cli")
    ]


# --- text for people ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (50 * 3600, "2d2h"),
        (10 * 86400, "10d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_ages_round_like_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_the_list_is_a_kubectl_like_table() -> None:
    approved = change("b-change", phase=ChangePhase.APPROVED, approvalCount=1, requiredApprovals=1)
    fresh = change("a-change", phase=None)
    assert change_table([approved, fresh], NOW) == [
        "NAME       SERVICE        TYPE     PHASE      APPROVALS   TARGET         AGE",
        "a-change   payments-api   Normal   <none>     0           payments-api   30m",
        "b-change   payments-api   Normal   Approved   1/1         payments-api   30m",
    ]


def test_all_namespaces_adds_a_namespace_column() -> None:
    table = change_table([change(namespace="zz"), change(namespace="aa")], NOW, with_namespace=True)
    assert table[0].split() == [
        "NAMESPACE",
        "NAME",
        "SERVICE",
        "TYPE",
        "PHASE",
        "APPROVALS",
        "TARGET",
        "AGE",
    ]
    assert [line.split()[0] for line in table[1:]] == ["aa", "zz"]


def test_status_reads_like_kubectl_describe() -> None:
    shown = change(
        phase=ChangePhase.COMPLETED,
        approvalCount=1,
        requiredApprovals=1,
        approvedBy=["change-manager-1"],
        leadTimeSeconds=3 * 3600 + 60,
        rollouts=[
            {
                "kind": "Deployment",
                "name": "payments-api",
                "revision": 2,
                "deployer": "product-dev-1",
                "startTime": "2026-11-17T09:10:00Z",
                "finishTime": "2026-11-17T09:12:00Z",
                "result": "Succeeded",
                "deploymentRecord": "payments-prod.payments-api.2",
            }
        ],
        auditTrail=[
            {
                "time": "2026-11-17T09:05:00Z",
                "actor": "changegate",
                "action": "Approved",
                "message": "1/1",
            }
        ],
    )
    text = "\n".join(describe_change(shown))
    for expected in (
        "Phase:         Completed",
        "Requester:     product-dev-1",
        "Approvals:     1/1 (change-manager-1)",
        "Lead time:     3h1m",
        f"  Deployment/payments-api: api={IMAGE}",
        "  Deployment/payments-api revision 2: Succeeded by product-dev-1, started"
        " 2026-11-17T09:10:00Z, finished 2026-11-17T09:12:00Z, record payments-prod.payments-api.2",
        "  2026-11-17T09:05:00Z changegate Approved: 1/1",
    ):
        assert expected in text


def test_progress_reports_only_what_is_new() -> None:
    progress = Progress()
    pending = change()
    assert progress.report(pending) == ["payments-api-4f2c9a1: Pending, approvals 0"]
    assert progress.report(pending) == []
    decided = pending.model_copy(deep=True)
    decided.spec.approvals.append(
        Approval(
            approver="change-manager-1", decision=ApprovalDecision.APPROVED, time=NOW, comment="go"
        )
    )
    decided.status.phase = ChangePhase.APPROVED
    decided.status.audit_trail.append(AuditEntry(time=NOW, actor="changegate", action="Approved"))
    assert progress.report(decided) == [
        "payments-api-4f2c9a1: Approved, approvals 0",
        "  2026-11-17T09:30:00Z Approved by change-manager-1: go",
        "  2026-11-17T09:30:00Z changegate Approved",
    ]
    assert progress.report(decided) == []


# --- --wait -------------------------------------------------------------------------


class FakeChanges:
    """ChangeRequests whose watch replays scripted states, one watch at a time."""

    def __init__(
        self, *watches: list[ChangeRequest | None], now: ChangeRequest | None = None
    ) -> None:
        self.watches = list(watches)
        self.now = now
        self.watch_timeouts: list[int] = []

    def watch(self, change: ChangeRequest, timeout_seconds: int) -> Iterator[ChangeRequest | None]:
        self.watch_timeouts.append(timeout_seconds)
        yield from self.watches.pop(0) if self.watches else []

    def get(self, namespace: str, name: str) -> ChangeRequest:
        assert self.now is not None
        return self.now


class Clock:
    def __init__(self) -> None:
        self.time = 1000.0

    def __call__(self) -> float:
        self.time += 10
        return self.time


def wait(
    changes: FakeChanges, until: ChangePhase, timeout: float = 3600
) -> tuple[ChangeRequest, str]:
    out = io.StringIO()
    settled = follow(changes, change(), until, timeout, out=out, clock=Clock())  # type: ignore[arg-type]
    return settled, out.getvalue()


def test_wait_returns_once_the_awaited_phase_is_reached() -> None:
    approved = change(phase=ChangePhase.APPROVED, approvalCount=1, requiredApprovals=1)
    settled, out = wait(FakeChanges([change(), approved]), ChangePhase.APPROVED)
    assert settled is approved
    assert out.splitlines() == [
        "payments-api-4f2c9a1: Pending, approvals 0",
        "payments-api-4f2c9a1: Approved, approvals 1/1",
    ]


def test_a_phase_beyond_the_awaited_one_counts_as_reached() -> None:
    assert has_reached(change(phase=ChangePhase.COMPLETED), ChangePhase.APPROVED)
    assert not has_reached(change(phase=ChangePhase.APPROVED), ChangePhase.COMPLETED)
    assert not has_reached(change(phase=ChangePhase.REJECTED), ChangePhase.APPROVED)
    assert not has_reached(change(phase=None), ChangePhase.APPROVED)


def test_a_closed_watch_is_resumed_from_a_fresh_read() -> None:
    completed = change(phase=ChangePhase.COMPLETED)
    changes = FakeChanges([], [], now=completed)
    settled, _ = wait(changes, ChangePhase.COMPLETED)
    assert settled is completed
    assert changes.watch_timeouts == [3590]  # the deadline, not a fixed poll interval


@pytest.mark.parametrize(
    "phase", [ChangePhase.REJECTED, ChangePhase.CANCELLED, ChangePhase.EXPIRED, ChangePhase.FAILED]
)
def test_a_change_that_ends_badly_fails_the_wait(phase: ChangePhase) -> None:
    with pytest.raises(CommandError, match=f"ended {phase.value}") as ended:
        wait(FakeChanges([change(phase=phase)]), ChangePhase.COMPLETED)
    assert ended.value.code is ExitCode.CHANGE_FAILED


def test_the_wait_gives_up_at_its_deadline() -> None:
    changes = FakeChanges(now=change())
    with pytest.raises(
        CommandError, match=r"timed out after 30s .* to reach Approved \(it is Pending\)"
    ) as gave_up:
        wait(changes, ChangePhase.APPROVED, timeout=30)
    assert gave_up.value.code is ExitCode.TIMEOUT


def test_a_deleted_change_ends_the_wait() -> None:
    with pytest.raises(CommandError, match="was deleted"):
        wait(FakeChanges([None]), ChangePhase.COMPLETED)
