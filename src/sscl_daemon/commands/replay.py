"""``sscl-daemon replay EVENTS.jsonl...``: recorded notifications in, call logs out.

An admin's debugging tool and the call core's offline entry point. Each line
of the input is one raw telephony-session notification as the daemon
receives it (the WebSocket ``[header, envelope]`` frame, the bare envelope,
or a bare body); ``[ringcentral] record_notifications`` makes the daemon
write such a file (ringcentral/recorder.py). Several files are read in the
order given, as one stream. A notification whose uuid was already seen (a
re-delivery after a WebSocket recovery, or the same file given twice) is
skipped, as the daemon skips it, and reported on stderr. The lines run
through the same tracker and policy as the daemon; at the end of the input,
sessions still open are completed as
:meth:`~sscl_daemon.calls.tracker.Tracker.expire` would at the end of time,
so a file holding one whole call prints its log.

Output, one JSON object per call log on stdout, with these stable keys (more
may be added): ``key``, ``telephony_session_id``, ``session_id``,
``account_id``, ``extension_id``, ``extension_number``, ``direction``
(inbound/outbound/internal), ``external_number`` (E.164, null for internal
calls), ``external_name``, ``result`` (answered, missed, voicemail,
abandoned, rejected, busy, transferred, incomplete), ``start_time``,
``answer_time`` (null if never answered), ``end_time`` (ISO 8601 UTC with
milliseconds and ``Z``), ``ring_seconds``, ``talk_seconds``,
``hold_seconds``, ``total_seconds`` (whole seconds, rounded half up),
``recording_ids``, ``transferred_to``; then ``queue_seconds``,
``queue_name``, ``internal_number``, ``user_name``, ``final_status``,
``final_reason``.

stderr gets one line per call the policy did not log (``skipped KEY
(REASON): why``), one per input line that could not be decoded
(``FILE:LINE: ...``; the replay goes on), one per duplicate uuid skipped
(``FILE:LINE: duplicate uuid U (first at FILE:LINE), skipped``) and a count
of the duplicates at the end. Exit status: 0 (duplicates included), 1 if any
input line was bad, 2 if the configuration, directory or an input file
cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sscl_daemon.calls.directory import Directory, DirectoryError
from sscl_daemon.calls.events import EventDecodeError, decode_event
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.calls.policy import Policy, PolicyOptions
from sscl_daemon.calls.tracker import Tracker, TrackerOptions
from sscl_daemon.config import add_config_argument

HELP = "run recorded telephony notifications (JSON lines) through the call core; print call logs"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "events",
        nargs="+",
        metavar="EVENTS",
        help="files with one raw notification per line, read in this order ('-' for stdin); "
        "for a recorded file and its rotations give the oldest first: FILE.4 ... FILE.1 FILE",
    )
    add_config_argument(parser)
    parser.add_argument(
        "--account", metavar="NAME", help="the [accounts.NAME] whose settings apply"
    )
    parser.add_argument(
        "--directory",
        help="JSON body of GET /restapi/v1.0/account/~/extension (the 'records' list)",
    )


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S") + f".{value.microsecond // 1000:03d}Z"


def call_json(call: CompletedCall) -> dict[str, object]:
    """The replay output object of one call log (keys in their documented order)."""
    return {
        "key": call.key,
        "telephony_session_id": call.telephony_session_id,
        "session_id": call.session_id,
        "account_id": call.account_id,
        "extension_id": call.extension_id,
        "extension_number": call.extension_number,
        "direction": call.direction.value,
        "external_number": call.external_number,
        "external_name": call.external_name,
        "result": call.result.value,
        "start_time": iso(call.start_time),
        "answer_time": iso(call.answer_time),
        "end_time": iso(call.end_time),
        "ring_seconds": call.seconds(call.ring_ms),
        "talk_seconds": call.seconds(call.talk_ms),
        "hold_seconds": call.seconds(call.hold_ms),
        "total_seconds": call.seconds(call.total_ms),
        "recording_ids": list(call.recording_ids),
        "transferred_to": call.transferred_to,
        "queue_seconds": call.seconds(call.queue_ms),
        "queue_name": call.queue_name,
        "internal_number": call.internal_number,
        "user_name": call.user_name,
        "final_status": call.final_status,
        "final_reason": call.final_reason,
    }


def load_directory(path: str) -> Directory:
    """Read the extension list; raise DirectoryError naming the file and the problem."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DirectoryError(f"{path}: cannot read the file: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DirectoryError(f"{path}: not a JSON document: {exc}") from None
    records = data.get("records") if isinstance(data, dict) else data
    if not isinstance(records, list):
        raise DirectoryError(
            f"{path}: expected the extension-list response (an object with 'records') "
            "or a list of extension records"
        )
    try:
        return Directory.from_api(records)
    except DirectoryError as exc:
        raise DirectoryError(f"{path}: {exc}") from None


