"""The `changegate list` table, laid out the way `kubectl get` lays out its own.

Pure: ChangeRequest models and the current time in, lines of text out. The
AGE column follows kubectl's rounding, so both read alike side by side.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from changegate.api.v1alpha1 import ChangeRequest

COLUMNS = ("NAME", "SERVICE", "TYPE", "PHASE", "APPROVALS", "TARGET", "AGE")
PADDING = 3
UNKNOWN = "<none>"


def human_duration(seconds: float) -> str:
    """A duration as kubectl prints ages: 45s, 3m12s, 95m, 5h3m, 2d4h, 400d, 3y20d."""
    total = max(int(seconds), 0)
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if total < 120:
        return f"{total}s"
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def approvals_text(change: ChangeRequest) -> str:
    """`counted/required`, or the count alone before the operator has set the requirement."""
    status = change.status
    if status.required_approvals is None:
        return str(status.approval_count)
    return f"{status.approval_count}/{status.required_approvals}"


def phase_text(change: ChangeRequest) -> str:
    return change.status.phase.value if change.status.phase else UNKNOWN


def target_text(change: ChangeRequest) -> str:
    """The first target, and how many more there are."""
    first, *rest = change.spec.targets
    return f"{first.name} (+{len(rest)})" if rest else first.name


def age_text(change: ChangeRequest, now: datetime) -> str:
    created = change.metadata.creation_timestamp
    return human_duration((now - created).total_seconds()) if created else UNKNOWN


def change_row(change: ChangeRequest, now: datetime, with_namespace: bool) -> list[str]:
    row = [
        change.metadata.name or "",
        change.spec.service,
        change.spec.type.value,
        phase_text(change),
        approvals_text(change),
        target_text(change),
        age_text(change, now),
    ]
    return [change.metadata.namespace or "", *row] if with_namespace else row


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by three spaces, like kubectl's tabwriter."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    return [
        (" " * PADDING)
        .join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        .rstrip()
        for line in (headers, *rows)
    ]


def change_table(
    changes: Sequence[ChangeRequest], now: datetime, with_namespace: bool = False
) -> list[str]:
    """The table `changegate list` prints, sorted by namespace and name."""
    headers = ("NAMESPACE", *COLUMNS) if with_namespace else COLUMNS
    ordered = sorted(changes, key=lambda c: (c.metadata.namespace or "", c.metadata.name or ""))
    return format_table(headers, [change_row(c, now, with_namespace) for c in ordered])
