"""The parts every CRM writer is built from (registry -> a writer's constructor -> here).

HubSpot, Pipedrive and Salesforce writers each hold one :class:`CrmHttp` (limiter from the
writer's ``rate_limit``/``concurrency``, credentials, error classification) and one
:class:`Resolver` (contacts and owner; the concurrent calls of a batch share each lookup,
``crm/singleflight.py``). :class:`CrmWriterBase` builds both from the writer's settings and
the CRM's own lookups, and answers the protocol's ``name`` and ``close``.
:class:`ChunkedWriterBase` adds ``write``/``write_batch`` for CRMs with a batch API: a
single call is a batch of one, and a batch is cut into chunks of the CRM's maximum.
:func:`keep_rotated_tokens` gives a writer's OAuth client the vault its rotated refresh
tokens are kept in (the daemon's Postgres store), whichever CRM it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

import aiohttp

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import WriterSettings
from sscl_daemon.crm import batch
from sscl_daemon.crm.base import WriteContext, WriteResult
from sscl_daemon.crm.contacts import ContactLookup, CreateContact, OwnerCheck, Resolver, UserList
from sscl_daemon.crm.http import Auth, CrmHttp, OAuthBearer, ResponseHook, error_message
from sscl_daemon.crm.limiter import Limiter
from sscl_daemon.crm.oauth import TokenVault

# Credential name -> the vault of that credential (of the writer's account).
VaultFor = Callable[[str], TokenVault]


def keep_rotated_tokens(writer: object, writer_name: str, vaults: VaultFor) -> bool:
    """Attach a vault to ``writer``'s OAuth client; False if it does not use OAuth.

    The credential's name carries the writer's name and the client's fingerprint of its
    configuration (``OAuthClient.identity``), so two writers never share a token and a
    newly configured refresh token is not shadowed by an older stored one.
    """
    http = getattr(writer, "http", None)
    auth = http.auth if isinstance(http, CrmHttp) else None
    if not isinstance(auth, OAuthBearer):
        return False
    client = auth.client
    client.keep_rotated_in(vaults(f"crm:{writer_name}:refresh_token:{client.identity}"))
    return True


class CrmWriterBase:
    """Settings, HTTP client and resolver of one CRM writer."""

    def __init__(
        self,
        crm: str,
        settings: WriterSettings,
        session: aiohttp.ClientSession,
        auth: Auth,
        *,
        find: ContactLookup,
        create: CreateContact,
        list_users: UserList,
        owner_valid: OwnerCheck | None = None,
        classify_first: ResponseHook | None = None,
        message: Callable[[object, str], str] = error_message,
    ) -> None:
        self._settings = settings
        self.http = CrmHttp(
            crm,
            session,
            Limiter(settings.rate_limit, settings.concurrency),
            auth,
            timeout=settings.timeout,
            message=message,
            classify_first=classify_first,
        )
        self.resolver = Resolver(
            crm,
            settings.contacts,
            find=find,
            create=create,
            list_users=list_users,
            owner_valid=owner_valid,
        )

    @property
    def name(self) -> str:
        return self._settings.name

    async def close(self) -> None:
        """Nothing to release: the aiohttp session belongs to the daemon."""


class ChunkedWriterBase(CrmWriterBase):
    """A writer whose CRM takes up to ``chunk_size`` calls per request."""

    chunk_size: ClassVar[int]

    async def write(self, call: CompletedCall, ctx: WriteContext) -> WriteResult:
        return (await self.write_batch([(call, ctx)]))[0]

    async def write_batch(
        self, items: Sequence[tuple[CompletedCall, WriteContext]]
    ) -> list[WriteResult]:
        return await batch.in_chunks(self.http.crm, items, self.chunk_size, self._write_chunk)

    async def _write_chunk(self, chunk: list[batch.Pending]) -> None:
        """Decide every call of ``chunk`` (set each ``result``)."""
        raise NotImplementedError


def nested_error_message(body: object, text: str) -> str:
    """``{"error": {"message": ..., "code"/"type": ...}}`` (Dataverse, Clio), else the usual
    shapes of ``crm/http.error_message``."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        kind = error.get("code") or error.get("type")
        return f"{error['message']} ({kind})" if kind else str(error["message"])
    return error_message(body, text)
