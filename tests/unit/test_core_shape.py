"""The core reads as chains of small rules: no function in core/ over 50 lines (issue 9)."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "operator" / "changegate" / "core"
LIMIT = 50


def long_functions() -> list[str]:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > LIMIT:
                    found.append(f"{path.relative_to(CORE)}:{node.lineno} {node.name} ({length})")
    return found


def test_no_core_function_is_over_fifty_lines() -> None:
    assert list(CORE.rglob("*.py")), CORE
    assert long_functions() == []
