"""Dataverse Web API plumbing (dynamics.py -> here): OData literals, ``$batch`` bodies and
answers, and the Microsoft Entra ID client-credentials token of an application user.

Pure helpers for OData 4.0 (string and date-time literals; the ``multipart/mixed`` body of a
``$batch`` with one change set per entry, and its answer read back per change set), and
:class:`ClientCredentials`, the ``crm/http.Auth`` of a writer that authenticates as an
application (no refresh token: the token is fetched again when it expires or on 401).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import aiohttp

from sscl_daemon.crm import content
from sscl_daemon.crm.oauth import EXPIRY_MARGIN, TokenRefusedError, post_token_request

ODATA_HEADERS: Final = {
    "OData-MaxVersion": "4.0",
    "OData-Version": "4.0",
    "Accept": "application/json",
}


def odata_time(moment: datetime) -> str:
    return content.utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- $batch (multipart/mixed, OData 4.0 section 11.7) -----------------------------------------


@dataclass(frozen=True)
class PartAnswer:
    """One operation's answer inside a batch answer."""

    status: int
    headers: Mapping[str, str]
    body: object


def batch_body(
    base: str,
    changesets: Sequence[Sequence[tuple[str, str, Mapping[str, str], object]]],
    boundary: str,
) -> bytes:
    """A ``$batch`` request body: one change set per entry, each of ``(method, path,
    headers, json body)`` operations (pure; ``boundary`` given for reproducibility)."""
    lines: list[str] = []
    for n, operations in enumerate(changesets):
        cs = f"changeset_{boundary}_{n}"
        lines += [f"--batch_{boundary}", f"Content-Type: multipart/mixed; boundary={cs}", ""]
        for cid, (method, path, headers, body) in enumerate(operations, start=1):
            lines += [
                f"--{cs}",
                "Content-Type: application/http",
                "Content-Transfer-Encoding: binary",
                f"Content-ID: {cid}",
                "",
                f"{method} {base}{path} HTTP/1.1",
                "Content-Type: application/json; type=entry",
                *(f"{k}: {v}" for k, v in headers.items()),
                "",
                json.dumps(body, separators=(",", ":")),
            ]
        lines.append(f"--{cs}--")
    lines += [f"--batch_{boundary}--", ""]
    return "\r\n".join(lines).encode()


def _http_answer(raw: bytes) -> PartAnswer:
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    status_line, *header_lines = head.decode("utf-8", "replace").split("\n")
    parts = status_line.split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    text = body.decode("utf-8", "replace").strip()
    try:
        decoded: object = json.loads(text) if text else None
    except ValueError:
        decoded = text
    return PartAnswer(status, headers, decoded)


def parse_batch(content_type: str, body: bytes) -> list[list[PartAnswer]]:
    """A ``$batch`` answer: per top-level part (change set), its operations' answers. A failed
    change set is answered by one part (the failing operation's answer)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    answers: list[list[PartAnswer]] = []
    if not message.is_multipart():
        return answers
    for part in message.iter_parts():
        if part.is_multipart():
            answers.append([_http_answer(_raw(p)) for p in part.iter_parts()])
        else:
            answers.append([_http_answer(_raw(part))])
    return answers


def _raw(part: object) -> bytes:
    payload = part.get_payload(decode=True)  # type: ignore[attr-defined]
    return payload if isinstance(payload, bytes) else b""


# -- Entra ID client credentials -------------------------------------------------------------


class ClientCredentials:
    """An Entra ID token for the application user, fetched again when it expires or on 401."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        authority_url: str,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        resource: str,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._url = f"{authority_url.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": f"{resource.rstrip('/')}/.default",
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self.fetches = 0

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self._url!r}, client_id={self._form['client_id']!r})"

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self._form["client_secret"], self._token) if s)

    async def apply(self, headers: dict[str, str], params: dict[str, str]) -> str | None:
        if self._token is None or self._clock() >= self._expires_at:
            await self._fetch()
        headers["Authorization"] = f"Bearer {self._token}"
        return self._token

    async def refresh(self, used: str | None) -> bool:
        if used == self._token:
            await self._fetch()
        return True

    async def _fetch(self) -> None:
        status, body = await post_token_request(
            self._session, self._url, self._form, client_timeout=self._timeout
        )
        token = body.get("access_token") if isinstance(body, dict) else None
        if status != 200 or not isinstance(token, str):
            code = body.get("error") if isinstance(body, dict) else None
            raise TokenRefusedError(
                f"token endpoint {self._url} refused the client credentials (HTTP {status}"
                f"{', ' + code if isinstance(code, str) else ''}); check tenant_id, client_id"
                " and client_secret (a client secret expires) in the writer's configuration",
                code if isinstance(code, str) else "",
            )
        self.fetches += 1
        self._token = token
        expires = body.get("expires_in") if isinstance(body, dict) else None
        lifetime = float(expires) if isinstance(expires, int | float) else 3600.0
        self._expires_at = self._clock() + max(lifetime - EXPIRY_MARGIN, 0.0)
