"""The hash chain of a service's DeploymentRecords and the export file, against tampering.

Each table builds an honest chain or export, tampers with it one way (edit a field,
delete, insert, reorder, relink to a wrong hash, truncate) and asserts the verifier
names the place; the honest one verifies clean.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from changegate.core.change.hashchain import (
    GENESIS,
    canonical_json,
    chain_breaks,
    chain_tip,
    export_breaks,
    export_lines,
    link_to,
    running_hash,
    sha256_of,
)

Body = dict[str, Any]


def record(
    name: str, second: int, service: str = "payments-api", previous: Body | None = None
) -> Body:
    """A stored record created at 10:00:<second>, linked to `previous` as the operator links."""
    spec: Body = {
        "service": service,
        "environment": "production",
        "finishTime": f"2026-11-17T10:00:{second:02d}Z",
        "result": "Succeeded",
        "images": [{"container": "api", "image": f"api:{second}"}],
    }
    if previous is not None:
        link = link_to(previous)
        spec["previous"] = {"name": link.name, "sha256": link.sha256}
    stamp = f"2026-11-17T10:00:{second:02d}Z"
    return {"metadata": {"name": name, "creationTimestamp": stamp}, "spec": spec}


def chain(length: int, service: str = "payments-api", start: int = 1) -> list[Body]:
    bodies: list[Body] = []
    for i in range(start, start + length):
        bodies.append(record(f"{service}.{i}", i, service, bodies[-1] if bodies else None))
    return bodies


def test_the_hash_is_over_canonical_json_of_the_spec() -> None:
    body = record("a", 1)
    reordered = {"metadata": body["metadata"], "spec": dict(reversed(list(body["spec"].items())))}

    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
    assert link_to(body).sha256 == link_to(reordered).sha256 == sha256_of(body["spec"])


def test_an_honest_chain_verifies_and_its_tip_is_the_newest_record() -> None:
    bodies = chain(4) + chain(2, "orders")

    assert chain_breaks(bodies) == []
    assert chain_tip(bodies[:4]) == link_to(bodies[3])
    assert chain_tip([]) is None


def test_records_written_before_the_chain_began_and_a_start_cut_by_retention_pass() -> None:
    legacy = [record("old.1", 1), record("old.2", 2)]
    chained = [record("new.3", 3, previous=legacy[1])]
    chained.append(record("new.4", 4, previous=chained[0]))

    assert chain_breaks(legacy + chained) == []
    assert chain_breaks(chained) == []  # the first ones deleted by retention


def edit_field(bodies: list[Body]) -> list[Body]:
    bodies[1]["spec"]["images"][0]["image"] = "api:forged"
    return bodies


def delete_middle(bodies: list[Body]) -> list[Body]:
    del bodies[2]
    return bodies


def insert_unlinked(bodies: list[Body]) -> list[Body]:
    return [*bodies, record("forged", 30)]


def insert_forked(bodies: list[Body]) -> list[Body]:
    return [*bodies, record("forged", 30, previous=bodies[1])]


def relink_wrong_hash(bodies: list[Body]) -> list[Body]:
    bodies[3]["spec"]["previous"]["sha256"] = "f" * 64
    return bodies


def relink_to_other(bodies: list[Body]) -> list[Body]:
    bodies[3]["spec"]["previous"] = {"name": bodies[1]["metadata"]["name"], "sha256": "0" * 64}
    return bodies


def reorder_links(bodies: list[Body]) -> list[Body]:
    """Swap the content of two records, keeping their names and links."""
    first, second = bodies[1]["spec"], bodies[2]["spec"]
    first["images"], second["images"] = second["images"], first["images"]
    return bodies


def delete_oldest_and_middle(bodies: list[Body]) -> list[Body]:
    return [bodies[1], bodies[3], bodies[4]]


@pytest.mark.parametrize(
    ("tamper", "record_named"),
    [
        (edit_field, "payments-api.3"),  # its successor's link no longer matches
        (delete_middle, "payments-api.4"),  # links to the deleted .3
        (insert_unlinked, "forged"),
        (insert_forked, "forged"),
        (relink_wrong_hash, "payments-api.4"),
        (relink_to_other, "payments-api.4"),
        (reorder_links, "payments-api.3"),
        (delete_oldest_and_middle, "payments-api.4"),
    ],
    ids=[
        "edit-a-field", "delete-a-record", "insert-unlinked", "insert-forked",
        "relink-wrong-hash", "relink-to-another-record", "reorder", "delete-two",
    ],
)  # fmt: skip
def test_every_kind_of_tampering_breaks_the_chain_where_it_happened(
    tamper: Callable[[list[Body]], list[Body]], record_named: str
) -> None:
    honest = chain(5) + chain(2, "orders")
    tampered = tamper(honest[:5]) + honest[5:]

    breaks = chain_breaks(tampered)

    assert breaks, "tampering went unnoticed"
    assert {b.service for b in breaks} == {"payments-api"}
    assert record_named in {b.record for b in breaks}, [str(b) for b in breaks]


def test_a_deleted_record_is_named_in_the_break() -> None:
    [found] = chain_breaks(delete_middle(chain(5)))

    assert found.record == "payments-api.4"
    assert "payments-api.3, which no longer exists: a record was deleted" in found.problem


def test_the_newest_record_deleted_needs_an_anchor_outside_the_chain() -> None:
    """A chain cannot tell its own truncation: the export's last hash is that anchor."""
    assert chain_breaks(chain(5)[:4]) == []


