"""The ChangeRequest a `changegate request` raises, built from flags and CI hints.

Pure: the options, the source hints and the clock come in, a validated
ChangeRequest model comes out, or a UsageError that says which flag to fix.
The requester and approvals are left empty: the admission webhook stamps them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from changegate.api.v1alpha1 import (
    ChangeRequest,
    ChangeRequestSpec,
    ChangeSource,
    ChangeTarget,
    ChangeType,
    ContainerImage,
    Level,
    LocalObjectRef,
    ObjectMeta,
    TimeWindow,
    WorkloadKind,
)
from changegate.api.v1alpha1.common import DNS1123_SUBDOMAIN_PATTERN
from changegate.cli.errors import CommandError, ExitCode
from changegate.cli.pipeline import SourceHints

T = TypeVar("T")
SUMMARY_LIMIT = 256
NAME_LIMIT = 253
KIND_NAMES = {
    "deployment": WorkloadKind.DEPLOYMENT,
    "deployments": WorkloadKind.DEPLOYMENT,
    "deploy": WorkloadKind.DEPLOYMENT,
    "statefulset": WorkloadKind.STATEFUL_SET,
    "statefulsets": WorkloadKind.STATEFUL_SET,
    "sts": WorkloadKind.STATEFUL_SET,
    "daemonset": WorkloadKind.DAEMON_SET,
    "daemonsets": WorkloadKind.DAEMON_SET,
    "ds": WorkloadKind.DAEMON_SET,
    # The other kinds that run code: refusals for them print `--target <Kind>/<name>`.
    "pod": WorkloadKind.POD,
    "pods": WorkloadKind.POD,
    "po": WorkloadKind.POD,
    "replicaset": WorkloadKind.REPLICA_SET,
    "replicasets": WorkloadKind.REPLICA_SET,
    "rs": WorkloadKind.REPLICA_SET,
    "job": WorkloadKind.JOB,
    "jobs": WorkloadKind.JOB,
    "cronjob": WorkloadKind.CRON_JOB,
    "cronjobs": WorkloadKind.CRON_JOB,
    "cj": WorkloadKind.CRON_JOB,
}
KIND_GROUPS = (".apps", ".batch")


def usage_error(message: str) -> CommandError:
    return CommandError(message, ExitCode.USAGE)


@dataclass(frozen=True, slots=True)
class TargetRef:
    """A workload named on the command line, `kind/name` or just `name`."""

    kind: WorkloadKind
    name: str

    @classmethod
    def parse(cls, text: str) -> TargetRef:
        kind, slash, name = text.rpartition("/")
        if not slash:
            return cls(WorkloadKind.DEPLOYMENT, text)
        workload = KIND_NAMES.get(kind.lower().partition(".")[0])
        grouped = "." not in kind or kind.lower().endswith(KIND_GROUPS)
        if workload is None or not grouped or not name:
            raise usage_error(
                f"--target {text!r}: expected KIND/NAME with KIND deployment, statefulset,"
                " daemonset, pod, replicaset, job or cronjob"
            )
        return cls(workload, name)

    def __str__(self) -> str:
        return f"{self.kind.value}/{self.name}"


def parse_image(text: str) -> ContainerImage:
    """`container=image` from --image."""
    container, equals, image = text.partition("=")
    if not equals or not container or not image:
        raise usage_error(f"--image {text!r}: expected CONTAINER=IMAGE, for example api=repo:1.2")
    return validated(lambda: ContainerImage(container=container, image=image), f"--image {text}")


def parse_time(text: str, flag: str) -> datetime:
    """An RFC 3339 time with its offset, for example 2026-11-17T09:00:00Z."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise usage_error(
            f"{flag} {text!r}: expected an RFC 3339 time such as 2026-11-17T09:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise usage_error(f"{flag} {text!r}: give the time zone, for example a trailing Z")
    return moment


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """What `changegate request` was asked for, flag by flag."""

    namespace: str
    service: str
    change_type: ChangeType = ChangeType.NORMAL
    targets: tuple[TargetRef, ...] = ()
    images: tuple[ContainerImage, ...] = ()
    name: str | None = None
    template: str | None = None
    summary: str | None = None
    description: str | None = None
    risk: Level | None = None
    impact: Level | None = None
    backout_plan: str | None = None
    emergency_reason: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    source: SourceHints = field(default_factory=SourceHints)
    # Targets read from --from-file: images and pod template hash, as the manifest has them.
    declared: tuple[ChangeTarget, ...] = ()


