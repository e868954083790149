"""From a finished telephony session to the call legs worth logging (pure): the rules.

Called by the tracker once a session is complete (or timed out). The party
histories are sorted by ``sequence`` first, so the result does not depend on
the order the notifications arrived in. This module decides *which* legs a
session gives; the per-session facts they read and the leg record itself are in
:mod:`~sscl_daemon.calls.leg_builder`, who is a user in
:mod:`~sscl_daemon.calls.parties`, the times in :mod:`~sscl_daemon.calls.timeline`.

Rules (RingCentral developer guide: "Telephony Session Notifications",
"Calculating Call Time Metrics", "Managing Warm Transfers", call-log "states";
research notes rc-protocol.md B3-B6):

* Parties are users, other RingCentral extensions (IVR menu, call queue,
  park location, ...) or external (no ``extensionId``). The external caller's
  party on an inbound call is ``Outbound`` and is ``Answered`` as soon as an
  IVR or queue picks up, so "a person answered" is read from the user's own
  party only.
* Each user who answered gets one leg: ``answered``, or ``transferred`` when
  they handed the call on (``Disconnected``/``BlindTransfer`` (also
  ``RccTransfer``/``DtmfTransfer``) or ``Gone``/``AttendedTransfer``).
* Nobody answered: the voicemail owner gets ``voicemail``; otherwise every
  user the call rang gets ``missed`` (or one ``missed`` for the configured
  owner extension); a call that never reached a user gets one ``abandoned``
  leg keyed ``<tsid>:-``. Queue members who rang while another agent
  answered get nothing; a user the call was blind-transferred to who did
  not answer gets ``missed``.
* Outbound calls by a user: ``answered`` when the remote party answered,
  else ``busy`` (``TargetBusy``), ``rejected`` (``Rejected``) or ``missed``.
* Warm transfer: the consult leg (a user's outbound call to another
  extension that ends ``Gone``/``AttendedTransfer`` once the customer is
  bridged in) is not logged; the transferring agent's leg in the customer's
  session is ``transferred`` with the consulted user as target (found through
  ``peerId``).
* Times: ``ring`` = start of the session to the user's answer (or end),
  ``queue`` = the part of it before the user's own party appeared, ``talk``
  = the user's ``Answered`` time after the answer while nobody held the call,
  ``hold`` = the time it was held: their own ``Hold`` (and ``Parked``) time
  and the time another user of the session (the other end of an RC -> RC
  call) held it -- RingCentral's definition, the same for every party. So
  ring + talk + hold <= total and talk never includes redirect or queue time.
"""

from __future__ import annotations

from sscl_daemon.calls.codes import Reason, StatusCode
from sscl_daemon.calls.leg_builder import LegBuilder, LegContext
from sscl_daemon.calls.model import CallResult, CompletedCall, Direction
from sscl_daemon.calls.numbers import looks_like_extension
from sscl_daemon.calls.parties import Kind
from sscl_daemon.calls.policy import MissedAttribution
from sscl_daemon.calls.state import SessionState, Step
from sscl_daemon.calls.timeline import Timeline

_BLIND = (Reason.BLIND_TRANSFER, Reason.RCC_TRANSFER, Reason.DTMF_TRANSFER)
# Bound once: an enum member read through its class costs about 50 ns in Python 3.11, a
# global a few, and these are read per party of every completed session.
_GONE, _DISCONNECTED = StatusCode.GONE, StatusCode.DISCONNECTED
_ATTENDED = Reason.ATTENDED_TRANSFER
_USER = Kind.USER
_INBOUND, _OUTBOUND, _INTERNAL = Direction.INBOUND, Direction.OUTBOUND, Direction.INTERNAL

# The outside party of a call: (number in E.164, name), both None for an internal call.
External = tuple[str | None, str | None]


