"""Every event name logged in src/ follows the scheme ``area.subject.happened``.

The scheme is in :mod:`sscl_daemon.logging` (:data:`~sscl_daemon.logging.EVENT_NAME`).
The test reads the source (no import, no logging): each call of a logger method
(``log.info(...)``, ``self._log.warning(...)`` ...) on a name that holds a logger
(``log``, ``logger``, ``_log``, ``_logger``) must pass the event name as a literal
that matches.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from sscl_daemon.logging import EVENT_NAME

SRC = Path(__file__).resolve().parents[2] / "src" / "sscl_daemon"
_METHODS = frozenset(
    {"debug", "info", "warning", "warn", "error", "exception", "critical", "fatal", "msg"}
)
_LOGGER = re.compile(r"(^|\.)_?(log|logger)$")


def logged_events(tree: ast.AST) -> Iterator[tuple[int, str | None]]:
    """(line, event name) of each logger call; None when the name is not a literal."""
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _METHODS
            and _LOGGER.search(ast.unparse(node.func.value))
            and node.args
        ):
            continue
        first = node.args[0]
        literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
        yield node.lineno, first.value if literal else None


def test_the_scanner_sees_logger_calls_and_only_them() -> None:
    source = (
        'log.info("daemon.service.ready")\n'
        'self._log.warning("free text here", x=1)\n'
        "logger.error(message)\n"
        'catalog.info("not a logger")\n'
        'log.bind(account="a")\n'
    )
    assert list(logged_events(ast.parse(source))) == [
        (1, "daemon.service.ready"),
        (2, "free text here"),
        (3, None),
    ]


def test_every_event_name_in_src_follows_the_scheme() -> None:
    wrong: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        module = path.relative_to(SRC).as_posix()
        for line, name in logged_events(ast.parse(path.read_text(), str(path))):
            if name is None or not EVENT_NAME.fullmatch(name):
                wrong.append(f"{module}:{line}: {name if name is not None else '(not a literal)'}")
    assert not wrong, "event names outside the scheme area.subject.happened:\n" + "\n".join(wrong)
