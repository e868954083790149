"""Tunable platform behaviour of the simulator (timeouts, TTLs, limits, doubtful protocol points).

Sits under every other simulator module: the OAuth server, the WebSocket gateway, the rate
limiter and the engine read their numbers from one frozen `PlatformProfile`. Where the public
sources disagree (research/rc-protocol.md section G) the choice is a field here, and the two
ready-made profiles pick a side: `lenient()` follows what the official SDKs get away with,
`strict()` follows the letter of the developer guide. Tests shrink the timeouts to seconds with
`dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field


class RateGroup(enum.StrEnum):
    """Throttling groups of the REST API (research C6: group per operation from the spec)."""

    LIGHT = "Light"
    MEDIUM = "Medium"
    HEAVY = "Heavy"
    AUTH = "Auth"


class BadWsTokenReply(enum.StrEnum):
    """How the gateway refuses an unknown/expired/used ws token (G-A2, undocumented)."""

    HTTP_401 = "http-401"  # refuse the upgrade itself
    CLOSE_4401 = "close-4401"  # accept, then close the socket with 4401


@dataclass(frozen=True)
class RateLimit:
    """A request budget: `requests` per sliding `window_s`, then `penalty_s` of 429s."""

    requests: int
    window_s: float = 60.0
    penalty_s: float = 60.0


def _default_rate_limits() -> dict[RateGroup, RateLimit]:
    # research C6 (DOCS rate-limits.md): Light 50, Medium 40, Heavy 10, Auth 5 per minute,
    # 60 s penalty.
    return {
        RateGroup.LIGHT: RateLimit(50),
        RateGroup.MEDIUM: RateLimit(40),
        RateGroup.HEAVY: RateLimit(10),
        RateGroup.AUTH: RateLimit(5),
    }


@dataclass(frozen=True)
class PlatformProfile:
    """Every number and every doubtful behaviour of the simulated platform."""

    name: str = "lenient"
    # OAuth (research D): access TTL default 3600 s per the spec (G-D1), refresh one week.
    access_token_ttl_s: float = 3600.0
    refresh_token_ttl_s: float = 604800.0
    # research A10/D [doc: tokens.md]: ~5 parallel OAuth sessions per user and app, more
    # logins revoke the oldest (G-D1: optional). None = no cap.
    max_oauth_sessions: int | None = None
    # wstoken expires_in: the SDK comments and rc-ex PR #77 say 600 s (research A1).
    ws_token_ttl_s: float = 600.0
    # G-A3: docs say single use, rc-ex reuses the token within its TTL.
    ws_token_single_use: bool = False
    # G-A2: refusal of a bad ws token.
    bad_ws_token_reply: BadWsTokenReply = BadWsTokenReply.HTTP_401
    # ConnectionDetails limits (research A4, seconds / message counts).
    recovery_timeout_s: float = 180.0
    recovery_buffer_size: int = 100
    idle_timeout_s: float = 1800.0
    absolute_timeout_s: float = 86400.0
    max_active_requests: int = 10
    max_connections_per_session: int = 50
    # research A2 [doc: DOCS-WS-HB]: the server pings; a client that does not pong within 10 s
    # may be dropped. The ping interval is not published: off unless set.
    ping_interval_s: float | None = None
    pong_timeout_s: float = 10.0
    # G-A9: close code after the WSG-902/903 Error frame (unknown; 1000 proposed).
    timeout_close_code: int = 1000
    # G-A7: on a successful recovery also replay this many notifications that were already
    # written to the dropped socket (the client may or may not have read them), so the
    # client's uuid de-duplication is exercised.
    recovery_replay_overlap: int = 0
    # G-A8: recoveryErrorCode when the recovery window has passed (code unspecified publicly).
    recovery_expired_code: str = "WSG-1001"
    # G-A6: subscriptions per user and app (20 per community answer / SUB-505, 30 per spec).
    max_subscriptions: int = 20
    # research C5: call-log records appear 15-30 s after the call ends.
    call_log_delay_s: float = 20.0
    rate_limits: dict[RateGroup, RateLimit] = field(default_factory=_default_rate_limits)

    @classmethod
    def lenient(cls) -> PlatformProfile:
        """What the official SDKs rely on: reusable ws tokens, HTTP 401 on a bad one."""
        return cls()

    @classmethod
    def strict(cls) -> PlatformProfile:
        """The developer guide to the letter, plus the harsher undocumented choices."""
        return cls(
            name="strict",
            ws_token_single_use=True,
            bad_ws_token_reply=BadWsTokenReply.CLOSE_4401,
            recovery_replay_overlap=3,
            max_oauth_sessions=5,
        )

    def with_changes(self, **changes: object) -> PlatformProfile:
        """A copy with some fields changed (typed wrapper over `dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def limit_for(self, group: RateGroup) -> RateLimit:
        return self.rate_limits.get(group, RateLimit(10**9))
