"""`changegate request --target` takes every kind a refusal names in its fix command.

The webhook's refusal for a Pod, ReplicaSet, Job or CronJob prints
`kubectl changegate request ... --target <Kind>/<name>`: that command must parse.
"""

from __future__ import annotations

import pytest

from changegate.api.v1alpha1.common import WorkloadKind
from changegate.cli.draft import TargetRef
from changegate.cli.errors import CommandError


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Pod/payments-side", WorkloadKind.POD),
        ("po/payments-side", WorkloadKind.POD),
        ("ReplicaSet/payments-side", WorkloadKind.REPLICA_SET),
        ("rs/payments-side", WorkloadKind.REPLICA_SET),
        ("replicasets.apps/payments-side", WorkloadKind.REPLICA_SET),
        ("Job/payments-side", WorkloadKind.JOB),
        ("jobs.batch/payments-side", WorkloadKind.JOB),
        ("CronJob/payments-side", WorkloadKind.CRON_JOB),
        ("cj/payments-side", WorkloadKind.CRON_JOB),
    ],
)
def test_targets_of_every_kind_that_runs_code(text: str, kind: WorkloadKind) -> None:
    assert TargetRef.parse(text) == TargetRef(kind, "payments-side")


@pytest.mark.parametrize("kind", list(WorkloadKind))
def test_the_fix_command_of_a_refusal_parses(kind: WorkloadKind) -> None:
    """What admission's fix prints (`--target {kind}/{name}`) reads back as that workload."""
    assert TargetRef.parse(f"{kind.value}/payments-side") == TargetRef(kind, "payments-side")


@pytest.mark.parametrize("text", ["jobs.example.com/x", "secret/x", "cronjob/"])
def test_other_kinds_and_groups_are_refused(text: str) -> None:
    with pytest.raises(CommandError, match="pod, replicaset, job or cronjob"):
        TargetRef.parse(text)
