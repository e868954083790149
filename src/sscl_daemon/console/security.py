"""Console sessions, CSRF tokens and security headers (no I/O; the clock is passed in).

With ``admin.token`` set, the login form trades the token for a session: a
random id kept in this process's memory and sent back as a cookie that
scripts cannot read (HttpOnly), that no other site's page can make the
browser send (SameSite=Strict) and that expires (:data:`SESSION_SECONDS`).
Without a token (the endpoint is on loopback) every visitor gets a session
without logging in, so that CSRF protection is the same in both cases.

Every action (a POST) must carry the session's CSRF token, an HMAC of the
session id under a key that never leaves the process. A restart forgets
every session: logging in again is the price of keeping no secret on disk.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict

SESSION_COOKIE = "sscl_console"
SESSION_SECONDS = 12 * 3600
# Sessions kept at most; the oldest are forgotten first (each login makes one).
SESSIONS_KEPT = 1000

# 'self' only: the console's own script and stylesheet, no inline code, no other origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Sessions:
    """The console's live sessions and their CSRF tokens."""

    def __init__(self, token: str | None, limit: int = SESSIONS_KEPT) -> None:
        self._token = token
        self._key = secrets.token_bytes(32)
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._limit = limit

    @property
    def needs_login(self) -> bool:
        return self._token is not None

    def login(self, offered: str, now: float) -> str | None:
        """A new session id when ``offered`` is the admin token, else None."""
        if self._token is None or not hmac.compare_digest(offered.encode(), self._token.encode()):
            return None
        return self.open(now)

    def open(self, now: float) -> str:
        """A new session (the login form's, or anyone's when no token is configured)."""
        sid = secrets.token_urlsafe(32)
        self._expiry[sid] = now + SESSION_SECONDS
        while len(self._expiry) > self._limit:
            self._expiry.popitem(last=False)
        return sid

    def valid(self, sid: str | None, now: float) -> bool:
        if not sid:
            return False
        expiry = self._expiry.get(sid)
        if expiry is None:
            return False
        if expiry <= now:
            del self._expiry[sid]
            return False
        return True

    def end(self, sid: str | None) -> None:
        if sid:
            self._expiry.pop(sid, None)

    def csrf(self, sid: str) -> str:
        return hmac.new(self._key, sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, sid: str | None, offered: str | None, now: float) -> bool:
        if not offered or not self.valid(sid, now):
            return False
        assert sid is not None
        return hmac.compare_digest(offered.encode(), self.csrf(sid).encode())
