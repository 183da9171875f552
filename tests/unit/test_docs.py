"""The docs name only paths that exist: README.md and ARCHITECTURE.md against the tree.

Two kinds of mention are checked. In a tree (a fenced block without a
language; diagrams are tagged `text`), each line's first word is a path, nested
under the nearest less indented directory above it. Elsewhere (other code
blocks and inline code), a word that starts with a top-level directory of the
repository, or of the package (`core/...`, `handlers/...`), is a path.
`<placeholder>` and `*` match any name.
"""

from __future__ import annotations

import re

import pytest

from tests.support.localcluster import REPO

PACKAGE = "operator/changegate/"
DOCS = ("README.md", "ARCHITECTURE.md")
FENCE = re.compile(r"^```(?P<lang>\S*)\n(?P<body>.*?)^```$", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
TREE_ENTRY = re.compile(r"^(?P<indent> *)(?P<path>[\w.<>*-]+(?:/[\w.<>*-]+)*/?)(?: {2,}|$)")
WORD = re.compile(r"[\w.<>*/-]+")
FILENAMES = {"Makefile", "Dockerfile"}


def top_level_dirs() -> dict[str, str]:
    """First path segment -> what it is relative to: the repository, or the package."""
    roots = {"": REPO, PACKAGE: REPO / PACKAGE}
    return {
        p.name: prefix
        for prefix, root in roots.items()
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith((".", "_"))
    }


def tree_paths(block: str) -> list[str]:
    """Paths of a tree block: `dir/` lines open a level, deeper lines live inside it."""
    found: list[str] = []
    parents: list[tuple[int, str]] = []
    for line in block.splitlines():
        entry = TREE_ENTRY.match(line)
        if entry is None:
            continue
        name, indent = entry["path"], len(entry["indent"])
        if not (name.endswith("/") or "." in name or name in FILENAMES):
            continue
        while parents and parents[-1][0] >= indent:
            parents.pop()
        path = (parents[-1][1] if parents else "") + name
        found.append(path)
        if name.endswith("/"):
            parents.append((indent, path))
    return found


def rooted_paths(text: str, tops: dict[str, str]) -> list[str]:
    """Words that start with a top-level directory and a slash, from the repository root."""
    words = (word.rstrip(".,:;") for word in WORD.findall(text) if "/" in word)
    return [tops[w.split("/", 1)[0]] + w for w in words if w.split("/", 1)[0] in tops]


def paths_named(text: str, tops: dict[str, str]) -> list[str]:
    found: list[str] = []
    prose = FENCE.sub("", text)
    for block in FENCE.finditer(text):
        body = block["body"]
        found += tree_paths(body) if not block["lang"] else rooted_paths(body, tops)
    for code in INLINE.findall(prose):
        found += rooted_paths(code, tops)
    return found


def exists(path: str) -> bool:
    pattern = re.sub(r"<[^>]*>", "*", path).rstrip("/")
    if "*" in pattern:
        return any(REPO.glob(pattern))
    return (REPO / pattern).exists()


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_the_doc_names_exists(doc: str) -> None:
    named = paths_named((REPO / doc).read_text(), top_level_dirs())
    assert named, f"{doc} names no paths: the parser no longer understands it"
    missing = sorted({p for p in named if not exists(p)})
    assert missing == [], f"{doc} names paths that do not exist"


TREE = """\
operator/changegate/     the package
  core/change/           pure
  api/crdgen.py          models -> crds/*.yaml
Makefile                 targets
crds/                    generated
"""


def test_a_tree_nests_entries_under_the_directory_above() -> None:
    assert tree_paths(TREE) == [
        "operator/changegate/",
        "operator/changegate/core/change/",
        "operator/changegate/api/crdgen.py",
        "Makefile",
        "crds/",
    ]


def test_a_path_that_does_not_exist_is_found() -> None:
    text = "```\noperator/changegate/\n  adapters/jira.py  tickets\n```\n"
    named = paths_named(text, top_level_dirs())
    assert [p for p in named if not exists(p)] == ["operator/changegate/adapters/jira.py"]


def test_paths_in_commands_diagrams_and_inline_code_are_checked() -> None:
    text = (
        "```sh\nhelm install x charts/nowhere --set a=b\n```\n"
        "```text\n  webhook --> core/change/nowhere.py\n```\n"
        "see `hack/missing.sh`.\n"
    )
    assert paths_named(text, top_level_dirs()) == [
        "charts/nowhere",
        "operator/changegate/core/change/nowhere.py",
        "hack/missing.sh",
    ]


def test_placeholders_match_any_name() -> None:
    assert exists("hack/build/<module>/go.mod")
    assert not exists("hack/nothing/<module>/go.mod")
