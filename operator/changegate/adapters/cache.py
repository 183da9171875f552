"""The webhook's read-only caches: list once, then watch, in a background thread each.

Kopf's own indexes wake every waiting object for each object listed, so their
warm-up grows with the square of the objects (minutes at thousands of
ChangeRequests). A plain list-then-watch per kind fills in seconds, and says
exactly when it is warm. Values are built by the caller's `index` function
(compact facts, parsed once); readers only look keys up.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from kubernetes import client, watch

log = logging.getLogger(__name__)

V = TypeVar("V")
PAGE_SIZE = 500
Lister = Callable[..., Any]
Indexer = Callable[[dict[str, Any]], dict[Hashable, V]]


def release_memory() -> None:
    """Hand the memory of the listing's parsed bodies back to the system.

    A full list parses every object into models that are dropped at once;
    glibc keeps the freed arenas unless asked, which would show as resident
    memory for the life of the process.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class WatchCache(Generic[V]):
    """Objects of one kind, indexed by keys the `index` function returns for each."""

    def __init__(self, name: str, lister: Lister, args: tuple[Any, ...], index: Indexer[V]) -> None:
        self.name = name
        self._lister = lister
        self._args = args
        self._index = index
        self._by_key: dict[Hashable, dict[str, V]] = {}
        self._keys_of: dict[str, list[Hashable]] = {}
        self._lock = threading.Lock()
        self.warm = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cache-{name}", daemon=True)

    def start(self) -> WatchCache[V]:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def get(self, key: Hashable) -> list[V]:
        found = self._by_key.get(key)
        return list(found.values()) if found else []

    def __contains__(self, key: Hashable) -> bool:
        return bool(self._by_key.get(key))

    def __len__(self) -> int:
        return len(self._keys_of)

    # -- filling ------------------------------------------------------------

    def _entries(self, obj: dict[str, Any]) -> dict[Hashable, V]:
        try:
            return self._index(obj)
        except Exception as error:  # one bad object never stops the cache
            log.warning("%s: skipping an object that does not index: %s", self.name, error)
            return {}

    @staticmethod
    def _add(
        by_key: dict[Hashable, dict[str, V]],
        keys_of: dict[str, list[Hashable]],
        uid: str,
        entries: dict[Hashable, V],
    ) -> None:
        for key, value in entries.items():
            by_key.setdefault(key, {})[uid] = value
        if entries:
            keys_of[uid] = list(entries)

    def _put(self, obj: dict[str, Any]) -> None:
        uid = str((obj.get("metadata") or {}).get("uid", ""))
        entries = self._entries(obj)
        with self._lock:
            self._drop(uid)
            self._add(self._by_key, self._keys_of, uid, entries)

    def _drop(self, uid: str) -> None:
        for key in self._keys_of.pop(uid, ()):
            values = self._by_key.get(key)
            if values is not None:
                values.pop(uid, None)
                if not values:
                    del self._by_key[key]

    def _list(self) -> str:
        """List every object, a page at a time, and swap the result in at once.

        Readers keep the previous contents until the new list is complete, so a
        relist after a broken watch never shows an empty cache (which would
        read as "nothing is governed"). Pages keep the transient memory small.
        """
        by_key: dict[Hashable, dict[str, V]] = {}
        keys_of: dict[str, list[Hashable]] = {}
        token: str | None = None
        while True:
            page = self._lister(*self._args, limit=PAGE_SIZE, _continue=token)
            if not isinstance(page, dict):
                page = client.ApiClient().sanitize_for_serialization(page)
            for obj in page.get("items", []):
                uid = str((obj.get("metadata") or {}).get("uid", ""))
                self._add(by_key, keys_of, uid, self._entries(obj))
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or None
            if token is None:
                with self._lock:
                    self._by_key, self._keys_of = by_key, keys_of
                return str(metadata["resourceVersion"])

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                version = self._list()
                if not self.warm.is_set():
                    log.info("cache %s warm with %d objects", self.name, len(self))
                    release_memory()
                self.warm.set()
                while not self._stopped.is_set():
                    version = self._follow(version)
            except Exception as error:
                log.warning("cache %s: %s; listing again", self.name, error)
                self._stopped.wait(1.0)

    def _follow(self, version: str) -> str:
        """Apply watch events from `version` on; the version to go on from when the stream ends."""
        stream = watch.Watch()
        for event in stream.stream(
            self._lister,
            *self._args,
            resource_version=version,
            timeout_seconds=300,
            allow_watch_bookmarks=True,
        ):
            if self._stopped.is_set():
                stream.stop()
                break
            kind, obj = event["type"], event["object"]
            if not isinstance(obj, dict):
                obj = client.ApiClient().sanitize_for_serialization(obj)
            if kind == "ERROR":
                raise RuntimeError(f"watch error: {obj.get('message')}")
            if kind == "BOOKMARK":
                continue
            if kind == "DELETED":
                with self._lock:
                    self._drop(str(obj["metadata"].get("uid", "")))
            else:
                self._put(obj)
        return str(stream.resource_version or version)
