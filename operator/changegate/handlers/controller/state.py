"""What every controller handler shares: its state in Kopf's memo, the clock, parsing, audit.

The one place that reads the time (`utc_now`, carried as `ControllerState.clock`),
parses bodies into models at the boundary (`parse`) and writes audit lines.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from changegate.adapters.kube import KubeAdapter
from changegate.core.ports import Clock
from changegate.settings import Settings

log = logging.getLogger("changegate.handlers.controller")
_audit_log = logging.getLogger("changegate.audit")


class Parsed(Protocol):
    """A model parse() can build: the API's pydantic models and core.report's slim structs."""

    @classmethod
    def model_validate(cls, obj: Any) -> Self: ...


M = TypeVar("M", bound=Parsed)


def utc_now() -> dt.datetime:
    """The controller's clock."""
    return dt.datetime.now(dt.UTC)


@dataclass
class ControllerState:
    """The controller's live state: settings, its adapter and clock, what it started."""

    settings: Settings
    kube: KubeAdapter
    clock: Clock = utc_now
    runner: web.AppRunner | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Set once Kopf has filled every index (handlers/controller/schedule.note_indexed).
    indexed: asyncio.Event = field(default_factory=asyncio.Event)


def state_of(memo: Any) -> ControllerState:
    state: ControllerState = memo.state
    return state


def parse(model: type[M], body: Any) -> M | None:
    """The body as the model, or None (logged) when it does not parse: one bad object waits."""
    try:
        return model.model_validate(dict(body))
    except ValidationError as error:
        log.warning("skipping %s that does not parse: %s", model.__name__, error.errors()[:3])
        return None


def audit(action: str, now: dt.datetime, **fields: Any) -> None:
    """One structured JSON line per transition, for the audit log."""
    _audit_log.info(json.dumps({"time": now.isoformat(), "action": action, **fields}, default=str))


def creation_body(model: BaseModel) -> dict[str, Any]:
    """An object to create, as the API takes it: status is the operator's to write later."""
    body: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_none=True)
    body.pop("status", None)
    return body
