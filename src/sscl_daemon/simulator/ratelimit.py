"""Per-group request budgets of the simulated platform (sans-I/O; time is passed in).

research/rc-protocol.md C6 [doc: rate-limits.md]: budgets are per user+app and group, over a
sliding window; once exceeded the group is in a penalty for `penalty_s`, and every request
made during the penalty restarts the penalty clock. Every answer carries the four
`X-Rate-Limit-*` headers (group values lowercase, as observed in real captures [obs: JSW]);
a refusal is HTTP 429 with `Retry-After` and a CMN-301 body.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from sscl_daemon.simulator.profiles import PlatformProfile, RateGroup


@dataclass(frozen=True)
class RateDecision:
    """Outcome of one request against its group's budget."""

    group: RateGroup
    allowed: bool
    limit: int
    remaining: int
    window_s: float
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        out = {
            "X-Rate-Limit-Group": self.group.value.lower(),
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(self.remaining),
            "X-Rate-Limit-Window": str(round(self.window_s)),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


def rate_group_for(method: str, path: str) -> RateGroup:
    """Throttling group per operation (research C6; the spec's path comments)."""
    if path.startswith("/restapi/oauth/"):
        return RateGroup.AUTH
    if "/call-log" in path or ("/recording/" in path and path.endswith("/content")):
        return RateGroup.HEAVY
    if "/message-store/" in path and "/content/" in path:
        return RateGroup.MEDIUM
    if path.endswith("/extension"):  # list extensions [spec: REX paths Account/Extension]
        return RateGroup.MEDIUM
    if path.startswith("/restapi/v1.0/subscription") and method != "GET":
        return RateGroup.MEDIUM
    return RateGroup.LIGHT


def rate_exceeded_body() -> dict[str, object]:
    message = "Request rate exceeded"
    return {
        "errorCode": "CMN-301",
        "message": message,
        "errors": [{"errorCode": "CMN-301", "message": message}],
    }


@dataclass
class _Bucket:
    hits: deque[float] = field(default_factory=deque)
    penalty_until: float = 0.0


@dataclass
class RateLimiter:
    """Sliding-window budgets keyed by (caller, group)."""

    profile: PlatformProfile
    _buckets: dict[tuple[str, RateGroup], _Bucket] = field(default_factory=dict)

    def check(self, caller: str, group: RateGroup, now: float) -> RateDecision:
        rule = self.profile.limit_for(group)
        bucket = self._buckets.setdefault((caller, group), _Bucket())
        while bucket.hits and bucket.hits[0] <= now - rule.window_s:
            bucket.hits.popleft()
        if now < bucket.penalty_until:
            bucket.penalty_until = now + rule.penalty_s
            return RateDecision(
                group, False, rule.requests, 0, rule.window_s, math.ceil(rule.penalty_s)
            )
        if len(bucket.hits) >= rule.requests:
            bucket.penalty_until = now + rule.penalty_s
            return RateDecision(
                group, False, rule.requests, 0, rule.window_s, math.ceil(rule.penalty_s)
            )
        bucket.hits.append(now)
        remaining = rule.requests - len(bucket.hits)
        return RateDecision(group, True, rule.requests, remaining, rule.window_s, 0)

    def reset(self) -> None:
        self._buckets.clear()
