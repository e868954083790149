"""Logging for every part of the daemon: structlog over the standard library.

Lines are JSON when stderr is not a terminal (journald, files, CI) and
readable console output when it is. Both structlog's and third-party
libraries' records (aiohttp, asyncpg, websockets) pass through one
:class:`Redactor`, the last step before rendering, so a configured secret,
a bearer token, an ``Authorization`` header or a JWT never reaches the
output, wherever in the line (message, field, traceback) it appears.

Event names follow one scheme, ``area.subject.happened`` (:data:`EVENT_NAME`):

* ``area`` — the part of the flow (DESIGN.md) that logs it: ``ringcentral``,
  ``calls``, ``store``, ``dispatch``, ``crm``, ``daemon``, ``admin``, ``config``;
* ``subject`` — what the line is about: ``call``, ``ws``, ``gap``, ``claim``,
  ``writer``, ``lease``, ``recorder`` ...;
* ``happened`` — a past participle or state, words joined by ``_``:
  ``logged``, ``retry_scheduled``, ``dead_lettered``, ``write_failed``.

All lowercase, three dot-separated parts, no free text: the details go in
fields (``writer=``, ``call=``, ``reason=``), and what the admin should do
next in a ``hint`` field. So ``dispatch.call.logged`` can be grepped,
counted and alerted on, whatever the wording of its hint. Examples:
``dispatch.call.logged`` (one info line per call a CRM accepted: ``call``
key, ``writer``, ``crm`` type, ``result``, ``outcome``, ``record`` id),
``ringcentral.ws.recovered``, ``store.lease.lost``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, TextIO

import structlog

if TYPE_CHECKING:
    from sscl_daemon.config import Settings

MASK = "[REDACTED]"
# The event naming scheme above, for tests that check a module's events.
EVENT_NAME = re.compile(r"[a-z]+\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")

# Keys whose values are secrets whatever they look like.
_SECRET_KEYS = re.compile(
    r"(^|_)(token|secret|password|passwd|authorization|jwt|assertion|api_key|apikey|wsc)($|_)",
    re.IGNORECASE,
)
# (pattern, replacement): the replacement keeps the label and masks the value.
_PATTERNS = (
    # Authorization headers, with or without a scheme word.
    (
        re.compile(
            r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)(?:(?:bearer|basic|token)\s+)?[^\s,;'\"}]+"
        ),
        rf"\g<1>{MASK}",
    ),
    # Bearer/basic credentials in free text.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\g<1> {MASK}"),
    # JSON Web Tokens: three base64url segments, the first one a JSON header.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
    # access_token=... / "refresh_token": "..." in URLs, form bodies and JSON.
    (
        re.compile(
            r"(?i)\b((?:access|refresh|ws_access|id)_token|client_secret|assertion|password|wsc)"
            r"(=|[\"']?\s*:\s*[\"']?)[^&\s\"',}]+"
        ),
        rf"\g<1>\g<2>{MASK}",
    ),
)

# A word every pattern above needs somewhere in its match (case-insensitive superset).
_PATTERN_WORDS = ("authorization", "bearer", "basic", "eyj", "token", "secret", "assertion",
                  "password", "wsc")  # fmt: skip
# For text that is not ASCII: the patterns' (?i) folds a few other letters onto ASCII ones
# (the long s onto s, the Kelvin sign onto k), which str.lower() does not.
_PATTERN_WORDS_FOLDED = re.compile("|".join(_PATTERN_WORDS), re.IGNORECASE)


def _may_match(text: str) -> bool:
    """Whether ``text`` holds a word some pattern needs (if not, no pattern can match).

    ASCII text (nearly every line) is lowered once and searched for each word: a handful
    of C substring searches, ten times cheaper than the case-insensitive alternation,
    which Python's engine tries letter by letter.
    """
    if not text.isascii():
        return _PATTERN_WORDS_FOLDED.search(text) is not None
    lowered = text.lower()
    return any(word in lowered for word in _PATTERN_WORDS)


# Field names seen -> whether they name a secret: the same few dozen names come in every
# line, so each is matched once (bounded, in case a caller builds names from data).
_KEY_VERDICTS: dict[str, bool] = {}
_MAX_KEY_VERDICTS = 4096


def _is_secret_key(key: str) -> bool:
    verdict = _KEY_VERDICTS.get(key)
    if verdict is None:
        verdict = _SECRET_KEYS.search(key) is not None
        if len(_KEY_VERDICTS) < _MAX_KEY_VERDICTS:
            _KEY_VERDICTS[key] = verdict
    return verdict


class Redactor:
    """A structlog processor that masks secrets anywhere in an event dict."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: tuple[str, ...] = ()
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def redact_text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        # Most values (call keys, writer names, results) hold none of the words the
        # patterns need: one search instead of four substitutions per value keeps an
        # info line per logged call cheap.
        if _may_match(text):
            for pattern, replacement in _PATTERNS:
                text = pattern.sub(replacement, text)
        return text

    def _redact(self, value: object) -> object:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {k: self._redact_item(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._redact(v) for v in value]
        if isinstance(value, bytes | bytearray):
            return self.redact_text(bytes(value).decode("utf-8", "replace"))
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.redact_text(str(value))

    def _redact_item(self, key: object, value: object) -> object:
        if isinstance(key, str) and _is_secret_key(key) and value not in (None, ""):
            return MASK
        return self._redact(value)

    def _untouched(self, event_dict: MutableMapping[str, object]) -> bool:
        """Whether masking would leave the line as it is, decided in one pass over it.

        True only if every value is a string, number, bool or None, no secret-named field
        has a value, and the line's text holds no configured secret and none of the words
        the patterns need: then the value-by-value masking below would change nothing.
        One search over the joined text instead of a search per field (an info line has
        ten: call key, writer, result ... and structlog's level, logger and timestamp)
        makes the line of every logged call cheap; anything else takes the exact path.
        """
        texts: list[str] = []
        for key, value in event_dict.items():
            kind = type(value)
            if kind is str:
                if value and _is_secret_key(key):
                    return False
                texts.append(value)  # type: ignore[arg-type]
            elif value is None:
                continue
            elif kind is int or kind is float or kind is bool:
                if _is_secret_key(key):
                    return False
            else:
                return False
        # A NUL cannot be in a word nor, in practice, in a secret, so none is made up by
        # the joins; one that were would only send the line down the exact path.
        text = "\0".join(texts)
        if _may_match(text):
            return False
        return not any(secret in text for secret in self._secrets)

    def __call__(
        self, logger: object, method: str, event_dict: MutableMapping[str, object]
    ) -> MutableMapping[str, object]:
        if self._untouched(event_dict):
            return event_dict
        for key, value in list(event_dict.items()):
            event_dict[key] = (
                self._redact_item(key, value) if key != "event" else self._redact(value)
            )
        return event_dict


REDACTOR = Redactor()


def _renderer(json_output: bool) -> structlog.types.Processor:
    if json_output:
        return structlog.processors.JSONRenderer()
    return structlog.dev.ConsoleRenderer(colors=False)


def configure_logging(
    settings: Settings | None = None,
    *,
    stream: TextIO | None = None,
    level: str | None = None,
    json_output: bool | None = None,
) -> None:
    """Set up structlog and the standard library's root logger; safe to call again on reload."""
    from sscl_daemon.config import LogFormat

    out = stream if stream is not None else sys.stderr
    if settings is not None:
        REDACTOR.set_secrets(settings.secrets())
        level = level or settings.daemon.log_level.value
        if json_output is None and settings.daemon.log_format is not LogFormat.AUTO:
            json_output = settings.daemon.log_format is LogFormat.JSON
    if json_output is None:
        json_output = not (hasattr(out, "isatty") and out.isatty())
    numeric_level = logging.getLevelName((level or "info").upper())

    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            REDACTOR,
            _renderer(json_output),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
