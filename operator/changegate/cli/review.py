"""`changegate review`: a change manager appends a review to an emergency change.

The webhook stamps who and when (core/change/governance.py); this command only
appends the note, as the caller, and says who the review was stamped with.
"""

from __future__ import annotations

import argparse
from typing import Any

from changegate.adapters.kube import ChangeRequests
from changegate.api.v1alpha1.changerequest import ChangeRequest, Review
from changegate.cli.cluster import Connection


def append_review(changes: ChangeRequests, change: ChangeRequest, note: str) -> ChangeRequest:
    """Append one review; the webhook stamps the reviewer and the time."""
    value = Review(note=note).to_json()
    patch: list[dict[str, Any]]
    if "reviews" in change.spec.model_fields_set:
        patch = [{"op": "add", "path": "/spec/reviews/-", "value": value}]
    else:  # stored before the field existed: add the whole list
        patch = [{"op": "add", "path": "/spec/reviews", "value": [value]}]
    return changes.patch(change, patch)


def review_change(args: argparse.Namespace, connection: Connection) -> None:
    changes = connection.changes()
    change = changes.get(str(args.namespace or connection.namespace), args.name)
    reviewed = append_review(changes, change, args.note)
    review = reviewed.spec.reviews[-1] if reviewed.spec.reviews else None
    who = review.reviewer if review and review.reviewer else "you"
    print(f"changerequest/{reviewed.metadata.name} reviewed by {who}", flush=True)
