"""Scenario engine: one simulated call as RingCentral would report it, plus its ground truth.

Sits between `org.Organisation` (who can call whom) and the simulator's engine/gateway, which
wrap each `SimEvent.body` into a notification envelope and play it at `start + offset_ms`, and
later serve `call_log_records` from the call-log API. `expected` is the ground truth the
end-to-end and soak tests compare the daemon's call logs with.

Faithfulness notes (research/rc-protocol.md, sources in its section B7):

* Party fields, key order, `p-<session>-<n>` ids, `sequence` from 2, `eventTime` advancing
  per event, one party per body, the PSTN side without `extensionId` (and so on the account
  event path), `from.name` (CNAM) appearing on the caller's party only at the end, short
  extension numbers as `phoneNumber` on RC-to-RC legs, `mobilePickupData` on a user's
  Proceeding/Answered, the calling party `Answered` as soon as the RC side is reached (the
  IVR, a queue or the callee's side; before any phone rings, also on a call nobody answers):
  the 2020 account-level captures in dibyenduroy/csn-data (PSTN->IVR->user, RC->RC, RC->PSTN).
* Queue deliveries (`queueCall`, `uiCallInfo`, `to` = the queue, `from.name` = "<queue> -
  <caller id>", members starting at Proceeding): tylerlong/rc-call-queue-or-direct (2023),
  which also shows the modern `s-<13 hex>z<11 hex>z<7 hex>0000` session id format.
* Blind transfer (Disconnected/BlindTransfer, the call goes on in the same session with a new
  party): ringcentral-api-docs `docs/voice/call-log/states.md`. A plain hang-up carries no
  reason in both styles (same doc).
* Warm transfer (two sessions, Gone/AttendedTransfer with `peerId`): `docs/voice/warm-transfer.md`
  and ringcentral-call-js `Session.ts`.
* INVENTED (nothing public shows it): the account-level view of a call queue -- a queue
  party (`Department` extension) from entry to hand-off, members ringing in parallel or in
  turn, the losers' reasons (`AgentAnswered`, `Timeout`, `Cancelled`), `missedCall` on the
  members of an unanswered queue call; the park flow (Parked on the user's and the caller's
  party, Disconnected/`ParkLocation` for the parking user, the picker-up as a new party in the
  same session with `to` = the park location; status table in
  `docs/voice/telephony-session-notifications.md`); in warm transfer, the customer's party
  re-appearing in the consult session and agent 2's party re-reported with the customer as
  `from`.
* "Modern" calls carry reasons on hand-offs and non-answers (CallerInputRedirect, Cancelled,
  Voicemail, AgentAnswered, Timeout, CallRedirected, ParkLocation); "2020-style" calls have
  no reason on any Disconnected, as in the captures -- except where the reason is the only
  evidence of the outcome (BlindTransfer per the docs, TargetBusy), which every call carries.
* Call-log records follow section C3 (Detailed view, `legs[]` with `legType`, `extension.id`
  as a number); the leg layout per flow is modelled on `docs/voice/call-log/details.md`.
  `startTime` has milliseconds (as current records do); `duration`/`durationMs` of a record
  span its session's first to last eventTime, those of a leg the first to last eventTime of
  the party it describes -- ring time included, as in the documented example, whose `Accept`
  leg starts with the call and lasts as long: a record never says when a user answered nor
  how long they held. The called side of an outbound call carries `location`, no CNAM name.
  A warm transfer's legs name the other session (`transferTarget` on the transferring
  user's leg, `transferee` on the target's; API reference `CallLogRecordLegInfo`). A queue
  member's leg names the caller "<queue> - <caller id>" as the queue delivery does.

Ground truth (`expected`, the default policy of issue 5): one log per user per session; users
who answered get `answered` (`transferred` when they handed the call on by BlindTransfer or
AttendedTransfer); if nobody answered, `voicemail` for the user whose voicemail took it, else
`missed` for every user it rang (`busy` for an outbound call refused with TargetBusy), else
one `abandoned` log keyed `<tsid>:-`; queue members who did not answer while another did, a
warm-transfer consult leg and internal calls get no log. A blind-transfer target always
answers: whether one who lets it ring would get `missed` is left open by the rules.

Everything for a call is built once in `CallFactory.make` as plain dicts, lists and strings.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sscl_daemon.simulator.org import CallQueue, ExternalParty, Organisation, OrgExtension


class CallKind(enum.StrEnum):
    OUTBOUND_ANSWERED = "outbound_answered"
    OUTBOUND_NO_ANSWER = "outbound_no_answer"
    OUTBOUND_BUSY = "outbound_busy"
    INBOUND_ANSWERED = "inbound_answered"
    INBOUND_MISSED = "inbound_missed"
    INBOUND_VOICEMAIL = "inbound_voicemail"
    IVR_QUEUE_ANSWERED = "ivr_queue_answered"
    IVR_ABANDONED = "ivr_abandoned"
    QUEUE_MISSED = "queue_missed"
    BLIND_TRANSFER = "blind_transfer"
    WARM_TRANSFER = "warm_transfer"
    HOLD_RESUME = "hold_resume"
    PARK_PICKUP = "park_pickup"
    RECORDED = "recorded"
    INTERNAL = "internal"


# Relative frequency of each kind in the random mix (a small sales/support organisation).
MIX: dict[CallKind, int] = {
    CallKind.OUTBOUND_ANSWERED: 18,
    CallKind.OUTBOUND_NO_ANSWER: 7,
    CallKind.OUTBOUND_BUSY: 2,
    CallKind.INBOUND_ANSWERED: 14,
    CallKind.INBOUND_MISSED: 6,
    CallKind.INBOUND_VOICEMAIL: 6,
    CallKind.IVR_QUEUE_ANSWERED: 15,
    CallKind.IVR_ABANDONED: 4,
    CallKind.QUEUE_MISSED: 4,
    CallKind.BLIND_TRANSFER: 4,
    CallKind.WARM_TRANSFER: 3,
    CallKind.HOLD_RESUME: 5,
    CallKind.PARK_PICKUP: 2,
    CallKind.RECORDED: 5,
    CallKind.INTERNAL: 5,
}

STATUS_CODES = frozenset(
    {
        "Setup",
        "Proceeding",
        "Answered",
        "Disconnected",
        "Gone",
        "Parked",
        "Hold",
        "VoiceMail",
        "Voicemail",
        "FaxReceive",
        "VoiceMailScreening",
        "VMScreening",
        "Tds",
    }
)


@dataclass(frozen=True, slots=True)
class SimEvent:
    offset_ms: int  # when to emit, from the call's start
    extension_id: str | None  # the party's extension (None = external party): the event path
    body: dict[str, object]  # the notification `body`, one party


@dataclass(frozen=True, slots=True)
class ExpectedLog:
    key: str  # "<telephonySessionId>:<extensionId>" or "<telephonySessionId>:-"
    extension_id: str | None
    result: str  # a CallResult value
    direction: str  # a Direction value
    external_number: str | None  # E.164
    telephony_session_id: str = ""
    recording_ids: tuple[str, ...] = ()
    # This user's own time, from the eventTimes of their party: answered -> end, less hold.
    talk_ms: int = 0
    hold_ms: int = 0


@dataclass(frozen=True, slots=True)
class SimCall:
    kind: CallKind
    telephony_session_ids: tuple[str, ...]
    start: datetime  # UTC
    events: tuple[SimEvent, ...]  # in emission order
    call_log_records: tuple[dict[str, object], ...]
    expected: tuple[ExpectedLog, ...]
    modern: bool = True  # reasons on hand-offs (False: 2020-style, no reason on Disconnected)

    @property
    def end_offset_ms(self) -> int:
        return self.events[-1].offset_ms if self.events else 0


# Sub-objects that never change are shared between bodies: consumers treat bodies as read-only.
_ORIGIN_CALL: dict[str, object] = {"type": "Call"}
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _iso_ms(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms // 1000)) + (
        f".{epoch_ms % 1000:03d}Z"
    )


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(4 * digits):0{digits}x}"


class _Party:
    """One party of a session while the call is being written: its fields and its timeline."""

    __slots__ = (
        "answered_t",
        "ext_id",
        "first_t",
        "head",
        "hold_ms",
        "hold_since",
        "id",
        "last_t",
        "pickup",
        "recordings",
        "tail",
    )

    def __init__(self, head: dict[str, object], tail: dict[str, object], ext_id: str | None):
        self.head = head
        self.tail = tail
        self.ext_id = ext_id
        self.id = str(head["id"])
        self.first_t = -1
        self.last_t = -1
        self.answered_t = -1
        self.hold_since = -1
        self.hold_ms = 0
        self.recordings: list[dict[str, object]] | None = None
        self.pickup: dict[str, object] | None = None

    def set_to(self, value: dict[str, object]) -> None:
        self.head["to"] = value

    def set_from(self, value: dict[str, object]) -> None:
        self.head["from"] = value

    @property
    def talk_ms(self) -> int:
        if self.answered_t < 0:
            return 0
        return self.last_t - self.answered_t - self.hold_ms


class _Session:
    """One telephony session: hands out party ids and sequences, writes the event bodies."""

    def __init__(self, ctx: _Ctx) -> None:
        rng = ctx.rng
        if ctx.modern:
            core = f"{_hex(rng, 13)}z{_hex(rng, 11)}z{_hex(rng, 7)}0000"
        else:
            core = _hex(rng, 32)
        self.core = core
        self.tsid = f"s-{core}"
        self.session_id = f"{rng.randrange(10**9, 10**10)}{ctx.org.shard_suffix}"
        self.server_id = f"10.13.{rng.randint(20, 23)}.{rng.randint(2, 250)}.TAM"
        self.ctx = ctx
        self.seq = 1
        self.count = 0
        self.first_t = -1
        self.last_t = -1
        self.lag = rng.randint(40, 120)  # notification sent this long after eventTime
        self.parties: list[_Party] = []

    def party(
        self,
        ext: OrgExtension | None,
        direction: str,
        frm: dict[str, object],
        to: dict[str, object],
        **tail: object,
    ) -> _Party:
        self.count += 1
        head: dict[str, object] = {"accountId": self.ctx.org.account_id}
        if ext is not None:
            head["extensionId"] = ext.id
        head["id"] = f"p-{self.core}-{self.count}"
        head["direction"] = direction
        head["to"] = to
        head["from"] = frm
        queue_call = tail.pop("queueCall", None)
        ui = tail.pop("uiCallInfo", None)
        full_tail: dict[str, object] = {}
        if queue_call is not None:
            full_tail["queueCall"] = queue_call
        full_tail.update({"park": {}, "missedCall": False, "standAlone": False, "muted": False})
        if ui is not None:
            full_tail["uiCallInfo"] = ui
        party = _Party(head, full_tail, None if ext is None else ext.id)
        self.parties.append(party)
        return party

    def emit(
        self,
        t: int,
        party: _Party,
        code: str,
        reason: str | None = None,
        **status_extra: object,
    ) -> None:
        """Report `party` in state `code` at time `t` (ms from the call's start)."""
        ctx = self.ctx
        t = max(t, self.last_t)
        self.seq += 1
        if self.first_t < 0:
            self.first_t = t
        self.last_t = t
        if party.first_t < 0:
            party.first_t = t
        party.last_t = t
        if code == "Answered":
            if party.answered_t < 0:
                party.answered_t = t
            if party.hold_since >= 0:
                party.hold_ms += t - party.hold_since
                party.hold_since = -1
        elif code in ("Hold", "Parked"):
            party.hold_since = t
        elif code in ("Disconnected", "Gone") and party.hold_since >= 0:
            party.hold_ms += t - party.hold_since
            party.hold_since = -1
        status: dict[str, object] = {"code": code}
        if reason is not None:
            status["reason"] = reason
        status.update(status_extra)
        status["rcc"] = False
        body_party: dict[str, object] = dict(party.head)
        body_party["status"] = status
        body_party.update(party.tail)
        if party.recordings is not None:
            body_party["recordings"] = party.recordings
        body: dict[str, object] = {
            "sequence": self.seq,
            "sessionId": self.session_id,
            "telephonySessionId": self.tsid,
            "serverId": self.server_id,
            "eventTime": _iso_ms(ctx.start_ms + t),
            "parties": [body_party],
            "origin": _ORIGIN_CALL,
        }
        ctx.raw.append((t + self.lag, len(ctx.raw), SimEvent(t + self.lag, party.ext_id, body)))


@dataclass
class _Ctx:
    """Everything one `make` call accumulates."""

    org: Organisation
    rng: random.Random
    start_ms: int
    modern: bool
    scale: float
    voicemail_code: str
    raw: list[tuple[int, int, SimEvent]] = field(default_factory=list)
    sessions: list[_Session] = field(default_factory=list)
    expected: list[ExpectedLog] = field(default_factory=list)
    records: list[dict[str, object]] = field(default_factory=list)

    def gap(self, lo_ms: int, hi_ms: int) -> int:
        return int(self.rng.randint(lo_ms, hi_ms) * self.scale)

    def session(self) -> _Session:
        session = _Session(self)
        self.sessions.append(session)
        return session

    def reason(self, value: str) -> str | None:
        return value if self.modern else None

    def expect(
        self,
        session: _Session,
        user: _Party | None,
        result: str,
        direction: str,
        external: str | None,
        recording_ids: tuple[str, ...] = (),
    ) -> None:
        ext_id = None if user is None else user.ext_id
        self.expected.append(
            ExpectedLog(
                key=f"{session.tsid}:{ext_id or '-'}",
                extension_id=ext_id,
                result=result,
                direction=direction,
                external_number=external,
                telephony_session_id=session.tsid,
                recording_ids=recording_ids,
                talk_ms=0 if user is None else user.talk_ms,
                hold_ms=0 if user is None else user.hold_ms,
            )
        )


def _ext_ref(ext: OrgExtension, number: str | None = None) -> dict[str, object]:
    """`to`/`from` of an RC party: the number shown, its name and extension id."""
    return {"phoneNumber": number or ext.extension_number, "name": ext.name, "extensionId": ext.id}


def _device_ref(ext: OrgExtension, number: str | None = None) -> dict[str, object]:
    """`from` of a user's own originating party (their DID and the device they dialled from)."""
    return {"phoneNumber": number or ext.did, "extensionId": ext.id, "deviceId": ext.device_id}


def _pstn(caller: ExternalParty, with_name: bool) -> dict[str, object]:
    if with_name and caller.cnam:
        return {"phoneNumber": caller.phone_number, "name": caller.cnam}
    return {"phoneNumber": caller.phone_number}


def _pickup_data(ctx: _Ctx, party: _Party) -> dict[str, object]:
    """`status.mobilePickupData` of a user's ringing party, the same on each of its events."""
    if party.pickup is None:
        rng = ctx.rng
        party.pickup = {
            "ccMailboxes": [party.ext_id],
            "to": f"#{rng.randrange(100_000, 2_000_000)}@sip.ringcentral.com:5060",
            "sid": str(rng.randrange(10**13, 10**14)),
            "srvLvl": "-149699523",
            "srvLvlExt": "406",
        }
    return party.pickup


class CallFactory:
    """Writes `SimCall`s for an organisation; deterministic from the seed.

    `time_scale` stretches or shrinks every gap between events (tests use ~0.01 so calls last
    a second or so); `voicemail_code` is the status spelling (G-B1: spec `VoiceMail`, docs
    and SDKs `Voicemail`).
    """

    def __init__(
        self,
        org: Organisation,
        seed: int,
        *,
        time_scale: float = 1.0,
        modern_share: float = 0.6,
        voicemail_code: str = "VoiceMail",
    ) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale={time_scale}: must be > 0")
        if not 0.0 <= modern_share <= 1.0:
            raise ValueError(f"modern_share={modern_share}: must be within 0..1")
        if voicemail_code not in STATUS_CODES:
            raise ValueError(f"voicemail_code={voicemail_code!r}: use 'VoiceMail' or 'Voicemail'")
        self.org = org
        self.seed = seed
        self.time_scale = time_scale
        self.modern_share = modern_share
        self.voicemail_code = voicemail_code
        self._made = 0
        self._kinds = tuple(MIX)
        self._weights = tuple(MIX.values())

    def make(
        self, start: datetime, kind: CallKind | None = None, *, salt: int | None = None
    ) -> SimCall:
        """One call starting at `start` (UTC). `kind=None` picks from the realistic mix.

        Without `salt` the n-th call of this factory is the same for the same seed; with it
        the call depends only on (seed, start, salt) -- `Traffic` uses that so any split of a
        time range into windows yields the same calls.
        """
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")
        start_ms = int(start.timestamp() * 1000)
        if salt is None:
            salt = -1 - self._made
            self._made += 1
        rng = random.Random(f"{self.seed}:{start_ms}:{salt}")
        if kind is None:
            kind = rng.choices(self._kinds, self._weights)[0]
        ctx = _Ctx(
            org=self.org,
            rng=rng,
            start_ms=start_ms,
            modern=rng.random() < self.modern_share,
            scale=self.time_scale,
            voicemail_code=self.voicemail_code,
        )
        _FLOWS[kind](ctx)
        ctx.raw.sort(key=lambda item: (item[0], item[1]))
        return SimCall(
            kind=kind,
            telephony_session_ids=tuple(s.tsid for s in ctx.sessions),
            start=datetime.fromtimestamp(start_ms / 1000, UTC),
            events=tuple(item[2] for item in ctx.raw),
            call_log_records=tuple(ctx.records),
            expected=tuple(ctx.expected),
            modern=ctx.modern,
        )


# -- call-log records ----------------------------------------------------------------------


def _leg(
    ctx: _Ctx,
    session: _Session,
    party: _Party,
    *,
    leg_type: str,
    direction: str,
    action: str,
    result: str,
    frm: dict[str, object],
    to: dict[str, object],
    ext: OrgExtension | None,
    transport: str = "PSTN",
    recording: dict[str, object] | None = None,
    span: tuple[int, int] | None = None,
    extra: dict[str, object] | None = None,
) -> dict[str, object]:
    first, last = span or (party.first_t, party.last_t)
    leg: dict[str, object] = {
        "startTime": _iso_ms(ctx.start_ms + first),
        "duration": round((last - first) / 1000),
        "durationMs": last - first,
        "type": "Voice",
        "direction": direction,
        "action": action,
        "result": result,
        "to": to,
        "from": frm,
        "telephonySessionId": session.tsid,
        "transport": transport,
        "legType": leg_type,
    }
    if recording is not None:
        leg["recording"] = recording
    if extra:
        leg.update(extra)
    if ext is not None:
        leg["extension"] = {"uri": ctx.org.extension_uri(ext.id), "id": int(ext.id)}
    return leg


def _record(
    ctx: _Ctx,
    session: _Session,
    *,
    direction: str,
    action: str,
    result: str,
    frm: dict[str, object],
    to: dict[str, object],
    legs: list[dict[str, object]],
    transport: str = "PSTN",
    recording: dict[str, object] | None = None,
    message_of: OrgExtension | None = None,
) -> None:
    org = ctx.org
    record_id = "".join(ctx.rng.choices(_ID_ALPHABET, k=15))
    first, last = session.first_t, session.last_t
    base = f"{org.platform_url}/restapi/v1.0/account/{org.account_id}"
    record: dict[str, object] = {
        "uri": f"{base}/call-log/{record_id}?view=Detailed",
        "id": record_id,
        "sessionId": session.session_id,
        "telephonySessionId": session.tsid,
        "startTime": _iso_ms(ctx.start_ms + first),
        "duration": round((last - first) / 1000),
        "durationMs": last - first,
        "type": "Voice",
        "internalType": "Local",
        "direction": direction,
        "action": action,
        "result": result,
        "to": to,
        "from": frm,
    }
    if recording is not None:
        record["recording"] = recording
    if message_of is not None:
        message_id = str(ctx.rng.randrange(10**9, 10**10))
        record["message"] = {
            "id": message_id,
            "type": "VoiceMail",
            "uri": f"{base}/extension/{message_of.id}/message-store/{message_id}",
        }
    record["transport"] = transport
    record["lastModifiedTime"] = _iso_ms(ctx.start_ms + last + 2000 + ctx.rng.randint(0, 900))
    if legs:
        legs[0]["master"] = True
    record["legs"] = legs
    ctx.records.append(record)


def _recording(ctx: _Ctx, automatic: bool) -> dict[str, object]:
    org = ctx.org
    rec_id = str(ctx.rng.randrange(10**9, 10**10))
    path = f"/restapi/v1.0/account/{org.account_id}/recording/{rec_id}"
    return {
        "uri": f"{org.platform_url}{path}",
        "id": rec_id,
        "type": "Automatic" if automatic else "OnDemand",
        "contentUri": f"https://media.ringcentral.com{path}/content",
    }


def _rc_number(ext: OrgExtension, extra: dict[str, object] | None = None) -> dict[str, object]:
    """`to`/`from` of a call-log record or leg for an RC extension."""
    ref: dict[str, object] = {"phoneNumber": ext.did, "extensionNumber": ext.extension_number}
    if ext.did is None:
        del ref["phoneNumber"]
    ref["extensionId"] = ext.id
    ref["name"] = ext.name
    if extra:
        ref.update(extra)
    return ref


def _pstn_number(caller: ExternalParty, with_name: bool = True) -> dict[str, object]:
    """`from`/`to` of an outside number; the called side of an outbound call has no CNAM
    (docs call-log/details.md: `phoneNumber` and `location` only)."""
    ref: dict[str, object] = {"phoneNumber": caller.phone_number}
    if with_name and caller.cnam:
        ref["name"] = caller.cnam
    ref["location"] = caller.location
    return ref


def _main_number(ctx: _Ctx) -> dict[str, object]:
    ivr = ctx.org.ivr
    return {
        "phoneNumber": ctx.org.main_number,
        "extensionNumber": ivr.extension_number,
        "name": ivr.name,
    }


# -- flows -----------------------------------------------------------------------------------


def _pick_users(ctx: _Ctx, n: int) -> list[OrgExtension]:
    return ctx.rng.sample(ctx.org.users, n)


def _hangup_pair(ctx: _Ctx, s: _Session, t: int, first: _Party, second: _Party) -> int:
    """Both parties of a conversation hang up: one clean Disconnected each, no reason."""
    if ctx.rng.random() < 0.5:
        first, second = second, first
    s.emit(t, first, "Disconnected")
    t += ctx.gap(5, 60)
    s.emit(t, second, "Disconnected")
    return t


def _talk_with_holds(ctx: _Ctx, s: _Session, t: int, user: _Party, cycles: int) -> int:
    """Conversation time, with `cycles` Hold/Answered (unhold) pairs on the user's party."""
    for _ in range(cycles):
        t += ctx.gap(5_000, 40_000)
        s.emit(t, user, "Hold")
        t += ctx.gap(3_000, 45_000)
        s.emit(t, user, "Answered")
    return t + ctx.gap(8_000, 180_000)


def _outbound(ctx: _Ctx, outcome: str, *, holds: int = 0, record: bool = False) -> None:
    """A user dials a PSTN number (capture: RingCentral-PSTN.txt)."""
    user = _pick_users(ctx, 1)[0]
    callee = ctx.rng.choice(ctx.org.callers)
    s = ctx.session()
    remote_to: dict[str, object] = {"phoneNumber": callee.phone_number}
    p1 = s.party(user, "Outbound", _device_ref(user), remote_to)
    p2 = s.party(
        None,
        "Inbound",
        {"phoneNumber": user.did, "name": user.name, "extensionId": user.id},
        remote_to,
    )
    t = 0
    s.emit(t, p1, "Setup")
    t += ctx.gap(20, 80)
    s.emit(t, p2, "Proceeding")
    if outcome == "busy":
        t += ctx.gap(800, 3_000)
        s.emit(t, p2, "Disconnected", "TargetBusy")
        t += ctx.gap(10, 60)
        s.emit(t, p1, "Disconnected", "TargetBusy")
        ctx.expect(s, p1, "busy", "outbound", callee.phone_number)
        result = "Busy"
    else:
        t += ctx.gap(1_000, 4_000)
        s.emit(t, p1, "Proceeding")
        if outcome == "no_answer":
            t += ctx.gap(15_000, 40_000)
            s.emit(t, p1, "Disconnected")
            t += ctx.gap(10, 60)
            s.emit(t, p2, "Disconnected", ctx.reason("Cancelled"))
            ctx.expect(s, p1, "missed", "outbound", callee.phone_number)
            result = "No Answer"
        else:
            t += ctx.gap(3_000, 20_000)
            s.emit(t, p2, "Answered")
            t += ctx.gap(10, 60)
            rec: dict[str, object] | None = None
            if record:
                rec = _recording(ctx, automatic=True)
                p1.recordings = [{"id": rec["id"], "active": True}]
            s.emit(t, p1, "Answered")
            t = _talk_with_holds(ctx, s, t, p1, holds)
            if p1.recordings is not None:
                p1.recordings = [{"id": p1.recordings[0]["id"], "active": False}]
            _hangup_pair(ctx, s, t, p1, p2)
            ids = (str(rec["id"]),) if rec is not None else ()
            ctx.expect(s, p1, "answered", "outbound", callee.phone_number, ids)
            result = "Call connected"
            _outbound_record(ctx, s, user, callee, p1, result, rec)
            return
    _outbound_record(ctx, s, user, callee, p1, result, None)


def _outbound_record(
    ctx: _Ctx,
    s: _Session,
    user: OrgExtension,
    callee: ExternalParty,
    p1: _Party,
    result: str,
    rec: dict[str, object] | None,
) -> None:
    frm = _rc_number(user)
    to = _pstn_number(callee, with_name=False)
    leg = _leg(
        ctx, s, p1, leg_type="SipToPstnMetered", direction="Outbound", action="VoIP Call",
        result=result, frm=frm, to=to, ext=user, transport="VoIP", recording=rec,
    )  # fmt: skip
    _record(
        ctx, s, direction="Outbound", action="VoIP Call", result=result, frm=frm, to=to,
        legs=[leg], transport="VoIP", recording=rec,
    )  # fmt: skip


def _outbound_answered(ctx: _Ctx) -> None:
    _outbound(ctx, "answered")


def _outbound_no_answer(ctx: _Ctx) -> None:
    _outbound(ctx, "no_answer")


def _outbound_busy(ctx: _Ctx) -> None:
    _outbound(ctx, "busy")


def _direct_inbound_start(
    ctx: _Ctx, s: _Session, user: OrgExtension, caller: ExternalParty
) -> tuple[_Party, _Party, int]:
    """A PSTN caller dials a user's direct number; the user's phone rings.

    The caller's party is `Answered` as soon as RingCentral reaches the user's side, before
    the phone rings and whether or not anybody picks up (as the caller's party of the
    captured RC -> RC and PSTN -> IVR calls: "Answered" means the RC destination answered).
    """
    p1 = s.party(None, "Outbound", _pstn(caller, False), {"phoneNumber": user.did})
    p2 = s.party(user, "Inbound", _pstn(caller, True), _ext_ref(user, user.did))
    t = 0
    s.emit(t, p1, "Setup")
    t += ctx.gap(15, 60)
    s.emit(t, p2, "Setup")
    t += ctx.gap(10, 60)
    p1.set_to(_ext_ref(user, user.did))
    s.emit(t, p1, "Answered")
    t += ctx.gap(15, 60)
    s.emit(t, p2, "Proceeding", mobilePickupData=_pickup_data(ctx, p2))
    return p1, p2, t


def _answer_direct(
    ctx: _Ctx, s: _Session, user: OrgExtension, p1: _Party, p2: _Party, t: int
) -> int:
    t += ctx.gap(3_000, 18_000)
    # the answering device shows up in the user's `to` (docs: call-log/states.md example)
    p2.set_to({**_ext_ref(user, user.did), "deviceId": user.device_id})
    s.emit(t, p2, "Answered", mobilePickupData=_pickup_data(ctx, p2))
    return t


def _rc_caller_connected(p1: _Party, caller: OrgExtension, callee: OrgExtension) -> None:
    """RC -> RC: once routed, the caller's party names both ends (RingCentral-RingCentral.txt)."""
    p1.set_to(_ext_ref(callee))
    p1.set_from({**_device_ref(caller), "name": caller.name})


def _answered_direct(
    ctx: _Ctx, s: _Session, user: OrgExtension, caller: ExternalParty
) -> tuple[_Party, _Party, int]:
    p1, p2, t = _direct_inbound_start(ctx, s, user, caller)
    return p1, p2, _answer_direct(ctx, s, user, p1, p2, t)


def _caller_done(p1: _Party, caller: ExternalParty) -> None:
    """The carrier's CNAM reaches the caller's own party only late (capture: seq 12)."""
    p1.set_from(_pstn(caller, True))


def _inbound_answered(ctx: _Ctx, *, holds: int = 0, record: bool = False) -> None:
    user = _pick_users(ctx, 1)[0]
    caller = ctx.rng.choice(ctx.org.callers)
    s = ctx.session()
    p1, p2, t = _answered_direct(ctx, s, user, caller)
    rec: dict[str, object] | None = None
    if record:
        automatic = ctx.rng.random() < 0.5
        rec = _recording(ctx, automatic)
        if not automatic:
            t += ctx.gap(2_000, 20_000)
        p2.recordings = [{"id": rec["id"], "active": True}]
        s.emit(t + 1, p2, "Answered")
    t = _talk_with_holds(ctx, s, t, p2, holds)
    if p2.recordings is not None:
        p2.recordings = [{"id": p2.recordings[0]["id"], "active": False}]
    _caller_done(p1, caller)
    _hangup_pair(ctx, s, t, p1, p2)
    ids = (str(rec["id"]),) if rec is not None else ()
    ctx.expect(s, p2, "answered", "inbound", caller.phone_number, ids)
    _direct_record(ctx, s, user, caller, p2, "Accepted", rec)


def _direct_record(
    ctx: _Ctx,
    s: _Session,
    user: OrgExtension,
    caller: ExternalParty,
    p2: _Party,
    result: str,
    rec: dict[str, object] | None,
    message: bool = False,
) -> None:
    frm = _pstn_number(caller)
    to = _rc_number(user)
    legs = [
        _leg(
            ctx, s, p2, leg_type="Accept", direction="Inbound", action="Phone Call",
            result=result, frm=frm, to=to, ext=user, recording=rec,
        ),
        _leg(
            ctx, s, p2, leg_type="PstnToSip", direction="Outbound", action="VoIP Call",
            result=result, frm=frm, to={"phoneNumber": user.did}, ext=user, transport="VoIP",
            span=(s.first_t, s.last_t),
        ),
    ]  # fmt: skip
    _record(
        ctx, s, direction="Inbound", action="Phone Call", result=result, frm=frm, to=to,
        legs=legs, recording=rec, message_of=user if message else None,
    )  # fmt: skip


def _inbound_plain(ctx: _Ctx) -> None:
    _inbound_answered(ctx)


def _hold_resume(ctx: _Ctx) -> None:
    cycles = ctx.rng.randint(1, 3)
    if ctx.rng.random() < 0.7:
        _inbound_answered(ctx, holds=cycles)
    else:
        _outbound(ctx, "answered", holds=cycles)


def _recorded(ctx: _Ctx) -> None:
    if ctx.rng.random() < 0.6:
        _inbound_answered(ctx, record=True)
    else:
        _outbound(ctx, "answered", record=True)


def _caller_hangs_up(
    ctx: _Ctx, s: _Session, t: int, caller: _Party, unanswered: list[_Party], reason: str
) -> int:
    """The caller gives up; every party still ringing for them ends as a missed call."""
    s.emit(t, caller, "Disconnected")
    for party in unanswered:
        t += ctx.gap(10, 80)
        party.tail["missedCall"] = True
        s.emit(t, party, "Disconnected", ctx.reason(reason))
    return t


def _inbound_missed(ctx: _Ctx) -> None:
    user = _pick_users(ctx, 1)[0]
    caller = ctx.rng.choice(ctx.org.callers)
    s = ctx.session()
    p1, p2, t = _direct_inbound_start(ctx, s, user, caller)
    t += ctx.gap(6_000, 25_000)
    _caller_done(p1, caller)
    _caller_hangs_up(ctx, s, t, p1, [p2], "Cancelled")
    ctx.expect(s, p2, "missed", "inbound", caller.phone_number)
    _direct_record(ctx, s, user, caller, p2, "Missed", None)


def _inbound_voicemail(ctx: _Ctx) -> None:
    user = _pick_users(ctx, 1)[0]
    caller = ctx.rng.choice(ctx.org.callers)
    s = ctx.session()
    p1, p2, t = _direct_inbound_start(ctx, s, user, caller)
    t += ctx.gap(15_000, 25_000)
    s.emit(t, p2, ctx.voicemail_code)
    t += ctx.gap(6_000, 45_000)
    _caller_done(p1, caller)
    _caller_hangs_up(ctx, s, t, p1, [p2], "Voicemail")
    ctx.expect(s, p2, "voicemail", "inbound", caller.phone_number)
    _direct_record(ctx, s, user, caller, p2, "Voicemail", None, message=True)


def _company_pickup(
    ctx: _Ctx, s: _Session, caller: ExternalParty, ext: OrgExtension, number: str
) -> tuple[_Party, _Party, int]:
    """Caller dials a company number that the IVR or a queue picks up at once: the caller's
    party is Answered when that extension answers (capture: PSTN-RingCentral-DataStreams)."""
    p1 = s.party(None, "Outbound", _pstn(caller, False), {"phoneNumber": number})
    ref = _ext_ref(ext, number)
    pe = s.party(ext, "Inbound", _pstn(caller, False), ref)
    t = 0
    s.emit(t, p1, "Setup")
    t += ctx.gap(15, 60)
    s.emit(t, pe, "Setup")
    t += ctx.gap(60, 200)
    p1.set_to(ref)
    s.emit(t, p1, "Answered")
    return p1, pe, t


def _ivr_start(ctx: _Ctx, s: _Session, caller: ExternalParty) -> tuple[_Party, _Party, int]:
    return _company_pickup(ctx, s, caller, ctx.org.ivr, ctx.org.main_number)


def _queue_member(
    ctx: _Ctx, s: _Session, queue: CallQueue, member: OrgExtension, caller: ExternalParty
) -> _Party:
    """A member's party for a queue delivery (capture: rc-call-queue-or-direct)."""
    caller_name = caller.cnam or "WIRELESS CALLER"
    qname = queue.extension.name
    return s.party(
        member,
        "Inbound",
        {"phoneNumber": caller.phone_number, "name": f"{qname} - {caller_name}"},
        _ext_ref(queue.extension, queue.extension.did),
        queueCall=True,
        uiCallInfo={
            "primary": {"type": "QueueName", "value": qname},
            "additional": {"type": "CallerIdName", "value": caller_name},
        },
    )


def _enter_queue(
    ctx: _Ctx, s: _Session, caller: ExternalParty, *, via_ivr: bool
) -> tuple[_Party, _Party | None, _Party, CallQueue, int]:
    """Caller reaches a queue, through the IVR (option chosen) or by dialling its number."""
    org = ctx.org
    queue = ctx.rng.choice(org.queues)
    qref = _ext_ref(queue.extension, queue.extension.did)
    if via_ivr:
        p1, pi, t = _ivr_start(ctx, s, caller)
        t += ctx.gap(4_000, 15_000)
        s.emit(t, pi, "Disconnected", ctx.reason("CallerInputRedirect"))
        pq = s.party(queue.extension, "Inbound", _pstn(caller, False), qref)
        t += ctx.gap(0, 30)
        s.emit(t, pq, "Setup")
        return p1, pi, pq, queue, t
    number = queue.extension.did or org.main_number
    p1, pq, t = _company_pickup(ctx, s, caller, queue.extension, number)
    return p1, None, pq, queue, t


def _queue_record(
    ctx: _Ctx,
    s: _Session,
    caller: ExternalParty,
    queue: CallQueue,
    via_ivr: bool,
    result: str,
    members: list[tuple[OrgExtension, _Party, str]],
) -> None:
    frm = _pstn_number(caller)
    to = _main_number(ctx) if via_ivr else _rc_number(queue.extension)
    legs = [
        _leg(
            ctx, s, s.parties[0], leg_type="PstnToSip", direction="Inbound", action="Phone Call",
            result=result, frm=frm, to=to, ext=ctx.org.ivr if via_ivr else queue.extension,
        )
    ]  # fmt: skip
    # A member's leg names the caller as the queue delivery did: "<queue> - <caller id>"
    # (the live events' `from.name`, rc-call-queue-or-direct; issue 13 saw it in records).
    member_frm = {**frm, "name": f"{queue.extension.name} - {caller.cnam or 'WIRELESS CALLER'}"}
    for member, party, leg_result in members:
        legs.append(
            _leg(
                ctx, s, party, leg_type="Accept", direction="Inbound", action="Phone Call",
                result=leg_result, frm=member_frm,
                to=_rc_number(member, {"phoneNumber": queue.extension.did}), ext=member,
            )
        )  # fmt: skip
    _record(
        ctx, s, direction="Inbound", action="Phone Call", result=result, frm=frm, to=to, legs=legs
    )


def _ring_members(
    ctx: _Ctx, s: _Session, queue: CallQueue, caller: ExternalParty, t: int
) -> tuple[list[OrgExtension], list[_Party], int]:
    """Some of the queue's members (the free ones) start ringing at once."""
    members = list(queue.members)
    ctx.rng.shuffle(members)
    ringing = members[: ctx.rng.randint(1, len(members))]
    parties = []
    for member in ringing:
        party = _queue_member(ctx, s, queue, member, caller)
        parties.append(party)
        t += ctx.gap(5, 40)
        s.emit(t, party, "Proceeding")
    return ringing, parties, t


def _ivr_queue_answered(ctx: _Ctx) -> None:
    rng = ctx.rng
    caller = rng.choice(ctx.org.callers)
    s = ctx.session()
    via_ivr = rng.random() < 0.8
    p1, _pi, pq, queue, t = _enter_queue(ctx, s, caller, via_ivr=via_ivr)
    t += ctx.gap(500, 20_000)  # waiting for a free agent
    winner_party: _Party
    if rng.random() < 0.6:
        # simultaneous ring: a subset rings at once, one of them answers
        ringing, parties, t = _ring_members(ctx, s, queue, caller, t)
        win = rng.randrange(len(ringing))
        winner, winner_party = ringing[win], parties[win]
        t += ctx.gap(2_000, 15_000)
        s.emit(t, winner_party, "Answered")
        for party in parties:
            if party is not winner_party:
                t += ctx.gap(5, 40)
                s.emit(t, party, "Disconnected", ctx.reason("AgentAnswered"))
    else:
        # rotating: members ring in turn until one answers
        members = list(queue.members)
        rng.shuffle(members)
        order = members[: rng.randint(1, len(members))]
        for member in order[:-1]:
            party = _queue_member(ctx, s, queue, member, caller)
            s.emit(t, party, "Proceeding")
            t += ctx.gap(8_000, 15_000)
            s.emit(t, party, "Disconnected", ctx.reason("Timeout"))
            t += ctx.gap(20, 200)
        winner = order[-1]
        winner_party = _queue_member(ctx, s, queue, winner, caller)
        s.emit(t, winner_party, "Proceeding")
        t += ctx.gap(2_000, 12_000)
        s.emit(t, winner_party, "Answered")
    t += ctx.gap(5, 40)
    s.emit(t, pq, "Disconnected", ctx.reason("CallRedirected"))
    t = _talk_with_holds(ctx, s, t, winner_party, 1 if rng.random() < 0.2 else 0)
    _caller_done(p1, caller)
    _hangup_pair(ctx, s, t, p1, winner_party)
    ctx.expect(s, winner_party, "answered", "inbound", caller.phone_number)
    _queue_record(ctx, s, caller, queue, via_ivr, "Accepted", [(winner, winner_party, "Accepted")])


def _queue_missed(ctx: _Ctx) -> None:
    rng = ctx.rng
    caller = rng.choice(ctx.org.callers)
    s = ctx.session()
    via_ivr = rng.random() < 0.6
    p1, _pi, pq, queue, t = _enter_queue(ctx, s, caller, via_ivr=via_ivr)
    t += ctx.gap(500, 10_000)
    ringing, parties, t = _ring_members(ctx, s, queue, caller, t)
    t += ctx.gap(8_000, 40_000)
    _caller_done(p1, caller)
    t = _caller_hangs_up(ctx, s, t, p1, parties, "Cancelled")
    t += ctx.gap(5, 40)
    s.emit(t, pq, "Disconnected")
    for party in parties:
        ctx.expect(s, party, "missed", "inbound", caller.phone_number)
    _queue_record(
        ctx,
        s,
        caller,
        queue,
        via_ivr,
        "Missed",
        [(m, p, "Missed") for m, p in zip(ringing, parties, strict=True)],
    )


def _ivr_abandoned(ctx: _Ctx) -> None:
    rng = ctx.rng
    org = ctx.org
    caller = rng.choice(org.callers)
    s = ctx.session()
    if rng.random() < 0.6:
        # hangs up in the menu
        p1, company, t = _ivr_start(ctx, s, caller)
        t += ctx.gap(2_000, 30_000)
        ext = org.ivr
    else:
        # chooses a queue, waits while no agent is free, hangs up before any phone rang
        p1, _pi, company, queue, t = _enter_queue(ctx, s, caller, via_ivr=True)
        t += ctx.gap(10_000, 90_000)
        ext = queue.extension
    _caller_done(p1, caller)
    s.emit(t, p1, "Disconnected")
    t += ctx.gap(5, 60)
    s.emit(t, company, "Disconnected")
    to = _main_number(ctx)
    ctx.expect(s, None, "abandoned", "inbound", caller.phone_number)
    frm = _pstn_number(caller)
    leg = _leg(
        ctx, s, p1, leg_type="PstnToSip", direction="Inbound", action="Phone Call",
        result="Hang Up", frm=frm, to=to, ext=ext,
    )  # fmt: skip
    _record(
        ctx,
        s,
        direction="Inbound",
        action="Phone Call",
        result="Hang Up",
        frm=frm,
        to=to,
        legs=[leg],
    )


def _blind_transfer(ctx: _Ctx) -> None:
    rng = ctx.rng
    user1, user2 = _pick_users(ctx, 2)
    caller = rng.choice(ctx.org.callers)
    s = ctx.session()
    p1, p2, t = _answered_direct(ctx, s, user1, caller)
    t += ctx.gap(10_000, 90_000)
    s.emit(t, p2, "Disconnected", "BlindTransfer")
    p3 = s.party(user2, "Inbound", _pstn(caller, True), _ext_ref(user2))
    t += ctx.gap(20, 120)
    s.emit(t, p3, "Setup")
    t += ctx.gap(20, 120)
    s.emit(t, p3, "Proceeding", mobilePickupData=_pickup_data(ctx, p3))
    t += ctx.gap(2_000, 15_000)
    s.emit(t, p3, "Answered", mobilePickupData=_pickup_data(ctx, p3))
    _finish_handover(
        ctx, s, t, caller, p1, (user1, p2, "transferred"),
        (user2, p3, "TransferCall", "Transfer", _rc_number(user2)),
    )  # fmt: skip


def _finish_handover(
    ctx: _Ctx,
    s: _Session,
    t: int,
    caller: ExternalParty,
    p1: _Party,
    first: tuple[OrgExtension, _Party, str],
    second: tuple[OrgExtension, _Party, str, str, dict[str, object]],
) -> None:
    """The caller talks with the second user until both hang up; the first user's part in the
    session ended with `first[2]` (transferred, or answered for a park)."""
    user1, p2, first_result = first
    user2, p3, leg_type, action, to_second = second
    t += ctx.gap(10_000, 150_000)
    _caller_done(p1, caller)
    _hangup_pair(ctx, s, t, p1, p3)
    ctx.expect(s, p2, first_result, "inbound", caller.phone_number)
    ctx.expect(s, p3, "answered", "inbound", caller.phone_number)
    frm = _pstn_number(caller)
    to = _rc_number(user1)
    legs = [
        _leg(ctx, s, p2, leg_type="Accept", direction="Inbound", action="Phone Call",
             result="Accepted", frm=frm, to=to, ext=user1),
        _leg(ctx, s, p3, leg_type=leg_type, direction="Inbound", action=action,
             result="Accepted", frm=frm, to=to_second, ext=user2),
    ]  # fmt: skip
    _record(
        ctx, s, direction="Inbound", action="Phone Call", result="Accepted", frm=frm, to=to,
        legs=legs,
    )  # fmt: skip


def _rc_to_rc_ringing(
    ctx: _Ctx, s: _Session, user1: OrgExtension, user2: OrgExtension, t: int
) -> tuple[_Party, _Party, int]:
    """User 1 dials user 2's extension: both Setup, the caller Answered at once (the RC
    destination is reached), the callee ringing (capture: RingCentral-RingCentral.txt)."""
    p1 = s.party(user1, "Outbound", _device_ref(user1), {"phoneNumber": user2.extension_number})
    p2 = s.party(
        user2, "Inbound", {**_ext_ref(user1), "deviceId": user1.device_id}, _ext_ref(user2)
    )
    s.emit(t, p1, "Setup")
    t += ctx.gap(10, 40)
    s.emit(t, p2, "Setup")
    t += ctx.gap(10, 60)
    _rc_caller_connected(p1, user1, user2)
    s.emit(t, p1, "Answered")
    t += ctx.gap(10, 120)
    s.emit(t, p2, "Proceeding", mobilePickupData=_pickup_data(ctx, p2))
    return p1, p2, t


def _warm_transfer(ctx: _Ctx) -> None:
    rng = ctx.rng
    user1, user2 = _pick_users(ctx, 2)
    caller = rng.choice(ctx.org.callers)
    a = ctx.session()
    a1, a2, t = _answered_direct(ctx, a, user1, caller)
    t += ctx.gap(10_000, 90_000)
    a.emit(t, a2, "Hold")
    # consult call, agent 1 -> agent 2 (RC -> RC, capture RingCentral-RingCentral.txt)
    b = ctx.session()
    t += ctx.gap(2_000, 6_000)
    b1, b2, t = _rc_to_rc_ringing(ctx, b, user1, user2, t)
    t += ctx.gap(2_000, 10_000)
    b.emit(t, b2, "Answered", mobilePickupData=_pickup_data(ctx, b2))
    t += ctx.gap(8_000, 60_000)
    # bridge: agent 1 leaves both sessions, the customer moves into the consult session
    b3 = b.party(None, "Outbound", _pstn(caller, True), {"phoneNumber": user1.did})
    a.emit(t, a2, "Gone", "AttendedTransfer",
           peerId={"sessionId": b.session_id, "telephonySessionId": b.tsid, "partyId": b1.id})  # fmt: skip
    t += ctx.gap(5, 30)
    b.emit(t, b1, "Gone", "AttendedTransfer",
           peerId={"sessionId": a.session_id, "telephonySessionId": a.tsid, "partyId": a2.id})  # fmt: skip
    t += ctx.gap(5, 30)
    _caller_done(a1, caller)
    a.emit(t, a1, "Gone", "AttendedTransfer",
           peerId={"sessionId": b.session_id, "telephonySessionId": b.tsid, "partyId": b3.id})  # fmt: skip
    t += ctx.gap(5, 30)
    b.emit(t, b3, "Answered")
    t += ctx.gap(5, 30)
    b2.set_from(_pstn(caller, True))
    b.emit(t, b2, "Answered")
    t += ctx.gap(10_000, 150_000)
    _hangup_pair(ctx, b, t, b3, b2)
    ctx.expect(a, a2, "transferred", "inbound", caller.phone_number)
    ctx.expect(b, b2, "answered", "inbound", caller.phone_number)
    frm = _pstn_number(caller)
    to = _rc_number(user1)
    legs = [
        _leg(ctx, a, a2, leg_type="Accept", direction="Inbound", action="Phone Call",
             result="Accepted", frm=frm, to=to, ext=user1,
             extra={"transferTarget": {"telephonySessionId": b.tsid}}),
    ]  # fmt: skip
    _record(
        ctx,
        a,
        direction="Inbound",
        action="Phone Call",
        result="Accepted",
        frm=frm,
        to=to,
        legs=legs,
    )
    frm_b = _rc_number(user1)
    to_b = _rc_number(user2)
    legs_b = [
        _leg(ctx, b, b1, leg_type="ExtensionToExtension", direction="Outbound", action="VoIP Call",
             result="Call connected", frm=frm_b, to=to_b, ext=user1, transport="VoIP"),
        _leg(ctx, b, b2, leg_type="TransferCall", direction="Inbound", action="Transfer",
             result="Accepted", frm=frm, to=to_b, ext=user2,
             extra={"transferee": {"telephonySessionId": a.tsid}}),
    ]  # fmt: skip
    _record(ctx, b, direction="Outbound", action="VoIP Call", result="Call connected", frm=frm_b,
            to=to_b, legs=legs_b, transport="VoIP")  # fmt: skip


def _park_pickup(ctx: _Ctx) -> None:
    rng = ctx.rng
    user1, user2 = _pick_users(ctx, 2)
    location = rng.choice(ctx.org.park_locations)
    caller = rng.choice(ctx.org.callers)
    s = ctx.session()
    p1, p2, t = _answered_direct(ctx, s, user1, caller)
    t += ctx.gap(8_000, 60_000)
    # A park location (park orbit) keeps the call in its session and leaves `parkData` out
    # (docs: telephony-session-notifications.md status table); `*8xx` park extensions, picked
    # up through a new session with Gone/peerId, are not modelled.
    s.emit(t, p2, "Parked")
    t += ctx.gap(5, 40)
    s.emit(t, p1, "Parked")
    t += ctx.gap(200, 1_500)
    s.emit(t, p2, "Disconnected", ctx.reason("ParkLocation"))
    t += ctx.gap(4_000, 45_000)
    p3 = s.party(user2, "Inbound", _pstn(caller, True), _ext_ref(location))
    s.emit(t, p3, "Setup")
    t += ctx.gap(30, 200)
    s.emit(t, p3, "Answered")
    t += ctx.gap(5, 40)
    s.emit(t, p1, "Answered")
    _finish_handover(
        ctx, s, t, caller, p1, (user1, p2, "answered"),
        (user2, p3, "ParkLocation", "Phone Call", _rc_number(location)),
    )  # fmt: skip


def _internal(ctx: _Ctx) -> None:
    """Extension to extension (capture: RingCentral-RingCentral.txt); no log by default."""
    user1, user2 = _pick_users(ctx, 2)
    s = ctx.session()
    p1, p2, t = _rc_to_rc_ringing(ctx, s, user1, user2, 0)
    answered = ctx.rng.random() < 0.8
    if answered:
        t += ctx.gap(2_000, 10_000)
        s.emit(t, p2, "Answered", mobilePickupData=_pickup_data(ctx, p2))
        t = _talk_with_holds(ctx, s, t, p1, 1 if ctx.rng.random() < 0.3 else 0)
        _hangup_pair(ctx, s, t, p1, p2)
    else:
        t += ctx.gap(8_000, 25_000)
        _caller_hangs_up(ctx, s, t, p1, [p2], "Cancelled")
    frm = _rc_number(user1)
    to = _rc_number(user2)
    result = "Call connected" if answered else "Missed"
    legs = [
        _leg(ctx, s, p1, leg_type="ExtensionToExtension", direction="Outbound", action="VoIP Call",
             result=result, frm=frm, to=to, ext=user1, transport="VoIP"),
        _leg(ctx, s, p2, leg_type="ExtensionToExtension", direction="Inbound", action="Phone Call",
             result="Accepted" if answered else "Missed", frm=frm, to=to, ext=user2, transport="VoIP"),
    ]  # fmt: skip
    _record(ctx, s, direction="Outbound", action="VoIP Call", result=result, frm=frm, to=to,
            legs=legs, transport="VoIP")  # fmt: skip


_FLOWS: dict[CallKind, Callable[[_Ctx], None]] = {
    CallKind.OUTBOUND_ANSWERED: _outbound_answered,
    CallKind.OUTBOUND_NO_ANSWER: _outbound_no_answer,
    CallKind.OUTBOUND_BUSY: _outbound_busy,
    CallKind.INBOUND_ANSWERED: _inbound_plain,
    CallKind.INBOUND_MISSED: _inbound_missed,
    CallKind.INBOUND_VOICEMAIL: _inbound_voicemail,
    CallKind.IVR_QUEUE_ANSWERED: _ivr_queue_answered,
    CallKind.IVR_ABANDONED: _ivr_abandoned,
    CallKind.QUEUE_MISSED: _queue_missed,
    CallKind.BLIND_TRANSFER: _blind_transfer,
    CallKind.WARM_TRANSFER: _warm_transfer,
    CallKind.HOLD_RESUME: _hold_resume,
    CallKind.PARK_PICKUP: _park_pickup,
    CallKind.RECORDED: _recorded,
    CallKind.INTERNAL: _internal,
}
