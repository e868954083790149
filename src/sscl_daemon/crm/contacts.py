"""Contact and owner resolution shared by the CRM writers.

Who a call log is associated with and who owns it are the same questions in every CRM;
only the lookups differ. A writer passes its own async lookups in, and this module adds:

* :class:`ContactCache` -- a bounded TTL cache (``SharedCache``, size and TTL from
  ``ContactSettings``) of E.164 number -> matching contacts, so a busy contact costs one
  search per TTL. Failed lookups are not cached. Calls of a batch asking for the same
  number at once (writers without a batch API resolve a batch's calls concurrently) share
  one search and its answer, a failure included (``crm/singleflight.py``).
* :func:`choose` -- the pure decision of what to do with 0, 1 or several matches under the
  configured ``no_contact`` / ``several_contacts`` policies (``most-recently-updated`` and
  ``oldest`` read the CRM's own timestamps of each match; a match without one comes last).
* :class:`OwnerResolver` -- the CRM user who owns a call log: the explicit ``owners`` table
  (RingCentral extension number -> CRM user id, or an e-mail to look up) first, then the
  RingCentral user's e-mail matched against the CRM's user list (``owner_by_email``). The
  user list is read once per ``contact_cache_ttl`` (``ContactSettings.cache_ttl``), one
  read shared by every call asking while it is under way.
* :class:`Resolver` -- the whole step every CRM writer runs before creating a log: cached
  contact lookup, the policy decision, the owner, and (``no_contact = create``) the new
  contact, which is then cached; calls of a batch with the same new number make it once.
  It answers a :class:`Resolution`, the lookup's failure, or
  :class:`~sscl_daemon.crm.base.Skipped` when a ``"skip"`` policy decided not to log the call.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import ContactSettings, NoContactPolicy, SeveralContactsPolicy
from sscl_daemon.crm.base import PermanentFailure, RetryLater, Skipped
from sscl_daemon.crm.singleflight import SharedCache, SingleFlight

LookupFailure = RetryLater | PermanentFailure


@dataclass(frozen=True)
class Contact:
    """A CRM record a call can be associated with."""

    id: str
    name: str | None = None
    kind: str = "contact"
    org_id: str | None = None
    owner_id: str | None = None
    # The CRM's own record times (aware datetimes), for the several_contacts policies.
    created: datetime | None = None
    updated: datetime | None = None


def parse_time(value: object) -> datetime | None:
    """A CRM timestamp (ISO 8601, ``Z`` or offset, or Pipedrive's ``YYYY-MM-DD HH:MM:SS``
    in UTC) as an aware datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00")
    # Salesforce writes offsets without a colon (+0000).
    if len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ContactChoice:
    """What to associate: ``contacts`` (maybe none), or create one, or skip the call."""

    contacts: tuple[Contact, ...] = ()
    create: bool = False
    skip: str | None = None

    @property
    def primary(self) -> Contact | None:
        return self.contacts[0] if self.contacts else None


def choose(
    found: Sequence[Contact], settings: ContactSettings, number: str | None
) -> ContactChoice:
    """Apply the configured policies to the matches for ``number`` (pure)."""
    if not found:
        if number is None:
            return ContactChoice()
        if settings.no_contact is NoContactPolicy.CREATE:
            return ContactChoice(create=True)
        if settings.no_contact is NoContactPolicy.SKIP:
            return ContactChoice(skip=f"no contact matches {number} (contacts.no_contact = skip)")
        return ContactChoice()
    if len(found) == 1:
        return ContactChoice(contacts=(found[0],))
    policy = settings.several_contacts
    if policy is SeveralContactsPolicy.ALL:
        return ContactChoice(contacts=tuple(found))
    if policy is SeveralContactsPolicy.FIRST:
        return ContactChoice(contacts=(found[0],))
    if policy is SeveralContactsPolicy.MOST_RECENTLY_UPDATED:
        # max() keeps the first of equals: the CRM's order breaks ties.
        return ContactChoice(contacts=(max(found, key=lambda c: _stamp(c.updated, newest=True)),))
    if policy is SeveralContactsPolicy.OLDEST:
        return ContactChoice(contacts=(min(found, key=lambda c: _stamp(c.created, newest=False)),))
    if policy is SeveralContactsPolicy.SKIP:
        return ContactChoice(
            skip=f"{len(found)} contacts match {number} (contacts.several_contacts = skip)"
        )
    return ContactChoice()


