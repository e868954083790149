"""Deliveries verify with the reference Standard Webhooks library (``standardwebhooks``) for
every secret form the configuration accepts, single and batch; every other form (a plain
string, a weak key) is a configuration error naming the key, without echoing the secret.

On f315870 a plain-string secret was accepted and every delivery signed with it failed the
reference verification ("No matching signature found"); a 1-character secret was accepted.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from tests.crm.conftest import make_call

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import ConfigError, load_config
from sscl_daemon.crm.base import Created, WriteContext
from sscl_daemon.crm.registry import build_writer
from sscl_daemon.signing import secret_problem
from sscl_daemon.simulator.crm.common import serve

KEY_24 = bytes(range(24))
KEY_64 = bytes(range(100, 164))


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


# Every form the standard's libraries read alike: with or without whsec_, 24-64 bytes.
ACCEPTED = {
    "whsec_ 24 bytes": "whsec_" + _b64(KEY_24),
    "whsec_ 64 bytes": "whsec_" + _b64(KEY_64),
    "bare base64": _b64(bytes(range(200, 232))),
    "spec example": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}
REFUSED = {
    "plain string": "my-webhook-secret-that-is-long-enough",
    "one character": "x",
    "23 bytes": "whsec_" + _b64(bytes(23)),
    "65 bytes": "whsec_" + _b64(bytes(65)),
    "url-safe alphabet": "whsec_" + base64.urlsafe_b64encode(bytes([251] * 30)).decode(),
    "bad padding": "whsec_" + _b64(bytes(30)) + "==",
    "unpadded": "whsec_" + _b64(bytes(range(32, 57))).rstrip("="),
    "non-canonical trailing bits": "whsec_" + _b64(bytes(25))[:-3] + "B==",
    "empty after prefix": "whsec_",
}


class Receiver:
    """Keeps every request as it arrived (headers, raw body); answers 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        return web.json_response({})


def _config(tmp_path: Path, secret: str, batch_size: int, url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        "[ringcentral]\n"
        'client_id = "id"\nclient_secret = "cs"\njwt = "jwt"\n'
        "[writers.hook]\n"
        f'type = "webhook"\nurl = "{url}"\nsecret = "{secret}"\nbatch_size = {batch_size}\n'
    )
    return path


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", rx.handle)
    async with serve(app) as base:
        yield rx, f"{base}/hooks"


def _calls(n: int) -> list[CompletedCall]:
    end = datetime.now(UTC)
    return [
        make_call(telephony_session_id=f"s-std-{i}", end_time=end - timedelta(seconds=i))
        for i in range(n)
    ]


@pytest.mark.parametrize("form", list(ACCEPTED))
async def test_deliveries_verify_with_the_reference_library(
    form: str, receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    rx, url = receiver
    secret = ACCEPTED[form]
    assert secret_problem(secret) is None
    reference = Webhook(secret)
    async with aiohttp.ClientSession() as session:
        for batch_size in (1, 10):
            settings = load_config(_config(tmp_path, secret, batch_size, url))
            writer = build_writer(settings.account().writers[0], session)
            calls = _calls(3)
            if batch_size == 1:
                results = [await writer.write(c, WriteContext()) for c in calls]
            else:
                results = await writer.write_batch([(c, WriteContext()) for c in calls])
            assert all(isinstance(r, Created) for r in results)
    assert len(rx.received) == 4  # three single deliveries and one batch
    for headers, body in rx.received:
        document = reference.verify(body, headers)
        assert document["type"] in ("call.logged", "call.logged.batch")
        with pytest.raises(WebhookVerificationError):
            reference.verify(body + b" ", headers)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + _b64(bytes(32))).verify(body, headers)


@pytest.mark.parametrize("form", list(REFUSED))
def test_secrets_the_standard_does_not_allow_are_a_config_error(form: str, tmp_path: Path) -> None:
    secret = REFUSED[form]
    assert secret_problem(secret) is not None
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, secret, 1, "https://hooks.example.com/calls"))
    message = str(caught.value)
    assert "writers.hook.secret" in message
    assert "openssl rand -base64 32" in message
    if len(secret) > len("whsec_"):
        assert secret not in message
