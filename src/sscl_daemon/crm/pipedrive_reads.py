"""What the Pipedrive writer (crm/pipedrive.py) reads back from Pipedrive, as pure data:
persons in search and list answers, activities, what a call log or activity is linked to
(:func:`note_targets`, where an update's note can go), and -- for the check for logs a
user's own client made -- the batch's one read of recent activities (:class:`ClientWindow`)
and the match of a call against a person's activities (:func:`client_log`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.crm import content
from sscl_daemon.crm.base import AlreadyExisted
from sscl_daemon.crm.contacts import Contact, parse_time
from sscl_daemon.crm.http import Response
from sscl_daemon.crm.pipedrive_mapping import app_connect_activity, int_id


def data_of(answer: Response) -> object:
    return answer.object().get("data")


def activities_of(answer: Response) -> list[dict[str, object]]:
    data = data_of(answer)
    return [a for a in (data if isinstance(data, list) else []) if isinstance(a, dict)]


def rfc3339(moment: datetime) -> str:
    """A v2 ``updated_since`` (whole seconds, rounded down: the read may only widen)."""
    return content.utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


class ClientWindow:
    """The activities of one read covering a batch (``write_batch``), answering each call's
    client-log check as ``GET /api/v2/activities?person_id=…&updated_since=…`` would."""

    def __init__(self, activities: Sequence[Mapping[str, object]]) -> None:
        self._all = list(activities)
        self._by_person: dict[str, list[Mapping[str, object]]] = {}
        for activity in activities:
            person = int_id(activity.get("person_id"))
            if person is not None:
                self._by_person.setdefault(str(person), []).append(activity)

    def of(self, person: Contact, since: datetime) -> list[Mapping[str, object]]:
        """The person's activities (as primary participant) updated at or after ``since``."""
        return _updated_since(self._by_person.get(person.id, []), since)

    def since(self, since: datetime) -> list[Mapping[str, object]]:
        """Every activity of the read updated at or after ``since`` (a retry's check for
        its own earlier log, whoever the log's person is)."""
        return _updated_since(self._all, since)


def _updated_since(
    activities: Sequence[Mapping[str, object]], since: datetime
) -> list[Mapping[str, object]]:
    return [
        a
        for a in activities
        if (updated := parse_time(a.get("update_time"))) is None or updated >= since
    ]


def our_activity(call: CompletedCall, activities: Sequence[Mapping[str, object]]) -> str | None:
    """The id of the activity whose note carries ``call``'s key: an earlier attempt's log
    (an activity of ours, or the one Pipedrive keeps for a call log of ours)."""
    for activity in activities:
        note = activity.get("note")
        if content.recognise(call, note if isinstance(note, str) else None) is content.Match.OURS:
            return str(activity.get("id"))
    return None


# The records a Pipedrive note can be attached to (``POST /v1/notes`` needs one of them), in
# the order the writer looks for an earlier attempt's note (``GET /v1/notes`` filters).
NOTE_TARGETS = ("person_id", "deal_id", "lead_id", "org_id")


def note_targets(record: Mapping[str, object]) -> dict[str, int | str]:
    """What a call log or activity is linked to, as a note's ``person_id`` / ``deal_id`` /
    ``lead_id`` (a UUID) / ``org_id``: a note with them shows where the record shows."""
    found: dict[str, int | str] = {}
    participants = record.get("participants")
    primary = [
        p
        for p in (participants if isinstance(participants, list) else [])
        if isinstance(p, dict) and int_id(p.get("person_id")) is not None
    ]
    person = int_id(record.get("person_id"))
    if person is None and primary:
        person = int_id(primary[0].get("person_id"))
    for name, value in (
        ("person_id", person),
        ("deal_id", int_id(record.get("deal_id"))),
        ("org_id", int_id(record.get("org_id"))),
    ):
        if value is not None:
            found[name] = value
    lead = record.get("lead_id")
    if isinstance(lead, str) and lead:
        found["lead_id"] = lead
    return {name: found[name] for name in NOTE_TARGETS if name in found}


def person_of(item: Mapping[str, object]) -> Contact | None:
    person_id = int_id(item.get("id"))
    if person_id is None:
        return None
    org = item.get("organization")
    org_id = int_id(org.get("id")) if isinstance(org, dict) else int_id(item.get("org_id"))
    owner = item.get("owner")
    owner_id = int_id(owner.get("id")) if isinstance(owner, dict) else int_id(item.get("owner_id"))
    name = item.get("name")
    return Contact(
        str(person_id),
        name if isinstance(name, str) else None,
        "person",
        str(org_id) if org_id is not None else None,
        str(owner_id) if owner_id is not None else None,
        created=parse_time(item.get("add_time")),
        updated=parse_time(item.get("update_time")),
    )


def phones_of(item: Mapping[str, object]) -> list[str]:
    phones = item.get("phones", item.get("phone"))
    found: list[str] = []
    if isinstance(phones, list):
        for phone in phones:
            if isinstance(phone, str):
                found.append(phone)
            elif isinstance(phone, dict) and isinstance(phone.get("value"), str):
                found.append(phone["value"])
    return found


def client_log(
    call: CompletedCall, activities: Sequence[Mapping[str, object]]
) -> AlreadyExisted | None:
    """A user's client's log of ``call`` among its person's recent activities: one whose
    note names the call's session, or App Connect's default activity of the call
    (``activity:<id>``, never updated). An activity carrying our own key is ours instead
    (``ours``, its plain id): the writer names it (``_own_activity``) so its updates go on."""
    notes = [
        (str(a.get("id")), note if isinstance(note := a.get("note"), str) else None)
        for a in activities
    ]
    match = content.first_match(call, notes)
    if match and match[1] is content.Match.OURS:
        return AlreadyExisted(match[0], ours=True)
    if match:
        return AlreadyExisted(f"activity:{match[0]}")
    for activity, (aid, note) in zip(activities, notes, strict=True):
        # A note with any sscl-key line is ours (another user's log of the session).
        if not content.has_key_line(note) and app_connect_activity(call, activity):
            return AlreadyExisted(f"activity:{aid}")
    return None
