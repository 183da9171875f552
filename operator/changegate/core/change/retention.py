"""Retention of evidence: which DeploymentRecords have outlived the retention period.

Records are the audit evidence, so they are kept for a fixed period (a chart
value, 400 days by default: a yearly audit plus a quarter) and then deleted by
the controller, which keeps etcd from filling with evidence nobody needs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any


def expired_records(
    records: Iterable[Mapping[str, Any]], retention_days: int, now: dt.datetime
) -> list[str]:
    """Names of the records that finished more than `retention_days` before `now`."""
    if retention_days <= 0:
        return []
    cutoff = now - dt.timedelta(days=retention_days)
    names = []
    for record in records:
        finished = (record.get("spec") or {}).get("finishTime")
        if not finished:
            continue
        if dt.datetime.fromisoformat(str(finished).replace("Z", "+00:00")) < cutoff:
            names.append(str(record["metadata"]["name"]))
    return sorted(names)
