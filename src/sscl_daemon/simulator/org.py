"""The simulated RingCentral account: users, IVR, call queues, park locations, outside callers.

First stop of the scenario side of the simulator: `scenarios.CallFactory` places calls between
the extensions and external numbers held here, and the REST side serves `extension_records()`
as `GET /restapi/v1.0/account/~/extension`. Built deterministically from a seed.

Shapes follow the extension-list schema of the official SDKs (`GetExtensionListInfoResponse`:
`id` as a number, `uri`, `extensionNumber`, `name`, `type`, `status`, `contact{firstName,
lastName, email, department, ...}`, `permissions`, `profileImage`, `hidden`) and the id style
seen in real captures (research/rc-protocol.md B6: numeric ids that end with the account's
three-digit shard suffix, e.g. account 809646016, extension 62242421016). Phone numbers are
NANP numbers in the fictional 555-01xx block, E.164.

`extension_info()` is one extension's own record (`GET .../extension/{id}`, "Get
Extension"): the list's fields plus `regionalSettings` (`timezone {uri, id, name,
description, bias}`, `homeCountry`, `language`, `greetingLanguage`, `formattingLocale`,
`timeFormat`), which the list leaves out. The company is in San Mateo (US/Pacific); some
users are set to US/Eastern or US/Central, so per-user time zones show.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sscl_daemon.calls.model import ExtensionType

DEFAULT_PLATFORM_URL = "https://platform.ringcentral.com"

_FIRST_NAMES = (
    "Alice", "Bruno", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hugo", "Irene", "Jonas",
    "Keiko", "Liam", "Maya", "Nikolai", "Olivia", "Pedro", "Quinn", "Rosa", "Samir", "Tara",
    "Umar", "Vera", "Walter", "Xenia", "Yusuf", "Zoe", "Amara", "Ben", "Carmen", "Dmitri",
    "Esther", "Felix", "Gemma", "Hamid", "Ines", "Jack", "Lena", "Marco", "Nora", "Oscar",
)  # fmt: skip
_LAST_NAMES = (
    "Adams", "Baker", "Castro", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanov",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Quintero", "Rossi",
    "Schmidt", "Tanaka", "Ueda", "Varga", "Weber", "Xu", "Yilmaz", "Zimmer", "Novak", "Silva",
    "Costa", "Murphy",
)  # fmt: skip
_QUEUE_DEPARTMENTS = ("Sales", "Support", "Billing", "Onboarding", "Renewals", "Partners")
# Area codes with a readable city: the company's own numbers use the first one, callers the rest.
_AREAS = (
    ("650", "San Mateo, CA"),
    ("415", "San Francisco, CA"),
    ("212", "New York, NY"),
    ("312", "Chicago, IL"),
    ("617", "Boston, MA"),
    ("720", "Denver, CO"),
    ("206", "Seattle, WA"),
    ("512", "Austin, TX"),
    ("404", "Atlanta, GA"),
    ("303", "Boulder, CO"),
)
# Caller-id names as the carrier's CNAM lookup delivers them (upper case, "LAST FIRST" or a city).
_CNAM_FALLBACK = "WIRELESS CALLER"
_DIDS_PER_AREA = 80
# RingCentral time zones as "Get Extension" shows them: name -> (id, description, bias in
# minutes, standard time). US/Pacific is the API reference's example; the other ids are
# the simulator's own.
TIME_ZONES: dict[str, tuple[str, str, str]] = {
    "US/Pacific": ("58", "Pacific Time (US & Canada)", "-480"),
    "US/Central": ("59", "Central Time (US & Canada)", "-360"),
    "US/Eastern": ("60", "Eastern Time (US & Canada)", "-300"),
    "Europe/London": ("44", "London, Edinburgh, Dublin, Lisbon", "0"),
}
COMPANY_TIME_ZONE = "US/Pacific"


def user_time_zone(index: int) -> str:
    """The RingCentral zone of the ``index``-th user (no random draw: the seeded org stays
    as it was): every fifth from the third on in US/Eastern, from the fifth on in
    US/Central, the others in the company's."""
    return {2: "US/Eastern", 4: "US/Central"}.get(index % 5, COMPANY_TIME_ZONE)


def fictional_number(area_index: int, n: int) -> str:
    """The n-th (0-99) number of the fictional 555-01xx block in one of the area codes."""
    npa = _AREAS[area_index % len(_AREAS)][0]
    return f"+1{npa}55501{n:02d}"


@dataclass(frozen=True)
class OrgExtension:
    """One extension of the account (a user, the IVR menu, a call queue, a park location)."""

    id: str
    extension_number: str
    name: str
    type: ExtensionType
    did: str | None = None  # direct E.164 number, if the extension has one
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    department: str | None = None
    device_id: str | None = None  # the user's desk/soft phone, as `from.deviceId` shows it
    admin: bool = False
    timezone: str = COMPANY_TIME_ZONE  # a TIME_ZONES name (regional settings)


