"""Reading the Secret keys a ServiceOnCall names for its channels, through the official client.

A channel asks for keys by its own names (Slack: `url`; the webhook: `url` and
`signingKey`) and gets one SecretValue, which never prints its values. The
client blocks, so async callers use `read`, which runs it in a thread. A
failure names the Secret and key, never a value. `BriefCache` keeps what was
read for a few seconds, so a burst of pages does not read the same Secret for each.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from kubernetes import client

from changegate.adapters.kube import KubeError, NotFound, translated
from changegate.api.v1alpha1.common import SecretKeyRef
from changegate.core.ports import SecretValue


class SecretUnavailable(Exception):
    """A Secret or one of its keys could not be read; the message names which, not its value."""


def decoded(data: Mapping[str, str | bytes] | None, key: str) -> str | None:
    """The text under `key` of a Secret's base64 `data`, without the trailing newline
    that `kubectl create secret --from-file` keeps; None when absent or not text."""
    encoded = (data or {}).get(key)
    if encoded is None:
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8").rstrip("\r\n")
    except (binascii.Error, UnicodeDecodeError):
        return None


class SecretReader:
    """Reads keys of Secrets in a namespace; each Secret once per call."""

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)

    async def read(self, namespace: str, refs: Mapping[str, SecretKeyRef]) -> SecretValue:
        """The keys `refs` names, under the channel's names (in a thread: the client blocks)."""
        return await asyncio.to_thread(self.read_now, namespace, refs)

    def read_now(self, namespace: str, refs: Mapping[str, SecretKeyRef]) -> SecretValue:
        """Blocking form of `read`."""
        data: dict[str, Mapping[str, str | bytes] | None] = {}
        values: dict[str, str] = {}
        for name, ref in refs.items():
            if ref.name not in data:
                data[ref.name] = self._data(namespace, ref.name)
            value = decoded(data[ref.name], ref.key)
            if not value:
                raise SecretUnavailable(
                    f"Secret {namespace}/{ref.name} has no text under the key {ref.key}"
                )
            values[name] = value
        return SecretValue(values)

    def _data(self, namespace: str, name: str) -> Mapping[str, str | bytes] | None:
        try:
            with translated():
                secret = self.core.read_namespaced_secret(name, namespace)
        except NotFound as error:
            raise SecretUnavailable(f"Secret {namespace}/{name} not found") from error
        except KubeError as error:
            raise SecretUnavailable(f"cannot read Secret {namespace}/{name}: {error}") from error
        data: Mapping[str, str | bytes] | None = secret.data
        return data


class Source(Protocol):
    """What BriefCache wraps (SecretReader fits)."""

    async def read(self, namespace: str, refs: Mapping[str, SecretKeyRef]) -> SecretValue: ...


class BriefCache:
    """Secret keys read once per `ttl` seconds for the same namespace and references.

    Only successful reads are kept (a missing Secret is looked for again on the next page),
    in memory only; a rotated Secret is picked up within `ttl`.
    """

    def __init__(
        self, source: Source, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source = source
        self.ttl = ttl
        self.clock = clock
        self._kept: dict[tuple[str, tuple[tuple[str, str, str], ...]], tuple[float, SecretValue]]
        self._kept = {}

    async def read(self, namespace: str, refs: Mapping[str, SecretKeyRef]) -> SecretValue:
        key = (namespace, tuple(sorted((n, r.name, r.key) for n, r in refs.items())))
        kept = self._kept.get(key)
        if kept is not None and self.clock() - kept[0] < self.ttl:
            return kept[1]
        value = await self.source.read(namespace, refs)
        self._kept[key] = (self.clock(), value)
        return value
