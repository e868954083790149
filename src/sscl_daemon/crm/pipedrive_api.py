"""The Pipedrive writer's requests (``crm/pipedrive.py``, ``crm/pipedrive_activities.py``
and their updates in ``crm/pipedrive_enrich.py`` -> here -> Pipedrive).

One :class:`PipedriveApi` per writer, over the writer's :class:`CrmHttp`: a path becomes a
URL on the company host -- the ``api_domain`` OAuth's token answer names, once a token is
held, else the configured ``base_url`` (API token) -- and goes out through the writer's
limiter and credentials. Which request the writer makes when is told in the module
docstring of ``crm/pipedrive.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from sscl_daemon.crm.contacts import LookupFailure
from sscl_daemon.crm.http import CrmHttp, Response, ensure_token
from sscl_daemon.crm.oauth import OAuthClient

CRM: Final = "Pipedrive"


class PipedriveApi:
    """Requests of one writer (``name``, for logs) on its company's host."""

    def __init__(self, name: str, http: CrmHttp, base_url: str, oauth: OAuthClient | None) -> None:
        self.name = name
        self.http = http
        self.base = base_url.rstrip("/")
        self._oauth = oauth

    async def url(self, path: str) -> str | LookupFailure:
        """``path`` on the company host (OAuth's ``api_domain``, once known) or ``base_url``."""
        if self._oauth is not None:
            failure = await ensure_token(CRM, self._oauth)
            if failure is not None:
                return failure
            domain = self._oauth.extras.get("api_domain")
            if domain:
                return domain.rstrip("/") + path
        return self.base + path

    async def get(self, path: str, params: Mapping[str, str]) -> Response | LookupFailure:
        url = await self.url(path)
        if not isinstance(url, str):
            return url
        return await self.http.request("GET", url, params=params)

    async def post(self, path: str, body: object) -> Response | LookupFailure:
        url = await self.url(path)
        if not isinstance(url, str):
            return url
        return await self.http.request("POST", url, json_body=body)
