"""What the webhook keeps of a ChangeRequest once it can no longer admit anything.

The change cache (handlers/webhook/caches.py) passes every indexed change
through `compact`: a change that is finished and deployed nothing a rollback
could return to is dropped; a finished change that did keeps only its deployed
references, within the longest rollback horizon any policy may set. Repeated
strings are interned, so ten thousand changes of one service share them. Pure.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import datetime

from changegate.api.v1alpha1.changerequest import ChangePhase
from changegate.api.v1alpha1.common import ChangeType
from changegate.core.change.facts import ChangeFacts, DeployedFacts, TargetFacts
from changegate.core.common import seconds_between

# The longest spec.changePolicy.rollbackHorizonSeconds the API accepts (api/v1alpha1/common.py).
LONGEST_ROLLBACK_HORIZON = 10 * 365 * 24 * 3600
# Phases in which a change admits nothing again; Completed too, but a rollback may use it.
FINISHED = frozenset(
    {
        ChangePhase.REJECTED,
        ChangePhase.CANCELLED,
        ChangePhase.EXPIRED,
        ChangePhase.FAILED,
        ChangePhase.COMPLETED,
    }
)
# Phases the controller moves on from itself; spec edits do not bring them back.
ADMITTING = frozenset({ChangePhase.APPROVED, ChangePhase.IN_PROGRESS})


def finished(change: ChangeFacts) -> bool:
    """Whether the change can never admit a rollout as itself again, whatever the policy.

    The same answer `ChangeFacts.effective_phase` gives with any policy: a finished
    phase, a cancel the controller has not seen yet, or a rejection of a Normal change
    that was not approved before it.
    """
    if change.phase in FINISHED:
        return True
    if change.phase is ChangePhase.IN_PROGRESS:
        return False
    if change.cancelled:
        return True
    return (
        change.type is ChangeType.NORMAL
        and bool(change.rejected_by)
        and change.phase not in ADMITTING
    )


def compact(
    change: ChangeFacts, now: datetime, horizon_seconds: int = LONGEST_ROLLBACK_HORIZON
) -> ChangeFacts | None:
    """The facts worth keeping of a change: all of a live one, the rollback references of a
    finished one, nothing of a finished one no rollback can use."""
    if not finished(change):
        return intern_change(change)
    refs = tuple(
        r for r in change.deployed_refs if seconds_between(r.finished, now) <= horizon_seconds
    )
    if not refs:
        return None
    # Declared images and templates are read only after the phase, which refuses first.
    targets = tuple(TargetFacts(t.kind, t.name, ()) for t in change.targets)
    return intern_change(replace(change, targets=targets, deployed_refs=refs))


def _images(
    images: tuple[tuple[str, str, str | None], ...],
) -> tuple[tuple[str, str, str | None], ...]:
    return tuple((sys.intern(c), sys.intern(i), d) for c, i, d in images)


def intern_change(change: ChangeFacts) -> ChangeFacts:
    """The same facts, with names, images and namespaces shared between changes."""
    return replace(
        change,
        namespace=sys.intern(change.namespace),
        service=sys.intern(change.service),
        requester=sys.intern(change.requester) if change.requester else change.requester,
        targets=tuple(
            replace(t, kind=sys.intern(t.kind), name=sys.intern(t.name), images=_images(t.images))
            for t in change.targets
        ),
        deployed=frozenset((sys.intern(k), sys.intern(n)) for k, n in change.deployed),
        deployed_refs=tuple(
            DeployedFacts(sys.intern(r.kind), sys.intern(r.name), r.finished, _images(r.images))
            for r in change.deployed_refs
        ),
    )
