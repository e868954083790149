"""Who each party of a session is: a user, a system extension (IVR, queue, ...) or external.

Where it sits: the leg derivation (:mod:`~sscl_daemon.calls.legs`) gives legs to users
only, so it first sorts every party of a finished session into a :class:`Kind`; the
warm-transfer lookup classifies the parties of the consult session the same way. The
directory decides when it knows the extension; otherwise the party's own history does
(the rules are in :func:`classify_parties`).
"""

from __future__ import annotations

import enum

from sscl_daemon.calls.codes import Reason
from sscl_daemon.calls.directory import Directory
from sscl_daemon.calls.numbers import looks_like_extension
from sscl_daemon.calls.state import SessionState
from sscl_daemon.calls.timeline import Timeline, rang


class Kind(enum.Enum):
    USER = "user"
    SYSTEM = "system"  # an RC extension that is not a person (IVR, queue, park, ...)
    EXTERNAL = "external"


# Bound once: an enum member read through its class costs about 50 ns in Python 3.11.
_USER, _SYSTEM, _EXTERNAL = Kind.USER, Kind.SYSTEM, Kind.EXTERNAL


def classify_parties(
    session: SessionState,
    directory: Directory | None,
    lines: list[Timeline | None] | None = None,
) -> list[Kind]:
    """User, system extension or external, per party.

    With a directory its ``type`` decides. Without one (or for an id it does
    not know), a party with an ``extensionId`` is taken as a user unless
    it is the queue that ``queueCall`` parties were delivered from (their
    ``to.extensionId``), left with reason ``CallerInputRedirect`` (IVR
    menus hand the caller on that way), or -- only without a directory --
    receiving the call, never rang, answered or held (an IVR menu or queue
    goes from ``Setup`` straight to ``Disconnected``; a phone always reports
    ``Proceeding`` or ``Answered``). An id that a directory (refreshed by
    then, see the tracker) does not know is a new extension, far more likely
    a user than a menu: a user's phone that rang unseen (only its ``Setup``
    arrived) must not vanish as an IVR. A party without ``extensionId`` is
    external unless its own number is a short extension number.
    """
    parties = session.parties
    queues = {p.to_ext_id for p in parties if p.queue_call and p.to_ext_id}
    kinds: list[Kind] = []
    for index, party in enumerate(parties):
        ext_id = party.extension_id
        if ext_id is None:
            kinds.append(_SYSTEM if looks_like_extension(party.own_number) else _EXTERNAL)
            continue
        known = directory.is_user(ext_id) if directory is not None else None
        if known is not None:
            kinds.append(_USER if known else _SYSTEM)
        elif (
            ext_id in queues
            or party.last_reason is Reason.CALLER_INPUT_REDIRECT
            or (
                directory is None
                and not party.outbound
                and lines is not None
                and not rang(lines[index])
            )
        ):
            kinds.append(_SYSTEM)
        else:
            kinds.append(_USER)
    return kinds