# -- the export file ------------------------------------------------------------------------

HEADER = {"since": "2026-11-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"}


def export(count: int = 5) -> list[str]:
    objects = [{"kind": "DeploymentRecord", "metadata": {"name": f"r{i}"}} for i in range(count)]
    return list(export_lines(HEADER, objects))


def test_an_honest_export_verifies_and_each_line_carries_the_running_hash() -> None:
    lines = export()
    entries = [json.loads(line) for line in lines]

    assert export_breaks(lines) == []
    assert [e["line"] for e in entries] == list(range(1, 8))
    assert [e["kind"] for e in entries] == ["Header"] + ["DeploymentRecord"] * 5 + ["End"]
    assert entries[0]["sha256"] == running_hash(GENESIS, entries[0])
    assert entries[3]["sha256"] == running_hash(entries[2]["sha256"], entries[3])
    assert export_breaks(lines, expected_last=entries[-1]["sha256"]) == []


def edit_line(lines: list[str]) -> list[str]:
    lines[3] = lines[3].replace('"r2"', '"r9"')
    return lines


def edit_and_rehash(lines: list[str]) -> list[str]:
    """The editor recomputes the edited line's hash: the next line no longer follows."""
    entry = json.loads(lines[3].replace('"r2"', '"r9"'))
    entry["sha256"] = running_hash(json.loads(lines[2])["sha256"], entry)
    lines[3] = json.dumps(entry)
    return lines


def remove_line(lines: list[str]) -> list[str]:
    del lines[3]
    return lines


def insert_line(lines: list[str]) -> list[str]:
    lines.insert(3, lines[3])
    return lines


def reorder_lines(lines: list[str]) -> list[str]:
    lines[3], lines[4] = lines[4], lines[3]
    return lines


def truncate(lines: list[str]) -> list[str]:
    return lines[:5]


def not_json(lines: list[str]) -> list[str]:
    lines[3] = lines[3][:-5]
    return lines


@pytest.mark.parametrize(
    ("tamper", "first_line"),
    [
        (edit_line, 4),
        (edit_and_rehash, 5),
        (remove_line, 4),
        (insert_line, 5),
        (reorder_lines, 4),
        (truncate, 5),
        (not_json, 4),
    ],
    ids=["edit", "edit-and-rehash", "remove", "insert", "reorder", "truncate", "not-json"],
)
def test_every_kind_of_tampering_names_the_line(
    tamper: Callable[[list[str]], list[str]], first_line: int
) -> None:
    breaks = export_breaks(tamper(export()))

    assert breaks, "tampering went unnoticed"
    assert breaks[0].line == first_line, [str(b) for b in breaks]


def test_a_rewrite_of_every_hash_is_caught_by_the_last_hash_kept_elsewhere() -> None:
    honest = export()
    kept = json.loads(honest[-1])["sha256"]
    objects = [{"kind": "DeploymentRecord", "metadata": {"name": f"r{i}"}} for i in (0, 1, 3, 4)]
    rewritten = list(export_lines(HEADER, objects))

    assert export_breaks(rewritten) == []
    assert [b.line for b in export_breaks(rewritten, expected_last=kept)] == [6]


def test_an_empty_file_is_no_export() -> None:
    assert export_breaks([])
    assert export_breaks(copy.copy(export())[1:])[0].line == 1
