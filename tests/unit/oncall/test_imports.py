"""The on-call core stays pure: it imports the standard library, the API and core.common only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import changegate.core.oncall

PACKAGE = Path(changegate.core.oncall.__file__).parent
ALLOWED = ("changegate.api", "changegate.core.common", "changegate.core.oncall")


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_an_oncall_module_imports_only_the_api_core_common_and_the_standard_library(
    path: Path,
) -> None:
    for name in imported_modules(path):
        top = name.split(".")[0]
        if top == "changegate":
            assert name.startswith(ALLOWED), f"{path.name} imports {name}"
        else:
            assert top in sys.stdlib_module_names or top == "__future__", (
                f"{path.name} imports {name}"
            )


def test_the_modules_are_there() -> None:
    assert {p.name for p in PACKAGE.glob("*.py")} >= {"rotation.py", "schedule.py", "wallclock.py"}