def derive_calls(
    session: SessionState, ctx: LegContext, timed_out: bool = False
) -> list[CompletedCall]:
    """Every candidate call log of a finished session (the policy filters them later).

    In this order: the leg of the user who placed the call, a leg per other user the call
    reached (answered, voicemail, or missed when it is theirs), and, when no user took it,
    the one leg of the unanswered call. The common legs are written inline, the caller's
    and the unanswered call's by their own functions: this runs for every session.
    """
    if not session.steps:
        return []
    b = LegBuilder(session, ctx, timed_out)
    number, name, ext_originated = b.external_side()
    external = (number, name)
    parties = session.parties
    lines = b.lines
    # Inbound or outbound by who originated the external leg; internal without one.
    if number is None:
        direction = _INTERNAL
    else:
        direction = _INBOUND if ext_originated is not False else _OUTBOUND
        if ext_originated is None and b.order and b.kinds[b.order[0]] is _USER:
            direction = _OUTBOUND if parties[b.order[0]].outbound else _INBOUND
    # The user who placed the call (outbound, or the caller of an internal call).
    originator = b.order[0] if b.order else None
    caller = (
        originator
        if originator is not None
        and b.kinds[originator] is _USER
        and parties[originator].outbound is not False
        and direction is not _INBOUND
        else None
    )
    answered_users = [u for u in b.users if u != caller and lines[u].answered is not None]  # type: ignore[union-attr]
    calls: list[CompletedCall] = []
    if caller is not None:
        calls.append(_caller_leg(b, caller, direction, external, answered_users))

    voicemail_owner = _voicemail_owner(b)
    nobody = caller is None and not answered_users and voicemail_owner is None
    reached = [u for u in b.users if u != caller]
    for u in reached:
        line = lines[u]
        assert line is not None
        if line.answered is not None:
            if _is_consult_leg(b, u, number):
                continue
            calls.append(_user_leg(b, u, direction, external, line.answered, CallResult.ANSWERED))
        elif u == voicemail_owner:
            calls.append(_user_leg(b, u, direction, external, None, CallResult.VOICEMAIL))
        elif (nobody and ctx.missed_attribution is MissedAttribution.RANG) or _transfer_target(
            b, u
        ):
            calls.append(_user_leg(b, u, direction, external, None, CallResult.MISSED))
    if nobody:
        unanswered = _unanswered_leg(b, reached, direction, external)
        if unanswered is not None:
            calls.append(unanswered)
    return calls


def _caller_leg(
    b: LegBuilder, caller: int, direction: Direction, external: External, answered_users: list[int]
) -> CompletedCall:
    """The caller's leg: answered when the far end (the remote party, or a callee) answered."""
    lines = b.lines
    line = lines[caller]
    assert line is not None
    if direction is _OUTBOUND:
        remote = lines[b.external] if b.external is not None else None
        answer = remote.answered if remote is not None else line.answered
        result = CallResult.ANSWERED if answer is not None else _outcome(remote or line)
    else:
        answer = min((lines[u].answered for u in answered_users), default=None)  # type: ignore[union-attr,type-var]
        callee = next((lines[u] for u in b.users if u != caller), None)
        result = CallResult.ANSWERED if answer is not None else _outcome(callee or line)
    return _user_leg(b, caller, direction, external, answer, result)


def _unanswered_leg(
    b: LegBuilder, reached: list[int], direction: Direction, external: External
) -> CompletedCall | None:
    """No user took the call: the owner's ``missed``, or an inbound call's ``abandoned``."""
    ctx = b.ctx
    lines = b.lines
    extension_id = extension_number = None
    talk_line = None
    if reached and ctx.missed_attribution is MissedAttribution.OWNER:
        result = CallResult.MISSED
        extension_number = ctx.missed_owner_extension
        owner = ctx.directory.by_number(extension_number) if ctx.directory is not None else None
        extension_id = owner.id if owner is not None else None
        appeared, end = min(lines[u].appeared for u in reached), b.last  # type: ignore[union-attr]
    elif reached or direction is not _INBOUND:
        return None
    else:
        result = CallResult.VOICEMAIL if _voicemail_reached(b) else CallResult.ABANDONED
        ext_line = lines[b.external] if b.external is not None else None
        appeared = end = ext_line.end if ext_line is not None else b.last
        talk_line = ext_line if b.timed_out else None
    return b.make(
        index=None,
        result=result,
        direction=direction,
        external=external,
        answer=None,
        appeared=appeared,
        end=end,
        talk_line=talk_line,
        extension_id=extension_id,
        extension_number=extension_number,
    )


