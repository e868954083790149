"""The account's WebSocket gateway token across restarts (issue 19).

Where it sits: `subscription.py` asks for a ws token before every connection. A new one is a
`POST /restapi/oauth/wstoken`, in RingCentral's Auth rate group (5 requests a minute,
research/rc-protocol.md A1), which a start also spends on refreshing its access token; two
quick restarts then met a 429 with Retry-After 60 and subscribed a minute late. The token is
valid for its whole ``expires_in`` (600 s), so :class:`KeptWsToken` keeps it beside the
refresh token (the ``credentials`` table through a vault, ``daemon/accounts.py`` wires it),
with its absolute expiry, and the next start connects with it while it has
:data:`KEPT_TOKEN_MARGIN` left: no Auth-group request stands between a restart and its
subscription. A token the gateway refuses is replaced by the next fetch, which is saved over
it.

The token is a secret: it never appears in a repr, a log or an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import structlog

from sscl_daemon.ringcentral.auth import RefreshTokenVault
from sscl_daemon.ringcentral.records import WsToken

log = structlog.get_logger(__name__)

# A kept token is used only with this much of its life left: the handshake must happen before
# it expires (a connection outlives its token; only the handshake presents it).
KEPT_TOKEN_MARGIN = 30.0


class _Stored(msgspec.Struct, kw_only=True):
    uri: str
    ws_access_token: str
    # Unix time: the process's monotonic clock does not survive it.
    expires_at: float


@dataclass(frozen=True)
class KeptWsToken:
    """One account's ws token in a credential vault; neither call raises.

    Without a usable kept token the subscription fetches a new one, so a store hiccup costs
    one Auth-group request, never the stream.
    """

    vault: RefreshTokenVault

    async def load(self, now: datetime) -> tuple[WsToken, float] | None:
        """The kept token and its seconds left, if more than :data:`KEPT_TOKEN_MARGIN`."""
        try:
            stored = await self.vault.load()
        except Exception as exc:  # the vault's errors (store down): fetch a new token
            log.warning("ringcentral.ws.kept_token_unreadable", error=type(exc).__name__)
            return None
        if not stored:
            return None
        try:
            kept = msgspec.json.decode(stored, type=_Stored)
        except (msgspec.DecodeError, RecursionError):
            log.warning("ringcentral.ws.kept_token_unreadable", error="DecodeError")
            return None
        left = kept.expires_at - now.timestamp()
        if left <= KEPT_TOKEN_MARGIN:
            return None
        return WsToken(uri=kept.uri, ws_access_token=kept.ws_access_token, expires_in=left), left

    async def keep(self, token: WsToken, obtained: datetime) -> None:
        """Save a token fetched at ``obtained`` (its expiry counted from then)."""
        stored = _Stored(
            uri=token.uri,
            ws_access_token=token.ws_access_token,
            expires_at=obtained.astimezone(UTC).timestamp() + token.expires_in,
        )
        try:
            await self.vault.save(msgspec.json.encode(stored).decode())
        except Exception as exc:  # the vault's errors; the next start fetches its own
            log.warning("ringcentral.ws.kept_token_store_failed", error=type(exc).__name__)
