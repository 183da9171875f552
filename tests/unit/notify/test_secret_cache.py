"""BriefCache: a burst of pages reads a channel's Secret once, a rotation is seen within the TTL."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from changegate.adapters.notify.secrets import BriefCache, SecretUnavailable
from changegate.api.v1alpha1.common import SecretKeyRef
from changegate.core.ports import SecretValue

REFS = {"url": SecretKeyRef(name="pager", key="url")}


class Counting:
    """A Secret source that counts reads and serves the current value (or fails)."""

    def __init__(self) -> None:
        self.reads = 0
        self.value = "https://one.example/page"
        self.missing = False

    async def read(self, namespace: str, refs: Mapping[str, SecretKeyRef]) -> SecretValue:
        self.reads += 1
        if self.missing:
            raise SecretUnavailable(f"Secret {namespace}/pager not found")
        return SecretValue({"url": self.value})


def test_reads_within_the_ttl_share_one_read_and_a_rotation_shows_after_it() -> None:
    source, now = Counting(), [0.0]
    cache = BriefCache(source, ttl=10.0, clock=lambda: now[0])

    async def scenario() -> None:
        for _ in range(5):
            assert (await cache.read("team-a", REFS)).get("url") == "https://one.example/page"
        source.value = "https://two.example/page"
        now[0] = 9.9
        assert (await cache.read("team-a", REFS)).get("url") == "https://one.example/page"
        assert (await cache.read("team-b", REFS)).get("url") == "https://two.example/page"
        now[0] = 10.0
        assert (await cache.read("team-a", REFS)).get("url") == "https://two.example/page"

    asyncio.run(scenario())
    assert source.reads == 3


def test_a_failed_read_is_not_kept() -> None:
    source = Counting()
    source.missing = True
    cache = BriefCache(source, ttl=10.0, clock=lambda: 0.0)

    async def scenario() -> None:
        with pytest.raises(SecretUnavailable):
            await cache.read("team-a", REFS)
        source.missing = False
        assert (await cache.read("team-a", REFS)).get("url") == "https://one.example/page"

    asyncio.run(scenario())
    assert source.reads == 2
