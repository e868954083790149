"""Salesforce's REST requests under the instance's API root (``crm/salesforce.py`` -> here
-> Salesforce).

One :class:`SalesforceApi` per writer, over the writer's :class:`CrmHttp` and OAuth client:
the API root (the ``instance_url`` the token answer names), one request, a SOQL query with
its pages, and the resolver's lookups (contacts by SOSL, a new contact, active users) and a
contact's opportunities. The SOQL and SOSL come from ``crm/salesforce_mapping.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import SalesforceOptions
from sscl_daemon.crm.contacts import Contact, LookupFailure, parse_time
from sscl_daemon.crm.deals import Deal
from sscl_daemon.crm.http import CrmHttp, Response
from sscl_daemon.crm.oauth import OAuthClient
from sscl_daemon.crm.salesforce_mapping import contact_search, records_of, soql_quote

QUERY_PAGES: Final = 10


class SalesforceApi:
    """The writer's requests, each answering a value or the :data:`LookupFailure` the
    dispatcher acts on."""

    def __init__(self, http: CrmHttp, oauth: OAuthClient, opts: SalesforceOptions) -> None:
        self.http = http
        self.oauth = oauth
        self._opts = opts

    @property
    def root(self) -> str:
        """``<instance>/services/data/<api_version>``, the instance the token answer named."""
        instance = self.oauth.extras.get("instance_url") or self._opts.instance_url
        return f"{instance.rstrip('/')}/services/data/{self._opts.api_version}"

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: object = None,
        accept: frozenset[int] = frozenset(),
    ) -> Response | LookupFailure:
        """One REST request under the instance's API root."""
        return await self.http.request(
            method, f"{self.root}{path}", params=params, json_body=json_body, accept=accept
        )

    async def query(self, soql: str) -> list[Mapping[str, object]] | LookupFailure:
        """The records of a SOQL query, up to :data:`QUERY_PAGES` pages."""
        records: list[Mapping[str, object]] = []
        answer = await self.send("GET", "/query", params={"q": soql})
        for _ in range(QUERY_PAGES):
            if not isinstance(answer, Response):
                return answer
            records.extend(records_of(answer))
            next_url = answer.object().get("nextRecordsUrl")
            if answer.object().get("done", True) or not isinstance(next_url, str):
                break
            # nextRecordsUrl is absolute from the host: /services/data/vXX.X/query/01g...-2000
            answer = await self.send("GET", next_url.split(f"/{self._opts.api_version}", 1)[-1])
        return records

    async def find_contacts(self, number: str) -> tuple[Contact, ...] | LookupFailure:
        answer = await self.send("GET", "/search", params={"q": contact_search(number)})
        if not isinstance(answer, Response):
            return answer
        return tuple(
            Contact(
                id=str(r["Id"]),
                name=str(r["Name"]) if r.get("Name") else None,
                owner_id=str(r["OwnerId"]) if r.get("OwnerId") else None,
                created=parse_time(r.get("CreatedDate")),
                updated=parse_time(r.get("LastModifiedDate")),
            )
            for r in records_of(answer, "searchRecords")
            if r.get("Id")
        )

    async def create_contact(
        self, call: CompletedCall, number: str, owner_id: str | None
    ) -> Contact | LookupFailure:
        # LastName is the one field a Contact requires.
        name = call.external_name or number
        answer = await self.send(
            "POST", "/sobjects/Contact", json_body={"LastName": name, "Phone": number}
        )
        if not isinstance(answer, Response):
            return answer
        return Contact(id=str(answer.object().get("id", "")), name=name)

    async def list_users(self) -> dict[str, str] | LookupFailure:
        """Lower-cased e-mail -> user id of the org's active users."""
        users = await self.query("SELECT Id, Email FROM User WHERE IsActive = true")
        if not isinstance(users, list):
            return users
        return {
            str(u["Email"]).lower(): str(u["Id"])
            for u in users
            if isinstance(u.get("Email"), str) and u.get("Id")
        }

    async def opportunities(self, contact: str) -> tuple[Deal, ...] | LookupFailure:
        """The contact's opportunities (its roles, then the opportunities), open or closed."""
        roles = await self.query(
            "SELECT OpportunityId FROM OpportunityContactRole WHERE ContactId = "
            + soql_quote(contact)
        )
        if not isinstance(roles, list):
            return roles
        ids = sorted({str(r["OpportunityId"]) for r in roles if r.get("OpportunityId")})
        if not ids:
            return ()
        found = await self.query(
            "SELECT Id, IsClosed, LastModifiedDate FROM Opportunity WHERE Id IN ("
            + ", ".join(soql_quote(i) for i in ids)
            + ")"
        )
        if not isinstance(found, list):
            return found
        return tuple(
            Deal(str(o["Id"]), o.get("IsClosed") is not True, parse_time(o.get("LastModifiedDate")))
            for o in found
            if o.get("Id")
        )
