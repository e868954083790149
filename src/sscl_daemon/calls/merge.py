"""One call log from the call-log record and the live events that were seen (pure).

Where it sits: the daemon settles a session that lost events (a gap, a restart, a hole in
its sequence numbers) from the RingCentral call log (``ringcentral/calllog.py`` maps the
record). The tracker may still hold part of the session's live history; this module puts
the two together. The record is the authority on who took part and how the call ended;
the live events are the authority on the moments a record does not hold (when the user
answered, how long they held), so each figure comes from where it is exact and
``CompletedCall.approximate`` keeps only the fields neither could give exactly.

Rules, per call log (same idempotency key on both sides):

* result, participants, start and end come from the record; a call the live events saw
  handed on (``transferred``) stays ``transferred`` even if the record alone reads as
  ``answered`` (the other session's record may not have been read yet), but only when
  the live history is complete: with a hole, the live view may have missed what came
  after (the hand-on undone, the user back on the line) and the record's ``answered``
  is what RingCentral says happened;
* when the record says the user answered and the live events saw their answer, the
  answer time and ring time are live;
* when, in addition, the live history of the session is complete (no missing sequence
  number) and saw the user's end, talk and hold are live too; otherwise talk is the time
  from the live answer to the record's end less the hold seen, still flagged approximate
  with hold;
* names, numbers, queue and recordings: the record's, filled from live where it has none
  (an outside name only for the same outside number, an internal number only for an
  internal call).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from sscl_daemon.calls.model import CallResult, CallSource, CompletedCall, Direction

_ANSWERED = (CallResult.ANSWERED, CallResult.TRANSFERRED)


def with_live(
    from_log: CompletedCall, live: CompletedCall | None, *, complete: bool
) -> CompletedCall:
    """``from_log`` with what ``live`` (the tracker's view of the same key) knows better.

    ``complete`` says the live history had no hole (every sequence number seen).
    """
    if live is None:
        return from_log
    result = from_log.result
    if complete and result is CallResult.ANSWERED and live.result is CallResult.TRANSFERRED:
        result = CallResult.TRANSFERRED
    approximate = set(from_log.approximate)
    answer = from_log.answer_time
    ring, talk, hold = from_log.ring_ms, from_log.talk_ms, from_log.hold_ms
    start, end = from_log.start_time, from_log.end_time
    if result in _ANSWERED and live.answer_time is not None:
        answer = min(max(live.answer_time, start), end)
        ring = _ms(start, answer)
        approximate -= {"answer_time", "ring_ms"}
        saw_end = live.result is not CallResult.INCOMPLETE
        if complete and saw_end:
            talk, hold = live.talk_ms, live.hold_ms
            approximate -= {"talk_ms", "hold_ms"}
        else:
            hold = live.hold_ms
            talk = max(0, _ms(answer, end) - hold)
    recordings = from_log.recording_ids + tuple(
        r for r in live.recording_ids if r not in from_log.recording_ids
    )
    return msgspec.structs.replace(
        from_log,
        result=result,
        answer_time=answer,
        ring_ms=ring,
        talk_ms=talk,
        hold_ms=hold,
        approximate=tuple(f for f in from_log.approximate if f in approximate),
        source=CallSource.LIVE_CALL_LOG,
        external_name=from_log.external_name
        or (live.external_name if live.external_number == from_log.external_number else None),
        internal_number=from_log.internal_number
        or (live.internal_number if from_log.direction is Direction.INTERNAL else None),
        own_number=from_log.own_number or live.own_number,
        transferred_to=from_log.transferred_to or live.transferred_to,
        queue_name=from_log.queue_name or live.queue_name,
        recording_ids=recordings,
        user_name=from_log.user_name or live.user_name,
        user_email=from_log.user_email or live.user_email,
        user_timezone=from_log.user_timezone or live.user_timezone,
    )


def _ms(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))
