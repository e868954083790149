"""HubSpot's reads and the records the writer makes beside its calls (``crm/hubspot.py`` ->
here -> HubSpot).

One :class:`HubSpotApi` per writer, over the writer's :class:`CrmHttp`: the key property's
definition, our own records by key (batch read or search), calls logged by users' own
clients, contacts (found or created), owners and a contact's deals. The request bodies come
from ``crm/hubspot_mapping.py``; which request the writer makes when is told in the module
docstring of ``crm/hubspot.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import quote

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.crm.contacts import Contact, LookupFailure, parse_time
from sscl_daemon.crm.deals import Deal
from sscl_daemon.crm.http import CrmHttp, Response
from sscl_daemon.crm.hubspot_mapping import (
    client_log_search,
    contact_from,
    contact_search,
    key_search,
    next_after,
    props_of,
    results_of,
)

SEARCH_PAGES: Final = 5
OWNER_PAGES: Final = 20


class HubSpotApi:
    """The writer's requests other than creating call logs, each answering a value or the
    :data:`LookupFailure` the dispatcher acts on."""

    def __init__(self, http: CrmHttp, base: str, key_property: str) -> None:
        self.http = http
        self.base = base
        self.key_property = key_property

    async def key_property_definition(self) -> Response | LookupFailure:
        """``GET /crm/v3/properties/calls/<key_property>``; 403 and 404 are answers too."""
        return await self.http.request(
            "GET",
            f"{self.base}/crm/v3/properties/calls/{quote(self.key_property, safe='')}",
            accept=frozenset({403, 404}),
        )

    async def search_keys(self, keys: Sequence[str]) -> dict[str, str] | LookupFailure:
        """key -> id of the oldest record carrying it (search; lags behind writes)."""
        found: dict[str, str] = {}
        after: str | None = None
        for _ in range(SEARCH_PAGES):
            body = key_search(keys, self.key_property)
            if after:
                body["after"] = after
            answer = await self.http.request(
                "POST", f"{self.base}/crm/v3/objects/calls/search", json_body=body
            )
            if not isinstance(answer, Response):
                return answer
            for record in results_of(answer):
                key = props_of(record).get(self.key_property)
                if key and record.get("id"):
                    found.setdefault(key, str(record["id"]))
            after = next_after(answer)
            if not after:
                break
        return found

    async def read_by_key(self, keys: Sequence[str]) -> dict[str, str] | LookupFailure:
        """key -> record id for the records that carry our key (batch read by idProperty)."""
        answer = await self.http.request(
            "POST",
            f"{self.base}/crm/v3/objects/calls/batch/read",
            json_body={
                "idProperty": self.key_property,
                "inputs": [{"id": k} for k in keys],
                "properties": [self.key_property],
                "propertiesWithHistory": [],
            },
            accept=frozenset({404}),
        )
        if not isinstance(answer, Response):
            return answer
        found: dict[str, str] = {}
        for record in results_of(answer):
            key = props_of(record).get(self.key_property)
            if key and record.get("id"):
                found[key] = str(record["id"])
        return found

    async def client_logs(
        self, calls: Sequence[CompletedCall]
    ) -> list[Mapping[str, object]] | LookupFailure:
        """Call engagements near ``calls`` without our key (users' own clients made them)."""
        records: list[Mapping[str, object]] = []
        after: str | None = None
        for _ in range(SEARCH_PAGES):
            answer = await self.http.request(
                "POST",
                f"{self.base}/crm/v3/objects/calls/search",
                json_body=client_log_search(calls, after, self.key_property),
            )
            if not isinstance(answer, Response):
                return answer
            records.extend(results_of(answer))
            after = next_after(answer)
            if not after:
                break
        return records

    async def find_contacts(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        answer = await self.http.request(
            "POST", f"{self.base}/crm/v3/objects/contacts/search", json_body=contact_search(number)
        )
        if not isinstance(answer, Response):
            return answer
        return tuple(contact_from(r) for r in results_of(answer) if r.get("id"))

    async def create_contact(
        self, call: CompletedCall, number: str, owner_id: str | None
    ) -> Contact | LookupFailure:
        props = {"phone": number, "firstname": call.external_name or number}
        answer = await self.http.request(
            "POST", f"{self.base}/crm/v3/objects/contacts", json_body={"properties": props}
        )
        if not isinstance(answer, Response):
            return answer
        return contact_from(answer.object())

    async def list_owners(self) -> dict[str, str] | LookupFailure:
        """Lower-cased e-mail -> owner id of the portal's active owners."""
        owners: dict[str, str] = {}
        after: str | None = None
        for _ in range(OWNER_PAGES):
            params = {"limit": "100", "archived": "false"}
            if after:
                params["after"] = after
            answer = await self.http.request("GET", f"{self.base}/crm/v3/owners", params=params)
            if not isinstance(answer, Response):
                return answer
            for owner in results_of(answer):
                email, oid = owner.get("email"), owner.get("id")
                if isinstance(email, str) and email and oid is not None:
                    owners[email.lower()] = str(oid)
            after = next_after(answer)
            if not after:
                break
        return owners

    async def contact_deals(self, contact: str) -> tuple[Deal, ...] | LookupFailure:
        """The deals associated with a contact, open or closed, with their last change."""
        ids = await self.associated("contacts", contact, "deals")
        if not isinstance(ids, list):
            return ids
        read = await self.batch_read("deals", ids, ["hs_is_closed", "hs_lastmodifieddate"])
        if not isinstance(read, list):
            return read
        return tuple(
            Deal(
                str(r["id"]),
                props_of(r).get("hs_is_closed") != "true",
                parse_time(props_of(r).get("hs_lastmodifieddate") or r.get("updatedAt")),
            )
            for r in read
            if r.get("id")
        )

    async def associated(self, kind: str, record_id: str, to: str) -> list[str] | LookupFailure:
        """Ids of the ``to`` records associated with one record (v4 associations, read)."""
        linked = await self.http.request(
            "GET",
            f"{self.base}/crm/v4/objects/{kind}/{quote(record_id, safe='')}/associations/{to}",
            params={"limit": "100"},
        )
        if not isinstance(linked, Response):
            return linked
        return [str(r.get("toObjectId")) for r in results_of(linked) if r.get("toObjectId")]

    async def batch_read(
        self, kind: str, ids: Sequence[str], properties: Sequence[str]
    ) -> list[Mapping[str, object]] | LookupFailure:
        """These records of ``kind`` with ``properties`` (none read when ``ids`` is empty)."""
        if not ids:
            return []
        read = await self.http.request(
            "POST",
            f"{self.base}/crm/v3/objects/{kind}/batch/read",
            json_body={
                "inputs": [{"id": i} for i in ids],
                "properties": list(properties),
                "propertiesWithHistory": [],
            },
        )
        return results_of(read) if isinstance(read, Response) else read
