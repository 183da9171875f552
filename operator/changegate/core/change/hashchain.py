"""Tamper-evident evidence: each service's DeploymentRecords as a hash chain, and exports.

The controller links a new record to its service's latest one (`chain_tip`, `link_to`);
`changegate report verify` walks every chain (`chain_breaks`) and checks an exported
JSON Lines file line by line (`export_lines`, `export_breaks`). Pure: raw bodies as the
API server stores them in, findings out. Both hashes use `canonical_json`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

EXPORT_FORMAT = "changegate.io/evidence-export/v1"
GENESIS = "0" * 64  # the running hash before line 1
HASH_FIELD = "sha256"


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value: keys sorted, no whitespace, UTF-8."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def sha256_of(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


# -- the chain of a service's DeploymentRecords -------------------------------------


@dataclass(frozen=True, slots=True)
class Link:
    """What a record says of its predecessor: its name and the SHA-256 of its spec."""

    name: str
    sha256: str


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One stored DeploymentRecord, as the chain sees it."""

    name: str
    service: str
    digest: str  # SHA-256 of its spec, link included
    previous: Link | None
    order: tuple[str, str, str]  # creationTimestamp (the server's), finishTime, name

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ChainEntry:
        metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
        link = spec.get("previous") or {}
        name = str(metadata.get("name", ""))
        return cls(
            name=name,
            service=str(spec.get("service", "")),
            digest=sha256_of(spec),
            previous=Link(str(link.get("name", "")), str(link.get("sha256", ""))) if link else None,
            order=(
                str(metadata.get("creationTimestamp", "")),
                str(spec.get("finishTime", "")),
                name,
            ),
        )


def link_to(body: Mapping[str, Any]) -> Link:
    """The link a new record carries to this stored record."""
    entry = ChainEntry.of(body)
    return Link(entry.name, entry.digest)


def _tips(entries: Sequence[ChainEntry]) -> list[ChainEntry]:
    """Records no other record links to, newest first."""
    linked = {e.previous.name for e in entries if e.previous}
    return sorted((e for e in entries if e.name not in linked), key=lambda e: e.order, reverse=True)


def chain_tip(bodies: Iterable[Mapping[str, Any]]) -> Link | None:
    """The link to a service's latest record (the newest one nobody links to), or None."""
    tips = _tips([ChainEntry.of(b) for b in bodies])
    return Link(tips[0].name, tips[0].digest) if tips else None


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where a service's chain is broken, and how."""

    service: str
    record: str
    problem: str

    def __str__(self) -> str:
        return f"service {self.service}: record {self.record}: {self.problem}"


def _walk(
    start: ChainEntry, by_name: Mapping[str, ChainEntry]
) -> tuple[list[ChainEntry], Link | None]:
    """From `start` back along the links: the records reached, and the link that ends
    the walk at a missing record (None when it ends at a record without a link)."""
    reached: list[ChainEntry] = []
    current: ChainEntry | None = start
    while current is not None and current not in reached:
        reached.append(current)
        link = current.previous
        if link is None:
            return reached, None
        current = by_name.get(link.name)
        if current is None:
            return reached, link
    return reached, None


def _main_walk(
    entries: Sequence[ChainEntry], by_name: Mapping[str, ChainEntry]
) -> tuple[list[ChainEntry], Link | None]:
    """The chain: the longest walk from a tip (the newest on a tie). A forged record
    that links to an old one, or to none, starts a shorter walk."""
    walks = [(_walk(tip, by_name), tip.order) for tip in _tips(entries)]
    if not walks:
        return [], None
    return max(walks, key=lambda walk: (len(walk[0][0]), walk[1]))[0]


def _mismatches(
    service: str, reached: Sequence[ChainEntry], by_name: Mapping[str, ChainEntry]
) -> Iterator[ChainBreak]:
    for entry in reached:
        link = entry.previous
        target = by_name.get(link.name) if link else None
        if link and target and target.digest != link.sha256:
            yield ChainBreak(
                service,
                entry.name,
                f"links to {link.name} with sha256 {link.sha256[:12]}…, but that record's spec"
                f" hashes to {target.digest[:12]}…: {link.name} was altered, or this link was",
            )


def _off_chain(
    service: str,
    entries: Sequence[ChainEntry],
    reached: Sequence[ChainEntry],
    cut: Link | None,
) -> Iterator[ChainBreak]:
    """Records the chain never reaches, and a chain cut short while older records remain."""
    names = {e.name for e in entries}
    left = [e for e in entries if e not in reached]
    start = min(e.order for e in reached) if reached else ("", "", "")
    if cut is not None and any(e.order < start for e in left):
        yield ChainBreak(service, reached[-1].name, _deleted(cut))
    for entry in left:
        if entry.previous is not None and entry.previous.name not in names:
            yield ChainBreak(service, entry.name, _deleted(entry.previous))
        elif entry.order >= start:
            yield ChainBreak(
                service,
                entry.name,
                "is not on the chain: no later record links to it, or it links to a record"
                " another record links to (inserted, or the record after it was deleted)",
            )
        elif entry.previous is not None and cut is None:
            yield ChainBreak(service, entry.name, "is cut off from the chain")


