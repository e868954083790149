"""Secrets never reach log output (sscl_daemon.logging)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from sscl_daemon.config import parse_config
from sscl_daemon.logging import MASK, Redactor, configure_logging, get_logger

SECRET = "rc-client-secret-4f9a"
JWT_VALUE = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl"


@pytest.fixture
def output() -> io.StringIO:
    settings = parse_config(
        {
            "ringcentral": {"client_id": "cid", "client_secret": SECRET, "jwt": JWT_VALUE},
            "writers": {"log": {"type": "jsonl", "path": "calls.jsonl"}},
        }
    )
    buf = io.StringIO()
    configure_logging(settings, stream=buf, level="debug", json_output=True)
    return buf


def lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_configured_secret_is_masked_everywhere(output: io.StringIO) -> None:
    log = get_logger("test")
    log.info(f"posting with {SECRET}", body={"nested": [f"x{SECRET}y"]}, note=SECRET.encode())
    text = output.getvalue()
    assert SECRET not in text
    assert text.count(MASK) == 3


def test_tokens_headers_and_jwts_are_masked(output: io.StringIO) -> None:
    log = get_logger("test")
    log.warning(
        "request failed",
        headers={"Authorization": "Bearer abc.def.ghi-token"},
        url="https://platform.example/ws?access_token=U0pDMDFQ&wsc=abcdef",
        detail=f"assertion={JWT_VALUE}",
    )
    logging.getLogger("aiohttp.client").error(
        'sent "Authorization: Basic Y2xpZW50OnNlY3JldA==" and {"refresh_token": "rt-1234567"}'
    )
    text = output.getvalue()
    for leaked in (
        "abc.def.ghi-token",
        "U0pDMDFQ",
        "abcdef",
        JWT_VALUE,
        "Y2xpZW50OnNlY3JldA",
        "rt-1234567",
    ):
        assert leaked not in text
    records = lines(output)
    assert records[0]["headers"] == {"Authorization": MASK}
    assert records[1]["logger"] == "aiohttp.client"


def test_exception_tracebacks_are_masked(output: io.StringIO) -> None:
    log = get_logger("test")
    try:
        raise RuntimeError(f"token endpoint rejected {SECRET}")
    except RuntimeError:
        log.exception("auth failed")
    record = lines(output)[0]
    assert SECRET not in output.getvalue()
    assert "RuntimeError: token endpoint rejected [REDACTED]" in str(record["exception"])


def test_non_secret_content_is_kept(output: io.StringIO) -> None:
    get_logger("test").info("call logged", key="s-abc:1234", number="+15105551234", attempts=2)
    record = lines(output)[0]
    assert record["key"] == "s-abc:1234"
    assert record["number"] == "+15105551234"
    assert record["attempts"] == 2
    assert record["level"] == "info"


def test_console_format_on_request() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, level="info", json_output=False)
    Redactor().set_secrets([])
    get_logger("test").info("hello", who="operator")
    assert "hello" in buf.getvalue()
    assert "who=operator" in buf.getvalue()
    assert not buf.getvalue().startswith("{")


def test_level_filters_debug() -> None:
    buf = io.StringIO()
    configure_logging(stream=buf, level="warning", json_output=True)
    get_logger("test").info("quiet")
    get_logger("test").warning("loud")
    assert [r["event"] for r in lines(buf)] == ["loud"]
