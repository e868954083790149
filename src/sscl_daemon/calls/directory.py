"""The account's extension directory: which extension ids are people.

The daemon loads it from ``GET /restapi/v1.0/account/~/extension`` (fields
``id`` (a number), ``extensionNumber``, ``name``, ``type``, ``status``,
``contact.email``, ``contact.department``; see the API reference "List
Extensions") and refreshes it; the tracker and the policy read it. A record may
also carry ``regionalSettings.timezone`` (the list does not; ``ringcentral/directory.py``
adds it from each user's "Get Extension"): its ``name`` becomes the extension's IANA
``timezone`` (:func:`sscl_daemon.zones.from_ringcentral`), which the calls of that
user carry to the writers. The
extensions people answer (``User``, ``DigitalUser``, ``VirtualUser``,
``FlexibleUser``, ``Limited``, and a type newer than the daemon:
:data:`~sscl_daemon.calls.model.ANSWERS_AS_A_PERSON`) get call logs of their
own; ``IvrMenu``, ``Department`` (a call queue), ``ParkLocation``,
``Voicemail`` and the other types shape a call (abandoned in the IVR, queue
time) but are never logged as a user's call. An extension the directory does
not know yet (added since the last load) makes the tracker ask for a fresh
directory before it decides (:meth:`~sscl_daemon.calls.tracker.Tracker.take_directory_wanted`).

Without a directory, or for an id a fresh directory still does not know, the
tracker falls back to heuristics (documented in
:func:`sscl_daemon.calls.parties.classify_parties`): a party with an
``extensionId`` is a user unless it is the queue that ``queueCall`` parties
were delivered from, or it left with reason ``CallerInputRedirect`` (an IVR
menu handing the caller on), or it was the park location of a ``Parked``
party.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from sscl_daemon.calls.model import Extension, ExtensionType
from sscl_daemon.errors import SsclError
from sscl_daemon.zones import from_ringcentral


class DirectoryError(SsclError, ValueError):
    """An extension-list record cannot be used (names the record and the field)."""


class Directory:
    """Immutable lookup of extensions by id and by extension number."""

    __slots__ = ("_by_id", "_by_number", "_user", "queue_names")

    def __init__(self, extensions: Iterable[Extension]) -> None:
        self._by_id: dict[str, Extension] = {}
        self._by_number: dict[str, Extension] = {}
        # Answered once here: every completed session asks it for each of its parties.
        self._user: dict[str, bool] = {}
        queues: set[str] = set()
        for ext in extensions:
            self._by_id[ext.id] = ext
            self._user[ext.id] = ext.is_user
            if ext.extension_number:
                self._by_number[ext.extension_number] = ext
            if ext.type is ExtensionType.DEPARTMENT and ext.name:
                queues.add(ext.name)
        # Call-queue names: a queue delivery names the caller "<queue> - <caller id>".
        self.queue_names: frozenset[str] = frozenset(queues)

    @classmethod
    def from_api(cls, records: Sequence[Mapping[str, object]]) -> Directory:
        """Build from the ``records`` of the extension-list response."""
        extensions: list[Extension] = []
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise DirectoryError(f"extension record #{index} is not a JSON object")
            raw_id = record.get("id")
            if isinstance(raw_id, bool) or not isinstance(raw_id, int | str) or raw_id == "":
                raise DirectoryError(f"extension record #{index} has no usable 'id': {raw_id!r}")
            contact = record.get("contact")
            contact = contact if isinstance(contact, Mapping) else {}
            number = record.get("extensionNumber")
            extensions.append(
                Extension(
                    id=str(raw_id),
                    extension_number=None if number is None else str(number),
                    name=_text(record.get("name")),
                    type=ExtensionType.parse(_text(record.get("type"))),
                    status=_text(record.get("status")),
                    email=_text(contact.get("email")),
                    department=_text(contact.get("department")),
                    timezone=from_ringcentral(_zone_name(record.get("regionalSettings"))),
                )
            )
        return cls(extensions)

    def by_id(self, extension_id: str | None) -> Extension | None:
        return None if extension_id is None else self._by_id.get(extension_id)

    def by_number(self, extension_number: str | None) -> Extension | None:
        return None if extension_number is None else self._by_number.get(extension_number)

    def is_user(self, extension_id: str | None) -> bool | None:
        """True/False when the directory knows the extension, None when it does not."""
        return None if extension_id is None else self._user.get(extension_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Extension]:
        return iter(self._by_id.values())


def _zone_name(settings: object) -> str | None:
    """``regionalSettings.timezone.name`` of an extension record, when it has one."""
    zone = settings.get("timezone") if isinstance(settings, Mapping) else None
    name = zone.get("name") if isinstance(zone, Mapping) else None
    return name if isinstance(name, str) else None


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)
