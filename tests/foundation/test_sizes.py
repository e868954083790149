"""No module over 500 lines outside the simulator, no function over 80 lines.

Counted with :mod:`ast` on the source files (nothing is imported); one over
fails here, naming it. The only exception is the tracker's ``apply``, the
measured hot path (``benchmarks/tracker.py``): one function on purpose, kept long.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sscl_daemon

ROOT = Path(sscl_daemon.__file__).parent
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

# The hot path, long on purpose (a call per event is measured in benchmarks/tracker.py).
HOT_PATH = frozenset({"calls/tracker.py:apply"})


def sources() -> list[tuple[str, str]]:
    """(path under the package, text) of every module outside the simulator."""
    return [
        (path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"))
        for path in sorted(ROOT.rglob("*.py"))
        if "simulator" not in path.relative_to(ROOT).parts
    ]


def test_no_module_over_the_limit() -> None:
    large = {name for name, text in sources() if text.count("\n") > MAX_MODULE_LINES}
    assert not large, f"over {MAX_MODULE_LINES} lines: {sorted(large)}"


def test_no_function_over_the_limit() -> None:
    long = set()
    for name, text in sources():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    long.add(f"{name}:{node.name}")
    over = long - HOT_PATH
    assert not over, f"over {MAX_FUNCTION_LINES} lines: {sorted(over)}"