def draft_change(options: RequestOptions, now: datetime) -> ChangeRequest:
    """The ChangeRequest to create; refuses early what the API server would refuse."""
    check_type_flags(options)
    declared = declared_targets(options)
    targets = (
        tuple(TargetRef(t.kind, t.name) for t in declared)
        or options.targets
        or (TargetRef(WorkloadKind.DEPLOYMENT, options.service),)
    )
    images = tuple(i for t in declared for i in t.images) or options.images
    source = draft_source(options.source)
    spec = validated(
        lambda: ChangeRequestSpec(
            service=options.service,
            type=options.change_type,
            template_ref=LocalObjectRef(name=options.template) if options.template else None,
            summary=options.summary or default_summary(options.service, targets, images, source),
            description=options.description,
            risk=options.risk,
            impact=options.impact,
            backout_plan=options.backout_plan,
            emergency_reason=options.emergency_reason,
            targets=list(declared) or [draft_target(t, options.images) for t in targets],
            window=draft_window(options.window_start, options.window_end, now),
            source=source,
        ),
        "change",
    )
    name = options.name or default_name(options.service, source, now)
    if not re.fullmatch(DNS1123_SUBDOMAIN_PATTERN, name) or len(name) > NAME_LIMIT:
        raise usage_error(
            f"--name {name!r}: not a valid name (lowercase letters, digits, '-' and '.')"
        )
    return validated(
        lambda: ChangeRequest(
            metadata=ObjectMeta(name=name, namespace=options.namespace), spec=spec
        ),
        "change",
    )


def manifest(change: ChangeRequest) -> dict[str, Any]:
    """The body to create: no status, and none of what only the webhook or approvers add."""
    return {
        "apiVersion": change.api_version,
        "kind": change.kind,
        "metadata": change.metadata.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude_defaults=True
        ),
        "spec": change.spec.model_dump(
            mode="json",
            by_alias=True,
            exclude_none=True,
            exclude={"requester", "approvals", "cancel"},
        ),
    }


def declared_targets(options: RequestOptions) -> tuple[ChangeTarget, ...]:
    """The manifest's targets, narrowed to --target when given; --image cannot add to them."""
    if not options.declared:
        return ()
    if options.images:
        raise usage_error("--image and --from-file: the manifest already says every image")
    wanted = {(t.kind, t.name) for t in options.targets}
    chosen = tuple(t for t in options.declared if not wanted or (t.kind, t.name) in wanted)
    if not chosen:
        raise usage_error("--target names no workload of the --from-file manifest")
    return chosen


def draft_target(target: TargetRef, images: tuple[ContainerImage, ...]) -> ChangeTarget:
    return validated(
        lambda: ChangeTarget(kind=target.kind, name=target.name, images=list(images)),
        f"target {target}",
    )


def check_type_flags(options: RequestOptions) -> None:
    """The flags each change type needs, said in terms of flags rather than fields."""
    if options.change_type is ChangeType.STANDARD and not options.template:
        raise usage_error("a Standard change follows a ChangeTemplate: give --template NAME")
    if options.template and options.change_type is not ChangeType.STANDARD:
        raise usage_error("--template is only for Standard changes (--type Standard)")
    if options.change_type is ChangeType.EMERGENCY and not options.emergency_reason:
        raise usage_error("an Emergency change needs --emergency-reason")


def draft_source(hints: SourceHints) -> ChangeSource | None:
    """The source block, when a repository and a commit are known."""
    if not hints.repository and not hints.commit:
        return None
    if not hints.repository or not hints.commit:
        missing = "--repository" if not hints.repository else "--commit"
        raise usage_error(
            f"the change's source needs both a repository and a commit: give {missing}"
        )
    commit_time = parse_time(hints.commit_time, "--commit-time") if hints.commit_time else None
    return validated(
        lambda: ChangeSource(
            repository=hints.repository or "",
            commit=(hints.commit or "").lower(),
            commit_time=commit_time,
            branch=hints.branch,
            pull_request=hints.pull_request,
            pipeline_run=hints.pipeline_run,
        ),
        "source",
    )


def draft_window(start: datetime | None, end: datetime | None, now: datetime) -> TimeWindow | None:
    """The window: both ends, or an end alone (opening now), or none."""
    if start is None and end is None:
        return None
    if end is None:
        raise usage_error("--window-start needs --window-end")
    opening = start or now.replace(microsecond=0)
    if end <= opening:
        raise usage_error("--window-end must be after --window-start (or now)")
    return TimeWindow(start_time=opening, end_time=end)


def default_name(service: str, source: ChangeSource | None, now: datetime) -> str:
    """`<service>-<short commit>`, or `<service>-<UTC timestamp>` without a commit."""
    if source is not None:
        return f"{service}-{source.commit[:7]}"
    return f"{service}-{now.strftime('%Y%m%d-%H%M%S')}"


def default_summary(
    service: str,
    targets: tuple[TargetRef, ...],
    images: tuple[ContainerImage, ...],
    source: ChangeSource | None,
) -> str:
    """One line: what rolls out where, and from which commit."""
    what = ", ".join(i.image for i in images) if images else f"a change of {service}"
    where = ", ".join(str(t) for t in targets)
    commit = f" (commit {source.commit[:7]})" if source is not None else ""
    text = f"Roll out {what} to {where}{commit}"
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def validated(build: Callable[[], T], what: str) -> T:
    """Run a model constructor; turn pydantic's complaint into a usage error."""
    try:
        return build()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise usage_error(f"invalid {what}: {problems}") from None
