"""A Clio batch's one read of phone communications (the Clio writer's client-log check,
crm/clio.py ``write_batch`` -> here), as pure data.

Before each create the writer looks for our own earlier communication of the call and for
one a user's client made: ``GET /communications.json?type=PhoneCommunication&
received_since=<start - 1 h>&received_before=<end + 1 h>`` (and ``contact_id`` when the
contact is known), ``limit=200``. A batch reads the union of its calls' windows once
instead (all pages, id order) and :meth:`CommunicationWindow.of` answers each call what its
own read would have: the rows received within its bounds (both inclusive, as Clio filters),
of its contact as sender or receiver when it has one, in id order, the first 200.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.crm import content
from sscl_daemon.crm.contacts import parse_time

CLIENT_WINDOW: Final = timedelta(hours=1)
# Rows of one index read (Clio's maximum ``limit``), so also of one call's own read.
PAGE: Final = 200
FIELDS: Final = "id,body,subject,received_at"
# The batch read also needs the parties, to answer a call's ``contact_id`` filter.
WINDOW_FIELDS: Final = f"{FIELDS},senders{{id,type}},receivers{{id,type}}"


def bounds(call: CompletedCall) -> tuple[str, str]:
    """``received_since`` and ``received_before`` of the call's own read."""
    return (
        content.iso_utc(content.utc(call.start_time) - CLIENT_WINDOW),
        content.iso_utc(content.utc(call.end_time) + CLIENT_WINDOW),
    )


def _parties(row: Mapping[str, object]) -> set[str]:
    """The ids of the contacts among a communication's senders and receivers."""
    found: set[str] = set()
    for side in ("senders", "receivers"):
        listed = row.get(side)
        for party in listed if isinstance(listed, list) else []:
            if isinstance(party, dict) and party.get("type") == "Contact":
                found.add(str(party.get("id")))
    return found


class CommunicationWindow:
    """The phone communications of one read covering a batch's calls."""

    def __init__(self, rows: Sequence[Mapping[str, object]]) -> None:
        self._rows: list[tuple[datetime | None, set[str], Mapping[str, object]]] = [
            (parse_time(r.get("received_at")), _parties(r), r) for r in rows
        ]

    def of(self, call: CompletedCall, contact_id: str | None) -> list[Mapping[str, object]]:
        """What the call's own read answers: its rows in its bounds, of ``contact_id``."""
        # The bounds as sent (milliseconds), read back the way Clio reads them.
        since, before = (datetime.fromisoformat(b.replace("Z", "+00:00")) for b in bounds(call))
        return [
            row
            for when, contacts, row in self._rows
            if when is not None and since <= when <= before
            if contact_id is None or contact_id in contacts
        ][:PAGE]
