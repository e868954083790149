"""A third-party writer, as a separate package would ship it (tests only; see docs/writers.md).

"Ledgerly" is a made-up CRM whose API takes call logs as notebook entries:

* ``X-Api-Key`` header; ``GET /people?phone=<E.164>``, ``POST /people``, ``GET /users``;
* ``POST /notebooks/{notebook}/entries`` with ``key`` (unique: a second entry with the same
  key is 409 naming the first), ``subject``, ``body``, ``person_id``, ``owner_id``;
* ``GET /notebooks/{notebook}/entries?key=<key>`` reads an entry back by key.

Installed by putting this directory on ``sys.path`` next to its ``.dist-info`` (whose
``entry_points.txt`` registers ``ledgerly`` in the ``sscl_daemon.writers`` group), it adds
``type = "ledgerly"`` with its own keys ``url``, ``api_key`` and ``notebook``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import Secret, WriterSettings
from sscl_daemon.crm import batch, content
from sscl_daemon.crm.base import (
    AlreadyExisted,
    Created,
    OptionReader,
    PermanentFailure,
    WriteContext,
    WriteResult,
    WriterPlugin,
)
from sscl_daemon.crm.contacts import Contact, LookupFailure, Resolution
from sscl_daemon.crm.http import HeaderToken, Response
from sscl_daemon.crm.wiring import CrmWriterBase

CRM: Final = "Ledgerly"


@dataclass(frozen=True)
class LedgerlyOptions:
    url: str
    api_key: Secret
    notebook: str = "calls"


def parse_options(reader: OptionReader) -> LedgerlyOptions | None:
    url = reader.url("url", "")
    if not url:
        reader.problem("url", "is required (https://api.ledgerly.example)")
    api_key = reader.secret("api_key", required=True)
    notebook = reader.string("notebook", "calls")
    if not (notebook.isascii() and notebook.isalpha() and notebook.islower()):
        reader.problem("notebook", f"{notebook!r} is not a notebook name (lowercase letters)")
    if not url or api_key is None:
        return None
    return LedgerlyOptions(url, api_key, notebook)


class LedgerlyWriter(CrmWriterBase):
    def __init__(self, settings: WriterSettings, session: aiohttp.ClientSession) -> None:
        opts = settings.options
        assert isinstance(opts, LedgerlyOptions)
        self._base = opts.url.rstrip("/")
        self._entries = f"{self._base}/notebooks/{opts.notebook}/entries"
        super().__init__(
            CRM,
            settings,
            session,
            HeaderToken("X-Api-Key", opts.api_key.reveal()),
            find=self._find,
            create=self._create,
            list_users=self._users,
        )

    async def _find(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        answer = await self.http.request("GET", f"{self._base}/people", params={"phone": number})
        if not isinstance(answer, Response):
            return answer
        people = answer.body if isinstance(answer.body, list) else []
        return tuple(Contact(str(p["id"]), p.get("name")) for p in people if isinstance(p, dict))

    async def _create(
        self, call: CompletedCall, number: str, owner: str | None
    ) -> Contact | LookupFailure:
        body = {"name": call.external_name or number, "phone": number}
        answer = await self.http.request("POST", f"{self._base}/people", json_body=body)
        if not isinstance(answer, Response):
            return answer
        return Contact(str(answer.object()["id"]), str(body["name"]))

    async def _users(self) -> dict[str, str] | LookupFailure:
        answer = await self.http.request("GET", f"{self._base}/users")
        if not isinstance(answer, Response):
            return answer
        users = answer.body if isinstance(answer.body, list) else []
        return {str(u["email"]): str(u["id"]) for u in users if isinstance(u, dict)}

    async def write(self, call: CompletedCall, ctx: WriteContext) -> WriteResult:
        if ctx.uncertain:
            found = await self.http.request("GET", self._entries, params={"key": call.key})
            if not isinstance(found, Response):
                return found
            entries = found.body if isinstance(found.body, list) else []
            if entries and isinstance(entries[0], dict):
                return AlreadyExisted(str(entries[0]["id"]))
        resolved = await self.resolver.resolve(call)
        if not isinstance(resolved, Resolution):
            return resolved
        person = resolved.primary
        body = {
            "key": call.key,
            "subject": content.subject(call, person.name if person else None),
            "body": content.note_text(call),
            "person_id": person.id if person else None,
            "owner_id": resolved.owner_id,
        }
        answer = await self.http.request(
            "POST", self._entries, json_body=body, accept=frozenset({409})
        )
        if not isinstance(answer, Response):
            return answer
        entry_id = answer.object().get("id")
        if not entry_id:
            return PermanentFailure(f"{CRM} answered without an entry id")
        return AlreadyExisted(str(entry_id)) if answer.status == 409 else Created(str(entry_id))

    async def write_batch(
        self, items: Sequence[tuple[CompletedCall, WriteContext]]
    ) -> list[WriteResult]:
        return await batch.each(self.write, items)


def _build(settings: WriterSettings, session: aiohttp.ClientSession) -> LedgerlyWriter:
    return LedgerlyWriter(settings, session)


PLUGIN: Final = WriterPlugin("ledgerly", CRM, parse_options, _build)
