"""No import cycle in ``sscl_daemon``, between modules or between packages.

Walks every module's imports with :mod:`ast` (nothing is imported): the
imports a module runs when it is loaded, and those inside its functions, but
not those under ``if TYPE_CHECKING:`` (they never run). A cycle is reported
as the chain of modules (or packages) that closes it, so the fix is to move
the shared piece to a neutral home (as ``sscl_daemon.backoff`` was) rather
than to hide an import inside a function: a function-level import is coupling
all the same, so it counts.

:data:`KNOWN` would list package edges of cycles still to be broken, each with its
reason and way out; they are left out of both checks, and an entry that no longer
exists fails the test so the list only shrinks. It is empty.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import sscl_daemon

ROOT = Path(sscl_daemon.__file__).parent
PACKAGE = "sscl_daemon"

# (importing package, imported package) -> why the edge is still there, and the way out.
# Empty: every cycle is broken; an entry added here must say why and how it will go.
KNOWN: dict[tuple[str, str], str] = {}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, skipping ``if TYPE_CHECKING:`` bodies."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports_in(child))
        else:
            yield from _imports(node)


def _imports_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _imports(node)


def targets(
    name: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]
) -> set[str]:
    """The package's modules one import statement loads (the named module, not its parents)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & known
    base = name.split(".") if is_package else name.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        module = ".".join([*base, node.module] if node.module else base)
    else:
        module = node.module or ""
    loaded = set()
    for alias in node.names:
        submodule = f"{module}.{alias.name}"
        loaded.add(submodule if submodule in known else module)
    return loaded & known


def _known(source: str, target: str) -> bool:
    return (package_of(source), package_of(target)) in KNOWN


@functools.cache
def module_graph(*, with_known: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (without the :data:`KNOWN` edges)."""
    found = modules()
    known = set(found)
    graph: dict[str, set[str]] = {name: set() for name in found}
    for name, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        for node in _imports(tree):
            graph[name] |= {
                target
                for target in targets(name, is_package, node, known) - {name}
                if with_known or not _known(name, target)
            }
    return graph


def package_of(module: str) -> str:
    """``sscl_daemon.store.leases`` -> ``sscl_daemon.store``; a top-level module is its own."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for module, imported in graph.items():
        own = package_of(module)
        packages.setdefault(own, set()).update(
            package_of(m) for m in imported if package_of(m) != own
        )
    return packages


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One closing chain for each strongly connected group of more than one node."""
    found: list[list[str]] = []
    seen: set[str] = set()
    for start in sorted(graph):
        if start in seen:
            continue
        chain = _cycle_through(start, graph)
        if chain:
            found.append(chain)
            seen.update(chain)
    return found


def _cycle_through(start: str, graph: dict[str, set[str]]) -> list[str]:
    """The shortest chain start -> ... -> start (breadth first), or [] when none."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(graph.get(node, ())):
                if target == start:
                    chain = [node]
                    while chain[-1] != start:
                        chain.append(parents[chain[-1]])
                    return [start, *reversed(chain[:-1]), start]
                if target not in parents:
                    parents[target] = node
                    following.append(target)
        frontier = following
    return []


def _report(found: list[list[str]]) -> str:
    return "\n".join(" -> ".join(chain) for chain in found)


def test_no_module_imports_itself_back() -> None:
    found = cycles(module_graph())
    assert not found, "import cycles between modules:\n" + _report(found)


def test_no_package_imports_itself_back() -> None:
    found = cycles(package_graph(module_graph()))
    assert not found, "import cycles between packages:\n" + _report(found)


def test_every_known_edge_still_exists() -> None:
    packages = package_graph(module_graph(with_known=True))
    gone = [edge for edge in KNOWN if edge[1] not in packages.get(edge[0], set())]
    assert not gone, f"no longer imported, remove from KNOWN: {gone}"


def test_a_cycle_is_reported_as_its_chain() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_function_imports_count_and_type_checking_ones_do_not() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
        "def f():\n    import c\n"
    )
    names = [alias.name for node in _imports(ast.parse(source)) for alias in node.names]
    assert names == ["TYPE_CHECKING", "b", "c"]
