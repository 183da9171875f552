"""What both halves of the core share: identities, time and conditions.

Small and dependency-free on purpose: `core.change`, `core.oncall` and
`core.incident` import this module and never each other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from changegate.api.v1alpha1.common import Condition, ConditionStatus


@dataclass(frozen=True, slots=True)
class User:
    """A user as the API server authenticated them (an admission request's userInfo)."""

    username: str
    groups: frozenset[str] = frozenset()

    @classmethod
    def from_userinfo(cls, userinfo: Mapping[str, Any] | None) -> User:
        info = userinfo or {}
        return cls(str(info.get("username", "")), frozenset(info.get("groups") or ()))

    def in_any(self, groups: frozenset[str] | tuple[str, ...]) -> bool:
        return not self.groups.isdisjoint(groups)


def timestamp(moment: dt.datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as Kubernetes writes times."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str | None) -> dt.datetime | None:
    """A Kubernetes timestamp (`...Z` or with an offset), or None for none."""
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds_between(start: dt.datetime, end: dt.datetime) -> int:
    """Whole seconds from start to end, never negative."""
    return max(0, int((end - start).total_seconds()))


def raw_condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    """The condition of a type in a raw object's status (e.g. a Deployment's), or {}."""
    return next((c for c in status.get("conditions") or () if c.get("type") == type_), {})


def next_condition(
    previous: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: dt.datetime,
) -> Condition:
    """A condition as it should read now; its transition time moves only when its status does."""
    old = next((c for c in previous if c.type == type_), None)
    changed = old is None or old.status != status
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:1024],
        observed_generation=generation,
        last_transition_time=now if changed or old is None else old.last_transition_time,
    )