def _outcome(line: Timeline | None) -> CallResult:
    """Why an outbound call was not answered, read from a party's final reason."""
    if line is None or line.terminal is None:
        return CallResult.MISSED
    reason = line.terminal.reason
    if reason is Reason.TARGET_BUSY:
        return CallResult.BUSY
    if reason is Reason.REJECTED:
        return CallResult.REJECTED
    return CallResult.MISSED


def _user_leg(
    b: LegBuilder,
    index: int,
    direction: Direction,
    external: External,
    answer: int | None,
    result: CallResult,
) -> CompletedCall:
    """The leg of one user's party; an answered leg that handed the call on is a transfer."""
    line = b.lines[index]
    assert line is not None
    transferred_to = None
    terminal = line.terminal
    if result is CallResult.ANSWERED and terminal is not None and _is_transfer(terminal):
        result = CallResult.TRANSFERRED
        transferred_to = b.transfer_target(index, terminal)
    return b.make(
        index=index,
        result=result,
        direction=direction,
        external=external,
        answer=answer,
        appeared=line.appeared,
        end=line.end,
        talk_line=line,
        internal_number=_internal_number(b, index, direction),
        transferred_to=transferred_to,
    )


def _is_transfer(step: Step) -> bool:
    if step.code is _DISCONNECTED:
        return step.reason in _BLIND
    return step.code is _GONE and step.reason is _ATTENDED


def _transfer_target(b: LegBuilder, index: int) -> bool:
    """The user rang because another user blind-transferred the call to them."""
    first_seq = b.session.parties[index].first_seq
    for other in b.users:
        line = b.lines[other]
        terminal = line.terminal if line is not None and other != index else None
        if terminal is not None and _is_transfer(terminal) and terminal.seq < first_seq:
            return True
    return False


def _is_consult_leg(b: LegBuilder, index: int, external_number: str | None) -> bool:
    """A warm-transfer consult call: user -> extension, bridged away to the customer."""
    party = b.session.parties[index]
    line = b.lines[index]
    assert line is not None
    terminal = line.terminal
    if external_number is None or terminal is None or not party.outbound:
        return False
    if terminal.code is not _GONE or terminal.reason is not _ATTENDED:
        return False
    return party.counterpart_ext_id is not None or looks_like_extension(party.counterpart_number)


def _internal_number(b: LegBuilder, index: int, direction: Direction) -> str | None:
    """The other extension of an internal call: its party's number, else what this party
    shows of it (the directory entry of its ``extensionId``, or its short number)."""
    if direction is not _INTERNAL:
        return None
    party = b.session.parties[index]
    for other in b.order:
        if other != index and b.kinds[other] is _USER:
            number = b.ext_number(other)
            if number is not None:
                return number
            break
    directory = b.ctx.directory
    ext = directory.by_id(party.counterpart_ext_id) if directory is not None else None
    if ext is not None and ext.extension_number:
        return ext.extension_number
    number = party.counterpart_ext_number or party.counterpart_number
    return number if looks_like_extension(number) else None


def _voicemail_reached(b: LegBuilder) -> bool:
    return any(line is not None and line.voicemail is not None for line in b.lines)


def _voicemail_owner(b: LegBuilder) -> int | None:
    """The user party whose mailbox took the call, if voicemail was reached."""
    parties = b.session.parties
    for i in b.order:
        line = b.lines[i]
        if line is None or line.voicemail is None:
            continue
        if b.kinds[i] is _USER:
            return i
        target = parties[i].to_ext_id
        for u in b.users:
            if parties[u].extension_id == target:
                return u
        if b.users:
            return max(b.users, key=lambda u: parties[u].first_seq)
    return None
