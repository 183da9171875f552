"""Status patches: the difference between the status an object has and the one it should have.

Shared by the reconciles of ChangeRequests and ChangeTemplates; a status that
differs only in condition transition times is left alone, so nothing is written
when nothing changed.
"""

from __future__ import annotations

from typing import Any


def same_but_times(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Equal, ignoring condition transition times the core refreshed (nothing changed)."""
    return _strip(current) == _strip(wanted)


def _strip(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "conditions"} | {
        "conditions": sorted(
            (
                {k: v for k, v in c.items() if k != "lastTransitionTime"}
                for c in status.get("conditions", [])
            ),
            key=lambda c: str(c.get("type")),
        )
    }


def status_patch(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any] | None:
    """A merge patch from current to wanted (changed keys, None for dropped ones); None if equal."""
    if same_but_times(current, wanted):
        return None
    result: dict[str, Any] = {k: v for k, v in wanted.items() if current.get(k) != v}
    result.update({k: None for k in current if k not in wanted})
    return result
