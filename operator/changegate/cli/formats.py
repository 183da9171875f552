"""`-o json` and `-o yaml`: ChangeRequests as the API serves them, for scripts.

One object prints as itself; a list prints as a `v1` List, as kubectl does,
so `changegate list -o json | jq '.items[]'` works like `kubectl get`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import yaml

from changegate.api.v1alpha1 import ChangeRequest


class OutputFormat(StrEnum):
    """What -o accepts."""

    JSON = "json"
    YAML = "yaml"


def dump(document: dict[str, Any], fmt: OutputFormat) -> str:
    if fmt is OutputFormat.JSON:
        return json.dumps(document, indent=2)
    return yaml.safe_dump(document, sort_keys=False).rstrip("\n")


def dump_change(change: ChangeRequest, fmt: OutputFormat) -> str:
    return dump(change.to_json(), fmt)


def dump_changes(changes: Sequence[ChangeRequest], fmt: OutputFormat) -> str:
    document = {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": [c.to_json() for c in changes],
    }
    return dump(document, fmt)
