"""The CLI's way to the API server: the caller's kubeconfig identity, ChangeRequests only.

The shared Kubernetes adapter loads the kubeconfig the way kubectl does
(--kubeconfig, then KUBECONFIG, then ~/.kube/config; --context) and reads and
writes typed ChangeRequests. Here: the CLI's field manager, the API server's
warnings on stderr as kubectl prints them, the approval and cancel patches,
and the adapter's errors turned into CommandErrors in the server's own words.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from changegate.adapters.kube import ChangeRequests, KubeError, Login
from changegate.api.v1alpha1 import Approval, ChangeRequest
from changegate.cli.errors import CommandError

FIELD_MANAGER = "changegate-cli"


def print_warning(text: str) -> None:
    """An API server warning (for example the webhook's), printed as kubectl does."""
    print(f"Warning: {text}", file=sys.stderr)


@contextmanager
def cluster_errors() -> Iterator[None]:
    """Turn the adapter's failures into CommandErrors with the server's own message."""
    try:
        yield
    except KubeError as error:
        raise CommandError(error.message) from None


def namespace_of(change: ChangeRequest) -> str:
    return change.metadata.namespace or ""


def name_of(change: ChangeRequest) -> str:
    return change.metadata.name or ""


class Connection:
    """The kubeconfig's client and namespace, loaded on first use (a dry run needs neither)."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        self.login = Login(kubeconfig, context)

    @property
    def namespace(self) -> str:
        """The namespace the kubeconfig context names, or `default`."""
        return self.login.namespace

    def changes(self) -> ChangeRequests:
        """ChangeRequests as the caller, written by the CLI's field manager."""
        return ChangeRequests(self.login.api, FIELD_MANAGER, print_warning)


def append_approval(
    changes: ChangeRequests, change: ChangeRequest, approval: Approval
) -> ChangeRequest:
    """Append one decision; the webhook stamps who made it and when."""
    value = approval.to_json()
    patch: list[dict[str, Any]]
    if "approvals" in change.spec.model_fields_set:
        patch = [{"op": "add", "path": "/spec/approvals/-", "value": value}]
    else:
        # Created before the webhook initialised the list: add the whole list. A
        # concurrent approval makes this a replacement, which append-only refuses.
        patch = [{"op": "add", "path": "/spec/approvals", "value": [value]}]
    return changes.patch(change, patch)


def cancel(changes: ChangeRequests, change: ChangeRequest) -> ChangeRequest:
    return changes.patch(change, [{"op": "add", "path": "/spec/cancel", "value": True}])
