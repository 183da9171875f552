"""Changes the operator raises itself, and how it finds them again.

A break-glass rollout's emergency change and a promotion's production change get
names nobody can predict (generateName), and a label only the operator may write
(`changegate.io/raised-for`, a hash of what raised them) by which the level-based
controller finds what it raised already. The changerequests review refuses these
marks from anyone else (governance.operator_marks_by_operator).
"""

from __future__ import annotations

import hashlib

from changegate.api.v1alpha1.changerequest import ChangeRequest

RAISED_FOR = "changegate.io/raised-for"
DEPLOYMENT_RECORD = "changegate.io/deployment-record"
PROMOTED_FROM = "changegate.io/promoted-from"
REQUESTER_UNVERIFIED = "changegate.io/requester-unverified"
# Labels and annotations of a ChangeRequest that only the operator's identity writes.
OPERATOR_MARKS = (RAISED_FOR, DEPLOYMENT_RECORD, PROMOTED_FROM, REQUESTER_UNVERIFIED)


def raised_for(key: str) -> str:
    """The label value naming what raised a change: a hash, so any key fits a label."""
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def generated_prefix(prefix: str, workload: str) -> str:
    """A generateName prefix: the API server appends five random characters."""
    return f"{prefix}-{workload}"[:57].rstrip("-.") + "-"


def operator_marks(change: ChangeRequest) -> dict[tuple[str, str], str]:
    """The operator's marks on a change: (label or annotation, key) -> value."""
    metadata = change.metadata
    return {
        (where, key): value
        for where, values in (("label", metadata.labels), ("annotation", metadata.annotations))
        for key, value in values.items()
        if key in OPERATOR_MARKS
    }
