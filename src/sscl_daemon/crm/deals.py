"""Which deal / opportunity a call log is attached to (a CRM writer's ``deals`` policy).

Pure: each writer lists the open deals of the call's contact its own way (HubSpot deals
associated with the contact, Salesforce opportunities the contact has a role in, Pipedrive
open deals of the person) and :func:`choose` applies the policy:

* ``none`` -- no deal (the log is attached to the contact only);
* ``if-exactly-one-open`` -- the contact's only open deal; none when there are several
  (a person decides);
* ``most-recent-open`` -- the open deal changed last (the CRM's own timestamp).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sscl_daemon.config import DealsPolicy


@dataclass(frozen=True)
class Deal:
    id: str
    open: bool = True
    updated: datetime | None = None


def choose(deals: Sequence[Deal], policy: DealsPolicy) -> Deal | None:
    """The deal to attach the log to, or None."""
    candidates = [d for d in deals if d.open]
    if policy is DealsPolicy.NONE or not candidates:
        return None
    if policy is DealsPolicy.IF_EXACTLY_ONE_OPEN:
        return candidates[0] if len(candidates) == 1 else None
    # most-recent-open: max() keeps the first of equals (the CRM's order breaks ties).
    return max(candidates, key=lambda d: d.updated.timestamp() if d.updated else float("-inf"))
