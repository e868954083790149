"""Salesforce writer: a ``CompletedCall`` becomes a Task with the call fields (dispatch -> here -> Salesforce).

REST API under ``<instance_url>/services/data/<api_version>``, OAuth 2 refresh-token flow
against ``<login_url>/services/oauth2/token`` (its answer names the ``instance_url`` to use;
Salesforce sends no ``expires_in``, so a 401 ``INVALID_SESSION_ID`` triggers one refresh):

* ``POST /sobjects/Task`` (one call) or ``POST /composite/sobjects`` with ``allOrNone=false``
  (2..200 calls, one SaveResult per record, in order);
* ``GET /query?q=SELECT ... FROM Task ...`` once per write/batch (split when the SOQL would
  not fit a GET URL): our own earlier records and the logs a user's client made (see below).
  With ``detect_client_logs = false`` the query asks only for our keys, and only for calls
  an earlier attempt may have stored (``uncertain`` or a retry): the unique key field
  refuses any other repeat;
* ``GET /search?q=FIND {...} IN PHONE FIELDS RETURNING Contact(...)`` per uncached number;
  ``GET /query?q=SELECT Id, Email FROM User WHERE IsActive = true`` once per cache TTL;
* with a ``deals`` policy, per uncached contact, its ``OpportunityContactRole`` rows and then
  its opportunities (``IsClosed``, ``LastModifiedDate``): the chosen open one is the Task's
  ``WhatId``.

Limits: every answer's ``Sforce-Limit-Info: api-usage=<used>/<max>`` feeds the limiter. A 403
``REQUEST_LIMIT_EXCEEDED`` is read by :func:`request_limit` (the ``classify_first`` hook of
``crm/http.py``) as "retry later": after an hour when that header says the 24 h allowance
is spent, else after a minute (a concurrency limit); any other 403 is a permanent refusal.

Task fields: ``TaskSubtype='Call'``, ``Status='Completed'``, ``Priority='Normal'``,
``Subject``, ``Description`` (the note: queue/ring/hold/transfer details, recording links and
the marker lines), ``ActivityDate`` (the call's date in the writer's ``timezone``, UTC
without one: a date field has no zone, so a US evening call must not land on the next day;
Task has no standard start time),
``CallType`` (Inbound/Outbound/Internal), ``CallDurationInSeconds`` (talk time),
``CallDisposition`` (the outcome in words), ``CallObject`` (the RingCentral telephony session
id), ``WhoId`` (the contact: a Task takes one, so with several matches and the ``all``
policy the first is used), ``OwnerId`` and the external id field. Contacts are found by SOSL
over phone fields (Leads are not searched).

Exactly once. One-time setup: a custom Activity field, Text(255), *External ID* and *Unique*
(default ``SSCL_Call_Key__c``, configurable as ``external_id_field``), visible to the API
user. Every Task carries our key in it. Before creating, one SOQL query (strongly consistent,
no search index) looks for Tasks with our keys; a second create with the same key is refused
by Salesforce with ``DUPLICATE_VALUE`` naming the existing record. Both become
``AlreadyExisted``. We never upsert an existing Task (``PATCH .../Task/<field>/<key>`` would
overwrite what a user edited on the log since), we only create. Where an org does not let
the field be Unique, the query alone still keeps one daemon (one writer) from logging twice.

Logs made by a user's own client: the same query also returns Tasks without our key whose
``CallObject`` is the call's telephony session id or session id, or that are call Tasks
created within the call's time window; such a Task is the same call when its ``CallObject``
matches or its ``Description`` names the session (App Connect writes a "Session Id" line,
see ``crm/content.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import aiohttp
from cachetools import TTLCache

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import DealsPolicy, SalesforceOptions, WriterSettings
from sscl_daemon.crm import batch, deals
from sscl_daemon.crm.base import AlreadyExisted, Created, PermanentFailure, RetryLater
from sscl_daemon.crm.batch import Pending
from sscl_daemon.crm.contacts import Contact, LookupFailure
from sscl_daemon.crm.deals import Deal
from sscl_daemon.crm.enrich import Enrichment, EnrichResult
from sscl_daemon.crm.http import OAuthBearer, Response, ensure_token
from sscl_daemon.crm.oauth import OAuthClient
from sscl_daemon.crm.salesforce_api import SalesforceApi
from sscl_daemon.crm.salesforce_enrich import enrich_task

# The mapping's public names, importable from here as they were before the split.
from sscl_daemon.crm.salesforce_mapping import CRM as CRM
from sscl_daemon.crm.salesforce_mapping import QUERY_URL_BUDGET as QUERY_URL_BUDGET
from sscl_daemon.crm.salesforce_mapping import dedupe_queries as dedupe_queries
from sscl_daemon.crm.salesforce_mapping import dedupe_query as dedupe_query
from sscl_daemon.crm.salesforce_mapping import (
    description_of,
    duplicate_id,
    existing_for,
    has_key,
    save_errors,
)
from sscl_daemon.crm.salesforce_mapping import request_limit as request_limit
from sscl_daemon.crm.salesforce_mapping import task_fields as task_fields
from sscl_daemon.crm.templates import Style
from sscl_daemon.crm.wiring import ChunkedWriterBase

if TYPE_CHECKING:
    from sscl_daemon.crm.base import WriteContext, WriteResult

BATCH_MAX: Final = 200


class SalesforceWriter(ChunkedWriterBase):
    """Writes call Tasks to one Salesforce org with an OAuth connected-app user."""

    chunk_size = BATCH_MAX

    def __init__(self, settings: WriterSettings, session: aiohttp.ClientSession) -> None:
        opts = settings.options
        if not isinstance(opts, SalesforceOptions):
            raise TypeError(
                f'writer {settings.name!r}: SalesforceWriter needs a writer with type = "salesforce"'
            )
        self._opts = opts
        self.key_field = opts.external_id_field
        self._style = Style.of(settings.contacts)
        # Contact id -> its opportunities, kept as long as contact lookups.
        self._opportunities: TTLCache[str, tuple[Deal, ...]] = TTLCache(
            maxsize=max(settings.contacts.cache_size, 1), ttl=settings.contacts.cache_ttl
        )
        self.recordings = settings.contacts.recordings
        self.oauth = OAuthClient(
            session,
            f"{opts.login_url.rstrip('/')}/services/oauth2/token",
            opts.oauth,
            timeout=settings.timeout,
        )
        super().__init__(
            CRM,
            settings,
            session,
            OAuthBearer(self.oauth),
            classify_first=request_limit,
            find=self._find_contacts,
            create=self._create_contact,
            list_users=self._list_users,
        )
        self.rest = SalesforceApi(self.http, self.oauth, opts)

    def __repr__(self) -> str:
        return (
            f"SalesforceWriter(name={self._settings.name!r}, instance={self._opts.instance_url!r})"
        )

    # -- steps -------------------------------------------------------------------------------

    async def _write_chunk(self, chunk: list[Pending]) -> None:
        session = await ensure_token(CRM, self.oauth)
        if session is not None:
            batch.fail_open(chunk, session)
            return
        # Without client-log detection only calls an earlier attempt may have stored are looked
        # for (by key); the unique key field refuses any other repeat.
        detect = self._settings.contacts.detect_client_logs
        checked = [p.call for p in chunk if detect or p.ctx.uncertain or p.ctx.attempt > 1]
        existing: list[Mapping[str, object]] = []
        for soql in dedupe_queries(checked, self.key_field, clients=detect) if checked else []:
            found = await self.rest.query(soql)
            if not isinstance(found, list):
                batch.fail_open(chunk, found)
                return
            existing.extend(found)
        for p in chunk:
            rid = existing_for(p.call, existing, self.key_field)
            if rid:
                p.result = AlreadyExisted(rid, ours=has_key(existing, rid, self.key_field, p.call))
        ready = await batch.prepare(
            chunk,
            self.resolver,
            lambda call, resolved: task_fields(
                call, self.key_field, resolved.primary, resolved.owner_id, self._style
            ),
        )
        if self._settings.contacts.deals is not DealsPolicy.NONE:
            for p in ready:
                contact = p.payload.get("WhoId")
                deal = await self._opportunity(str(contact)) if contact else None
                if isinstance(deal, Deal):
                    p.payload["WhatId"] = deal.id
                elif deal is not None:
                    p.result = deal
            ready = batch.still_open(ready)
        await batch.send(ready, self._create_one, self._create_many)

    async def _opportunity(self, contact: str) -> Deal | LookupFailure | None:
        """The contact's open opportunity the ``deals`` policy picks (its roles, then the
        opportunities; cached per contact like contact lookups)."""
        cached = self._opportunities.get(contact)
        if cached is None:
            found = await self.rest.opportunities(contact)
            if not isinstance(found, tuple):
                return found
            cached = self._opportunities[contact] = found
        return deals.choose(cached, self._settings.contacts.deals)

    async def _create_one(self, p: Pending) -> None:
        answer = await self.rest.send(
            "POST", "/sobjects/Task", json_body=p.payload, accept=frozenset({400})
        )
        if not isinstance(answer, Response):
            p.result = answer
        elif answer.status == 400:
            p.result = await self._refused(p, answer.body, f"HTTP 400: {self.http.reason(answer)}")
        else:
            p.result = batch.created(CRM, answer.object().get("id"), description_of(p.payload))

    async def _create_many(self, ready: list[Pending]) -> None:
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": "Task"}, **p.payload} for p in ready],
        }
        answer = await self.rest.send("POST", "/composite/sobjects", json_body=body)
        if not isinstance(answer, Response):
            batch.fail_open(ready, answer)
            return
        saved = answer.body if isinstance(answer.body, list) else []
        for index, p in enumerate(ready):
            result = saved[index] if index < len(saved) else None
            if not isinstance(result, dict):
                p.result = RetryLater(f"{CRM}: composite answer lacks record {index}")
            elif result.get("success") and result.get("id"):
                p.result = Created(str(result["id"]), description_of(p.payload))
            else:
                errors = result.get("errors")
                p.result = await self._refused(p, errors, save_errors(errors))

    async def _refused(self, p: Pending, errors: object, reason: str) -> WriteResult:
        """A refused create: our key already taken means the call is logged, else permanent."""
        duplicate = duplicate_id(errors)
        if duplicate:
            return AlreadyExisted(duplicate, ours=True)  # our unique key refused the create
        if duplicate == "":
            found = await self.rest.query(dedupe_query([p.call], self.key_field, clients=False))
            if not isinstance(found, list):
                return found
            rid = existing_for(p.call, found, self.key_field)
            if rid:
                return AlreadyExisted(rid, ours=True)  # the query asked for our key only
        return PermanentFailure(f"{CRM} rejected the call log ({reason})")

    # -- updates after the create (crm/enrich.py) --------------------------------------------

    async def enrich(self, e: Enrichment, ctx: WriteContext) -> EnrichResult:
        """Files and the section added to the Task (``crm/salesforce_enrich.py``)."""
        return await enrich_task(self.rest, e, ctx)

    # -- the resolver's lookups (crm/contacts.py), made by the api ---------------------------

    async def _find_contacts(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        return await self.rest.find_contacts(number)

    async def _create_contact(
        self, call: CompletedCall, number: str, owner_id: str | None
    ) -> Contact | LookupFailure:
        return await self.rest.create_contact(call, number, owner_id)

    async def _list_users(self) -> dict[str, str] | LookupFailure:
        return await self.rest.list_users()
