"""Retention of evidence: which DeploymentRecords have outlived the retention period.

Records are the audit evidence, so they are kept for a fixed period (a chart
value, 400 days by default: a yearly audit plus a quarter) and then deleted by
the controller's scheduler, which asks `record_due` when each record falls due.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from changegate.core.common import parse_time


def record_due(finished: dt.datetime | None, retention_days: int) -> dt.datetime | None:
    """When a record that finished at `finished` is to be deleted; None: never."""
    if retention_days <= 0 or finished is None:
        return None
    return finished + dt.timedelta(days=retention_days)


def finish_time(record: Mapping[str, Any]) -> dt.datetime | None:
    """A raw DeploymentRecord's spec.finishTime."""
    return parse_time(str((record.get("spec") or {}).get("finishTime") or ""))


def expired_records(
    records: Iterable[Mapping[str, Any]], retention_days: int, now: dt.datetime
) -> list[str]:
    """Names of the records that finished more than `retention_days` before `now`."""
    names = []
    for record in records:
        due = record_due(finish_time(record), retention_days)
        if due is not None and due < now:
            names.append(str(record["metadata"]["name"]))
    return sorted(names)