def _stamp(moment: datetime | None, *, newest: bool) -> float:
    """A sortable time; a missing one sorts last for either policy."""
    if moment is None:
        return float("-inf") if newest else float("inf")
    return moment.timestamp()


def skipped(choice: ContactChoice) -> Skipped | None:
    """The writer's answer for a call the policy skips (settled as skipped, never retried)."""
    return Skipped(choice.skip) if choice.skip else None


ContactLookup = Callable[[str], Awaitable[tuple[Contact, ...] | LookupFailure]]


class ContactCache:
    """E.164 number -> matching contacts, bounded in size and age; concurrent asks for one
    number share one search (``crm/singleflight.py``)."""

    def __init__(
        self, settings: ContactSettings, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._cache: SharedCache[str, tuple[Contact, ...] | LookupFailure] = SharedCache(
            settings.cache_size, settings.cache_ttl, succeeded, timer
        )

    @property
    def hits(self) -> int:
        return self._cache.hits

    @property
    def misses(self) -> int:
        return self._cache.misses

    @property
    def shared(self) -> int:
        """Asks answered by another call's search of the same number."""
        return self._cache.shared

    async def find(self, number: str, lookup: ContactLookup) -> tuple[Contact, ...] | LookupFailure:
        return await self._cache.get(number, lambda: lookup(number))

    def peek(self, number: str) -> tuple[Contact, ...] | None:
        """The cached contacts of ``number`` (no search)."""
        found = self._cache.peek(number)
        return found if isinstance(found, tuple) else None

    def put(self, number: str, contacts: tuple[Contact, ...]) -> None:
        """Remember contacts we created ourselves."""
        self._cache.put(number, contacts)

    def __len__(self) -> int:
        return len(self._cache)


def succeeded(answer: object) -> bool:
    """A lookup's answer worth caching: not a failure (``SharedCache``'s ``keep``)."""
    return not isinstance(answer, RetryLater | PermanentFailure)


UserList = Callable[[], Awaitable[Mapping[str, str] | LookupFailure]]


class OwnerResolver:
    """RingCentral user -> CRM owner id. ``list_users`` returns lower-cased e-mail -> user id."""

    def __init__(
        self,
        settings: ContactSettings,
        list_users: UserList,
        *,
        ttl: float | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._owners = {k.strip(): v.strip() for k, v in settings.owners.items()}
        self._by_email = settings.owner_by_email
        self._list_users = list_users
        # One read of the user list per TTL, however many calls of a batch ask at once.
        self._users: SharedCache[str, Mapping[str, str] | LookupFailure] = SharedCache(
            1, ttl if ttl is not None else settings.cache_ttl, succeeded, timer
        )
        self.user_list_fetches = 0

    async def _user_ids(self) -> Mapping[str, str] | LookupFailure:
        return await self._users.get("users", self._fetch_users)

    async def _fetch_users(self) -> Mapping[str, str] | LookupFailure:
        fetched = await self._list_users()
        if isinstance(fetched, RetryLater | PermanentFailure):
            return fetched
        self.user_list_fetches += 1
        return {email.lower(): uid for email, uid in fetched.items()}

    async def _by_mail(self, email: str) -> str | LookupFailure | None:
        users = await self._user_ids()
        if isinstance(users, RetryLater | PermanentFailure):
            return users
        return users.get(email.strip().lower())

    async def resolve(self, call: CompletedCall) -> str | LookupFailure | None:
        """The CRM owner id, or None when nobody maps (the CRM then uses the API user)."""
        mapped = self._owners.get(call.extension_number or "")
        if mapped:
            return await self._by_mail(mapped) if "@" in mapped else mapped
        if self._by_email and call.user_email:
            return await self._by_mail(call.user_email)
        return None


CreateContact = Callable[[CompletedCall, str, str | None], Awaitable[Contact | LookupFailure]]
OwnerCheck = Callable[[str], bool]


@dataclass(frozen=True)
class Resolution:
    """Who a call log is associated with and who owns it."""

    contacts: tuple[Contact, ...] = ()
    owner_id: str | None = None
    created_contact: bool = False

    @property
    def primary(self) -> Contact | None:
        return self.contacts[0] if self.contacts else None


class Resolver:
    """Contacts and owner of a call, with the CRM's own lookups passed in.

    ``find`` searches contacts by E.164 number, ``create`` makes one (given the call, the
    number and the resolved owner id), ``list_users`` lists the CRM's users (e-mail -> id),
    and ``owner_valid`` says whether a mapped owner can be a user id of this CRM (a wrong
    entry in ``contacts.owners`` is then a permanent failure naming the fix).
    """

    def __init__(
        self,
        crm: str,
        settings: ContactSettings,
        *,
        find: ContactLookup,
        create: CreateContact,
        list_users: UserList,
        owner_valid: OwnerCheck | None = None,
    ) -> None:
        self._crm = crm
        self._settings = settings
        self._find = find
        self._create = create
        self._owner_valid = owner_valid
        self.cache = ContactCache(settings)
        self.owners = OwnerResolver(settings, list_users)
        # Contact creates under way, by number (no_contact = create).
        self.creates: SingleFlight[str, tuple[Contact, ...] | LookupFailure] = SingleFlight()

    async def _owner(self, call: CompletedCall) -> str | LookupFailure | None:
        owner = await self.owners.resolve(call)
        if isinstance(owner, str) and self._owner_valid and not self._owner_valid(owner):
            return PermanentFailure(
                f"{self._crm} owner {owner!r} for extension {call.extension_number} is not a"
                f" {self._crm} user id; fix contacts.owners in the writer's configuration"
            )
        return owner

    async def resolve(self, call: CompletedCall) -> Resolution | LookupFailure | Skipped:
        number = call.external_number
        found: tuple[Contact, ...] | LookupFailure = ()
        if number:
            found = await self.cache.find(number, self._find)
        if not isinstance(found, tuple):
            return found
        choice = choose(found, self._settings, number)
        skip = skipped(choice)
        if skip is not None:
            return skip
        owner = await self._owner(call)
        if isinstance(owner, RetryLater | PermanentFailure):
            return owner
        if not (choice.create and number):
            return Resolution(choice.contacts, owner)
        return await self._new_contact(call, number, owner)

    async def _new_contact(
        self, call: CompletedCall, number: str, owner: str | None
    ) -> Resolution | LookupFailure | Skipped:
        """Create the contact ``number`` lacks, once: calls of a batch with the same new
        number wait for the first one's create and are associated with its contact."""
        made_here = False

        async def create() -> tuple[Contact, ...] | LookupFailure:
            nonlocal made_here
            # Another call made it while this one resolved its owner (no flight left).
            known = self.cache.peek(number)
            if known:
                return known
            made = await self._create(call, number, owner)
            if not isinstance(made, Contact):
                return made
            made_here = True
            self.cache.put(number, (made,))
            return (made,)

        contacts = await self.creates.run(number, create)
        if not isinstance(contacts, tuple):
            return contacts
        if made_here:
            return Resolution(contacts, owner, created_contact=True)
        # As a later call finding the new contact in the cache would have decided.
        choice = choose(contacts, self._settings, number)
        skip = skipped(choice)
        return skip if skip is not None else Resolution(choice.contacts, owner)