def build(args: argparse.Namespace, err: IO[str]) -> Tracker:
    """The tracker and policy the arguments ask for (raises on unusable inputs).

    The configuration's ``[calls]``, ``[blocklist]`` and ``[scope]`` apply, from the
    file every command reads. Without ``--config``, a missing default file means the
    built-in defaults (replay is also run on a copy of the events, away from the
    daemon's machine); ``err`` is told which applies.
    """
    from sscl_daemon.config import Need, load_for_command
    from sscl_daemon.config.locations import config_path
    from sscl_daemon.configured_policy import policy_options as configured_policy
    from sscl_daemon.daemon.accounts import tracker_options

    directory = load_directory(args.directory) if args.directory else None
    path = config_path(args.config)
    if args.config is None and not path.exists():
        err.write(f"no configuration at {path}: the built-in defaults apply (no blocklist)\n")
        options = TrackerOptions(completion_grace_s=0.0)
        return Tracker(directory, options, Policy(PolicyOptions(), directory))
    settings = load_for_command(args, Need.NONE)
    account = settings.account(args.account)
    return Tracker(
        directory, tracker_options(account), Policy(configured_policy(account), directory)
    )


def _emit(tracker: Tracker, calls: list[CompletedCall], out: IO[str], err: IO[str]) -> None:
    for call in calls:
        out.write(json.dumps(call_json(call), ensure_ascii=False) + "\n")
    for call, decision in tracker.take_skipped():
        reason = decision.reason.value if decision.reason else "?"
        err.write(f"skipped {call.key} ({reason}): {decision.detail}\n")


class Replay:
    """Feeds lines of one or more files to the tracker, dropping re-delivered uuids."""

    def __init__(self, tracker: Tracker, out: IO[str], err: IO[str]) -> None:
        self.tracker = tracker
        self.out = out
        self.err = err
        self.bad = 0
        self.duplicates = 0
        # uuid -> where it was first seen; a replay holds whole files anyway.
        self._seen: dict[str, tuple[str, int]] = {}

    def feed(self, lines: IO[bytes], name: str) -> None:
        tracker, err = self.tracker, self.err
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = decode_event(line)
            except EventDecodeError as exc:
                self.bad += 1
                err.write(f"{name}:{number}: not a usable notification, skipped: {exc.reason}\n")
                continue
            if event.uuid is not None:
                first = self._seen.setdefault(event.uuid, (name, number))
                if first != (name, number):
                    self.duplicates += 1
                    err.write(
                        f"{name}:{number}: duplicate uuid {event.uuid} "
                        f"(first at {first[0]}:{first[1]}), skipped\n"
                    )
                    continue
            _emit(tracker, tracker.apply(event), self.out, err)

    def finish(self) -> None:
        """Complete the sessions still open and report the duplicates."""
        _emit(self.tracker, self.tracker.flush(), self.out, self.err)
        if self.duplicates:
            self.err.write(
                f"{self.duplicates} duplicate notification(s) skipped (a uuid seen before)\n"
            )


def run(args: argparse.Namespace) -> int:
    from sscl_daemon.config import ConfigError

    try:
        tracker = build(args, sys.stderr)
    except (ConfigError, DirectoryError) as exc:
        print(exc, file=sys.stderr)
        return 2
    session = Replay(tracker, sys.stdout, sys.stderr)
    for name in args.events:
        if name == "-":
            session.feed(sys.stdin.buffer, "<stdin>")
            continue
        try:
            handle = open(name, "rb")  # noqa: SIM115 - closed below, errors reported
        except OSError as exc:
            print(f"{name}: cannot read the file: {exc.strerror}", file=sys.stderr)
            return 2
        with handle:
            session.feed(handle, name)
    session.finish()
    if session.bad:
        print(f"{session.bad} input line(s) could not be used (see above)", file=sys.stderr)
        return 1
    return 0
