"""The webhook's list-then-watch cache: pages, keys, and a relist that never shows it empty."""

from __future__ import annotations

import threading
from typing import Any

from changegate.adapters.cache import WatchCache
from changegate.handlers.webhook.caches import index_changes
from tests.unit.builders import NAMESPACE, SERVICE, approval, change_request


def obj(uid: str, namespace: str, target: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "namespace": namespace}, "spec": {"target": target}}


def by_target(body: dict[str, Any]) -> dict[Any, str]:
    return {(body["metadata"]["namespace"], body["spec"]["target"]): body["metadata"]["uid"]}


class Pages:
    """A lister that serves `items` two at a time, as the API server's `limit` does."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.calls: list[str | None] = []
        self.during: threading.Event | None = None
        self.release: threading.Event | None = None

    def __call__(self, *args: Any, limit: int, _continue: str | None) -> dict[str, Any]:
        self.calls.append(_continue)
        start = int(_continue or 0)
        if start and self.during is not None and self.release is not None:
            self.during.set()
            self.release.wait(5)
        end = start + 2
        more = str(end) if end < len(self.items) else None
        return {
            "items": self.items[start:end],
            "metadata": {"resourceVersion": "7", "continue": more},
        }


def test_a_list_reads_every_page_and_indexes_by_key() -> None:
    pages = Pages([obj(f"u{i}", "prod", f"web-{i % 2}") for i in range(5)])
    cache: WatchCache[str] = WatchCache("t", pages, (), by_target)
    assert cache._list() == "7"
    assert pages.calls == [None, "2", "4"]
    assert sorted(cache.get(("prod", "web-0"))) == ["u0", "u2", "u4"]
    assert ("prod", "web-1") in cache
    assert len(cache) == 5


def test_watch_events_update_and_delete_entries() -> None:
    cache: WatchCache[str] = WatchCache("t", Pages([obj("a", "prod", "web")]), (), by_target)
    cache._list()
    cache._put(obj("a", "prod", "api"))  # the object now targets another workload
    assert cache.get(("prod", "web")) == []
    assert cache.get(("prod", "api")) == ["a"]
    cache._drop("a")
    assert ("prod", "api") not in cache


def test_a_relist_keeps_the_old_contents_until_it_is_complete() -> None:
    pages = Pages([obj("a", "prod", "web"), obj("b", "prod", "api"), obj("c", "prod", "db")])
    cache: WatchCache[str] = WatchCache("t", pages, (), by_target)
    cache._list()
    pages.during, pages.release = threading.Event(), threading.Event()
    pages.items = [obj("a", "prod", "web")]  # b and c are gone by the relist
    pages.items += [obj("d", "prod", "queue"), obj("e", "prod", "cache")]
    relist = threading.Thread(target=cache._list)
    relist.start()
    assert pages.during.wait(5)
    # Half-way through the relist, readers still see everything the last list had.
    assert cache.get(("prod", "api")) == ["b"]
    pages.release.set()
    relist.join(5)
    assert cache.get(("prod", "api")) == []
    assert cache.get(("prod", "cache")) == ["e"]


def test_an_object_that_does_not_index_is_skipped() -> None:
    def broken(body: dict[str, Any]) -> dict[Any, str]:
        if body["metadata"]["uid"] == "bad":
            raise ValueError("unparseable")
        return by_target(body)

    cache: WatchCache[str] = WatchCache(
        "t", Pages([obj("bad", "p", "x"), obj("ok", "p", "y")]), (), broken
    )
    cache._list()
    assert cache.get(("p", "y")) == ["ok"]
    assert len(cache) == 1


def test_the_change_index_keeps_live_changes_and_drops_finished_ones() -> None:
    live = index_changes(change_request("live", approvals=[approval()]).to_json())
    no = index_changes(change_request("no", approvals=[approval(decision="Rejected")]).to_json())
    assert {key: facts.name for key, facts in live.items()} == {
        (NAMESPACE, "Deployment", SERVICE): "live"
    }
    assert no == {}