def _deleted(link: Link) -> str:
    return f"links to {link.name}, which no longer exists: a record was deleted"


def service_breaks(service: str, entries: Sequence[ChainEntry]) -> list[ChainBreak]:
    """Every break in one service's chain; records older than the chain that carry no
    link were written before the chain began, and the chain's first record may link
    to one deleted by retention."""
    by_name = {e.name: e for e in entries}
    reached, cut = _main_walk(entries, by_name)
    return [*_mismatches(service, reached, by_name), *_off_chain(service, entries, reached, cut)]


def chain_breaks(bodies: Iterable[Mapping[str, Any]]) -> list[ChainBreak]:
    """Every break in every service's chain, by service."""
    by_service: dict[str, list[ChainEntry]] = {}
    for body in bodies:
        entry = ChainEntry.of(body)
        by_service.setdefault(entry.service, []).append(entry)
    return [
        found
        for service in sorted(by_service)
        for found in service_breaks(service, by_service[service])
    ]


# -- the export file: JSON Lines with a running SHA-256 --------------------------------


def running_hash(previous: str, entry: Mapping[str, Any]) -> str:
    """The hash a line carries: over the previous line's hash and this line's content."""
    content = {k: v for k, v in entry.items() if k != HASH_FIELD}
    return hashlib.sha256(previous.encode("ascii") + canonical_json(content)).hexdigest()


def export_lines(header: Mapping[str, Any], objects: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The lines of an export: a Header, one line per object, an End that counts them."""
    previous, number = GENESIS, 0

    def line(kind: str, content: Mapping[str, Any]) -> str:
        nonlocal previous, number
        number += 1
        entry: dict[str, Any] = {"line": number, "kind": kind, **content}
        previous = entry[HASH_FIELD] = running_hash(previous, entry)
        return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    yield line("Header", {"format": EXPORT_FORMAT, **header})
    for found in objects:
        yield line(str(found.get("kind", "Object")), {"object": found})
    yield line("End", {"lines": number + 1})


@dataclass(frozen=True, slots=True)
class LineBreak:
    """A line of an export that does not verify: its line number in the file, and why."""

    line: int
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.problem}"


def _parsed(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _line_break(
    position: int, entry: dict[str, Any] | None, previous: str, shift: int
) -> LineBreak | None:
    """Why the line at `position` does not verify; `shift`: how far the line before was
    from its own number (lines moved together are named once, where they start)."""
    if entry is None:
        return LineBreak(position, "is not a JSON object: edited")
    number = entry.get("line")
    if not isinstance(number, int) or number - position != shift:
        where = "before" if number == position else "at or before"
        return LineBreak(
            position,
            f"carries line number {number}: lines were removed, inserted or reordered"
            f" {where} this line",
        )
    if entry.get(HASH_FIELD) != running_hash(previous, entry):
        return LineBreak(
            position,
            "its running sha256 does not match: this line (or the one before) was edited",
        )
    return None


def _ends(entries: Sequence[dict[str, Any] | None]) -> list[LineBreak]:
    """The first line must be the Header; the last the End, counting every line."""
    found = []
    first = entries[0] if entries else None
    if first is None or first.get("kind") != "Header" or first.get("format") != EXPORT_FORMAT:
        found.append(LineBreak(1, f"is not the header of a {EXPORT_FORMAT} export"))
    last = entries[-1] if entries else None
    if last is None or last.get("kind") != "End" or last.get("lines") != len(entries):
        found.append(
            LineBreak(
                len(entries),
                f"is not the End line counting {len(entries)} lines: the file was truncated"
                " or lines were added after it",
            )
        )
    return found


def export_breaks(lines: Iterable[str], expected_last: str | None = None) -> list[LineBreak]:
    """Every line that does not verify. Each line is checked against the hash the line
    before it carries, so an edit is named where it was made. `expected_last`: the last
    line's hash, as kept elsewhere when the file was written (a rewrite of every hash)."""
    entries = [_parsed(text) for text in lines if text.strip()]
    found: list[LineBreak] = []
    previous, shift = GENESIS, 0
    for position, entry in enumerate(entries, start=1):
        problem = _line_break(position, entry, previous, shift)
        if problem is not None:
            found.append(problem)
        number = (entry or {}).get("line")
        shift = number - position if isinstance(number, int) else shift
        previous = str((entry or {}).get(HASH_FIELD, ""))
    found += _ends(entries)
    if expected_last is not None and previous != expected_last:
        found.append(
            LineBreak(
                len(entries),
                f"the last hash is {previous[:12]}…, not the {expected_last[:12]}… expected",
            )
        )
    return sorted(set(found), key=lambda b: (b.line, b.problem))
