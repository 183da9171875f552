"""What a CI pipeline tells us about the change it raises: repository, commit, run.

Each CI system names these in its own environment variables; one small reader
per system maps them onto SourceHints, and flags given on the command line win
over all of them. Pure: the environment is passed in as a mapping.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

Environment = Mapping[str, str]
_HTTP_URL = re.compile(r"^https?://\S+$")


@dataclass(frozen=True, slots=True)
class SourceHints:
    """Where a change comes from, as far as flags and the environment say."""

    repository: str | None = None
    commit: str | None = None
    commit_time: str | None = None
    branch: str | None = None
    pull_request: str | None = None
    pipeline_run: str | None = None

    def over(self, fallback: SourceHints) -> SourceHints:
        """These hints, with gaps filled from `fallback`."""
        filled = {f.name: getattr(self, f.name) or getattr(fallback, f.name) for f in fields(self)}
        return SourceHints(**filled)


def _url(value: str | None) -> str | None:
    """A link taken from the environment only when it is one (http or https)."""
    return value if value and _HTTP_URL.match(value) else None


def read_github(env: Environment) -> SourceHints:
    """GitHub Actions: GITHUB_SERVER_URL/GITHUB_REPOSITORY, GITHUB_SHA, GITHUB_RUN_ID."""
    project = env.get("GITHUB_REPOSITORY")
    if not project:
        return SourceHints(commit=env.get("GITHUB_SHA"))
    base = f"{env.get('GITHUB_SERVER_URL') or 'https://github.com'}/{project}"
    run = env.get("GITHUB_RUN_ID")
    pull = re.match(r"^refs/pull/(\d+)/", env.get("GITHUB_REF", ""))
    return SourceHints(
        repository=base,
        commit=env.get("GITHUB_SHA"),
        branch=env.get("GITHUB_HEAD_REF") or env.get("GITHUB_REF_NAME"),
        pull_request=_url(f"{base}/pull/{pull.group(1)}") if pull else None,
        pipeline_run=_url(f"{base}/actions/runs/{run}") if run else None,
    )


def read_gitlab(env: Environment) -> SourceHints:
    """GitLab CI: CI_PROJECT_URL, CI_COMMIT_SHA, CI_COMMIT_TIMESTAMP, CI_PIPELINE_URL."""
    project = env.get("CI_PROJECT_URL")
    merge_request = env.get("CI_MERGE_REQUEST_IID")
    return SourceHints(
        repository=project,
        commit=env.get("CI_COMMIT_SHA"),
        commit_time=env.get("CI_COMMIT_TIMESTAMP"),
        branch=env.get("CI_COMMIT_BRANCH")
        or env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
        or env.get("CI_COMMIT_REF_NAME"),
        pull_request=_url(f"{project}/-/merge_requests/{merge_request}")
        if project and merge_request
        else None,
        pipeline_run=_url(env.get("CI_PIPELINE_URL") or env.get("CI_JOB_URL")),
    )


def read_azure_devops(env: Environment) -> SourceHints:
    """Azure Pipelines: BUILD_REPOSITORY_URI, BUILD_SOURCEVERSION, BUILD_BUILDID."""
    repository = env.get("BUILD_REPOSITORY_URI")
    collection, project = env.get("SYSTEM_COLLECTIONURI"), env.get("SYSTEM_TEAMPROJECT")
    build = env.get("BUILD_BUILDID")
    pull = env.get("SYSTEM_PULLREQUEST_PULLREQUESTID")
    return SourceHints(
        repository=repository,
        commit=env.get("BUILD_SOURCEVERSION"),
        branch=env.get("BUILD_SOURCEBRANCHNAME"),
        pull_request=_url(f"{repository}/pullrequest/{pull}") if repository and pull else None,
        pipeline_run=_url(f"{collection.rstrip('/')}/{project}/_build/results?buildId={build}")
        if collection and project and build
        else None,
    )


def read_bitbucket(env: Environment) -> SourceHints:
    """Bitbucket Pipelines: BITBUCKET_GIT_HTTP_ORIGIN, BITBUCKET_COMMIT, BITBUCKET_BUILD_NUMBER."""
    origin = env.get("BITBUCKET_GIT_HTTP_ORIGIN")
    build, pull = env.get("BITBUCKET_BUILD_NUMBER"), env.get("BITBUCKET_PR_ID")
    return SourceHints(
        repository=origin,
        commit=env.get("BITBUCKET_COMMIT"),
        branch=env.get("BITBUCKET_BRANCH"),
        pull_request=_url(f"{origin}/pull-requests/{pull}") if origin and pull else None,
        pipeline_run=_url(f"{origin}/pipelines/results/{build}") if origin and build else None,
    )


def read_circleci(env: Environment) -> SourceHints:
    """CircleCI: CIRCLE_REPOSITORY_URL, CIRCLE_SHA1, CIRCLE_BUILD_URL, CIRCLE_PULL_REQUEST."""
    return SourceHints(
        repository=env.get("CIRCLE_REPOSITORY_URL"),
        commit=env.get("CIRCLE_SHA1"),
        branch=env.get("CIRCLE_BRANCH"),
        pull_request=_url(env.get("CIRCLE_PULL_REQUEST")),
        pipeline_run=_url(env.get("CIRCLE_BUILD_URL")),
    )


def read_jenkins(env: Environment) -> SourceHints:
    """Jenkins (git plugin) and generic builds: GIT_URL, GIT_COMMIT, BUILD_URL, CHANGE_URL."""
    branch = env.get("BRANCH_NAME") or env.get("GIT_BRANCH")
    return SourceHints(
        repository=env.get("GIT_URL"),
        commit=env.get("GIT_COMMIT"),
        branch=branch.removeprefix("origin/") if branch else None,
        pull_request=_url(env.get("CHANGE_URL")),
        pipeline_run=_url(env.get("BUILD_URL")),
    )


READERS: tuple[Callable[[Environment], SourceHints], ...] = (
    read_github,
    read_gitlab,
    read_azure_devops,
    read_bitbucket,
    read_circleci,
    read_jenkins,
)
"""In order of precedence: the first system that names a field gives it."""


def detect_source(env: Environment) -> SourceHints:
    """What the CI environment says about the change's source."""
    hints = SourceHints()
    for read in READERS:
        hints = hints.over(read(env))
    return hints


def with_commit_time(hints: SourceHints, read_time: Callable[[str], str | None]) -> SourceHints:
    """Fill a missing commit time from the checkout (GitHub Actions does not export it)."""
    if hints.commit and not hints.commit_time:
        return replace(hints, commit_time=read_time(hints.commit))
    return hints


def read_git_commit_time(commit: str) -> str | None:
    """The committer date of `commit` in the working directory's git checkout, if any."""
    git = shutil.which("git")
    if git is None or not re.fullmatch(r"[0-9a-fA-F]{7,64}", commit):
        return None
    try:
        result = subprocess.run(
            [git, "show", "-s", "--format=%cI", commit],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = result.stdout.strip()
    return text if result.returncode == 0 and text else None