@dataclass(frozen=True)
class CallQueue:
    """A call queue (extension type `Department`) and the users it rings."""

    extension: OrgExtension
    members: tuple[OrgExtension, ...]


@dataclass(frozen=True)
class ExternalParty:
    """An outside (PSTN) number that calls the company or is called by it."""

    phone_number: str  # E.164
    cnam: str | None  # caller-id name the carrier adds, None when withheld
    location: str


@dataclass(frozen=True)
class Organisation:
    """A simulated RingCentral account."""

    account_id: str
    main_number: str  # E.164 company number, answered by the IVR
    owner_extension_id: str  # the subscriber (an admin user): the notifications' `ownerId`
    users: tuple[OrgExtension, ...]
    ivr: OrgExtension
    queues: tuple[CallQueue, ...]
    park_locations: tuple[OrgExtension, ...]
    callers: tuple[ExternalParty, ...]
    platform_url: str = DEFAULT_PLATFORM_URL

    @property
    def shard_suffix(self) -> str:
        """The three digits every id of this account ends with."""
        return self.account_id[-3:]

    def extensions(self) -> tuple[OrgExtension, ...]:
        return (
            *self.users,
            self.ivr,
            *(queue.extension for queue in self.queues),
            *self.park_locations,
        )

    def extension(self, extension_id: str) -> OrgExtension:
        for ext in self.extensions():
            if ext.id == extension_id:
                return ext
        raise KeyError(f"no extension {extension_id!r} in account {self.account_id}")

    def extension_uri(self, extension_id: str) -> str:
        return (
            f"{self.platform_url}/restapi/v1.0/account/{self.account_id}/extension/{extension_id}"
        )

    def extension_records(self) -> list[dict[str, object]]:
        """The items of `GET /restapi/v1.0/account/~/extension`, in extension-number order."""
        return [self._record(ext) for ext in self.extensions()]

    def extension_info(self, extension_id: str) -> dict[str, object] | None:
        """``GET .../extension/{id}``: the list's record plus ``regionalSettings``; None
        for an id the account does not have."""
        try:
            ext = self.extension(extension_id)
        except KeyError:
            return None
        zone_id, description, bias = TIME_ZONES[ext.timezone]
        english = {"id": "1033", "name": "English (United States)", "localeCode": "en-US"}
        return {
            **self._record(ext),
            "account": {
                "uri": f"{self.platform_url}/restapi/v1.0/account/{self.account_id}",
                "id": self.account_id,
            },
            "regionalSettings": {
                "timezone": {
                    "uri": f"{self.platform_url}/restapi/v1.0/dictionary/timezone/{zone_id}",
                    "id": zone_id,
                    "name": ext.timezone,
                    "description": description,
                    "bias": bias,
                },
                "homeCountry": {
                    "uri": f"{self.platform_url}/restapi/v1.0/dictionary/country/1",
                    "id": "1",
                    "name": "United States",
                    "isoCode": "US",
                    "callingCode": "1",
                },
                "language": english,
                "greetingLanguage": english,
                "formattingLocale": english,
                "timeFormat": "12h",
            },
            "setupWizardState": "Completed",
        }

    def _record(self, ext: OrgExtension) -> dict[str, object]:
        uri = self.extension_uri(ext.id)
        contact: dict[str, object]
        if ext.type is ExtensionType.USER:
            contact = {
                "firstName": ext.first_name,
                "lastName": ext.last_name,
                "company": "Example Co",
                "email": ext.email,
                "businessPhone": ext.did,
                "emailAsLoginName": True,
                "pronouncedName": {"type": "Default"},
                "department": ext.department,
            }
        else:
            # Non-user extensions carry their display name in contact.firstName.
            contact = {"firstName": ext.name, "pronouncedName": {"type": "Default"}}
            if ext.email is not None:
                contact["email"] = ext.email
        record: dict[str, object] = {
            "uri": uri,
            "id": int(ext.id),
            "extensionNumber": ext.extension_number,
            "contact": contact,
            "name": ext.name,
            "type": str(ext.type),
            "status": "Enabled",
            "permissions": {
                "admin": {"enabled": ext.admin},
                "internationalCalling": {"enabled": False},
            },
            "profileImage": {"uri": f"{uri}/profile-image"},
            "hidden": False,
        }
        return record

    @classmethod
    def build(
        cls,
        seed: int,
        users: int = 20,
        queues: int = 2,
        *,
        callers: int = 60,
        park_locations: int = 2,
        platform_url: str = DEFAULT_PLATFORM_URL,
    ) -> Organisation:
        """A deterministic account: same arguments, same organisation."""
        if queues < 2 or queues > len(_QUEUE_DEPARTMENTS):
            raise ValueError(f"queues={queues}: choose between 2 and {len(_QUEUE_DEPARTMENTS)}")
        if users < 2 * queues:
            raise ValueError(f"users={users}: need at least 2 per queue ({2 * queues})")
        if users > _DIDS_PER_AREA * len(_AREAS):
            raise ValueError(f"users={users}: at most {_DIDS_PER_AREA * len(_AREAS)} users")
        if not 1 <= park_locations <= 9:
            raise ValueError(f"park_locations={park_locations}: choose between 1 and 9")
        max_callers = (99 - _DIDS_PER_AREA) * (len(_AREAS) - 1)
        if not 1 <= callers <= max_callers:
            raise ValueError(f"callers={callers}: choose between 1 and {max_callers}")
        rng = random.Random(f"org:{seed}")
        account_id = f"{rng.randrange(100_000, 1_000_000)}{rng.choice(('004', '005', '016'))}"
        suffix = account_id[-3:]
        used: set[str] = {account_id}

        def new_id() -> str:
            while True:
                candidate = f"{rng.randrange(10_000_000, 100_000_000)}{suffix}"
                if candidate not in used:
                    used.add(candidate)
                    return candidate

        def new_device() -> str:
            return f"{rng.randrange(100_000_000, 1_000_000_000)}{suffix}"

        # Company numbers: 0100 main, 0101..0180 user DIDs (then the same block in the next
        # area codes), 0190.. queue DIDs; callers take 0199 downwards in the other area codes.
        def company_number(index: int) -> str:
            return fictional_number(index // _DIDS_PER_AREA, 1 + index % _DIDS_PER_AREA)

        departments = _QUEUE_DEPARTMENTS[:queues]
        names = rng.sample([(f, la) for f in _FIRST_NAMES for la in _LAST_NAMES], users)
        first_number = 101 if users <= 99 else 10001
        people: list[OrgExtension] = []
        for i, (first, last) in enumerate(names):
            # The first 2 * queues users fill the queues evenly, the rest are spread at random.
            department = departments[i % queues] if i < 2 * queues else rng.choice(departments)
            people.append(
                OrgExtension(
                    id=new_id(),
                    extension_number=str(first_number + i),
                    name=f"{first} {last}",
                    type=ExtensionType.USER,
                    did=company_number(i),
                    first_name=first,
                    last_name=last,
                    email=f"{first.lower()}.{last.lower()}@example.com",
                    department=department,
                    device_id=new_device(),
                    admin=i == 0,
                    timezone=user_time_zone(i),
                )
            )
        ivr = OrgExtension(
            id=new_id(),
            extension_number="1001",
            name="IVR Menu 1001",
            type=ExtensionType.IVR_MENU,
        )
        queue_list: list[CallQueue] = []
        for q, department in enumerate(departments):
            ext = OrgExtension(
                id=new_id(),
                extension_number=str(201 + q) if users <= 99 else str(20001 + q),
                name=f"{department} Queue",
                type=ExtensionType.DEPARTMENT,
                did=fictional_number(0, 90 + q),
                email=f"{department.lower()}@example.com",
            )
            members = tuple(p for p in people if p.department == department)
            queue_list.append(CallQueue(ext, members))
        parks = tuple(
            OrgExtension(
                id=new_id(),
                extension_number=str(801 + k),
                name=f"Park Location {k + 1}",
                type=ExtensionType.PARK_LOCATION,
            )
            for k in range(park_locations)
        )
        caller_list: list[ExternalParty] = []
        for k in range(callers):
            area = 1 + k % (len(_AREAS) - 1)
            number = fictional_number(area, 99 - k // (len(_AREAS) - 1))
            roll = rng.random()
            if roll < 0.45:
                cnam: str | None = (
                    f"{rng.choice(_LAST_NAMES).upper()} {rng.choice(_FIRST_NAMES).upper()}"
                )
            elif roll < 0.7:
                cnam = _AREAS[area][1].split(",")[0].upper() + " " + _AREAS[area][1][-2:]
            elif roll < 0.85:
                cnam = _CNAM_FALLBACK
            else:
                cnam = None
            caller_list.append(ExternalParty(number, cnam, _AREAS[area][1]))
        return cls(
            account_id=account_id,
            main_number=fictional_number(0, 0),
            owner_extension_id=people[0].id,
            users=tuple(people),
            ivr=ivr,
            queues=tuple(queue_list),
            park_locations=parks,
            callers=tuple(caller_list),
            platform_url=platform_url,
        )
