"""The watchdog of one WebSocket connection: heartbeats, probes, and the end of a silent one.

Where it sits: `subscription.py` runs the receive loop of each connection and stamps every
frame here (:meth:`Watchdog.saw_frame`, :meth:`Watchdog.reading`); the watchdog, with one
timer, decides when to send a heartbeat or a probe (a WebSocket ping) and when the
connection is silent and must be replaced. It sends and aborts through the callbacks the
subscription hands it; it has no other I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

# The gateway answers a heartbeat at once (research A7): one unanswered this long after it
# was sent means the connection is dead, whatever `dead_connection_timeout` allows.
HEARTBEAT_ANSWER = 10.0
# A watchdog timer firing this much later than due means the process itself did not run
# (SIGSTOP, a blocked loop): the peer's frames may be waiting unread in the socket.
PAUSE_SLACK = 1.0
# A busy stream that goes quiet is probed with a WebSocket ping (the guide prefers pings to
# heartbeats, research A7) once the quiet lasts as long as this share of the gateway's
# replay buffer (recoveryBufferSize, A8) takes to fill at the stream's pace: a silent
# connection is then replaced while a recovery still replays everything it held back. A
# quiet account (few events) keeps the plain heartbeat schedule.
PROBE_BUFFER_SHARE = 0.25
# Never probe after less quiet than this, nor wait less than this for the pong (a round
# trip over the Internet); the pong is waited for at most HEARTBEAT_ANSWER.
PROBE_FLOOR = 1.0
PROBE_ANSWER = 2.0
PROBE_LOOK = 0.25  # the watchdog's timer looks at a busy stream this often at least
# An unanswered probe is silence only if the platform answers other requests, as promptly
# as the pong was waited for: a platform that answers nothing in time is stalled, and the
# frames it holds back for the socket come when it resumes (a recovery would replay only
# the last 100 of them).
PLATFORM_ANSWER = PROBE_ANSWER
# The pace is a moving mean of the gaps between frames, each new gap weighing this much.
PACE_WEIGHT = 0.1


class Watchdog:
    """Heartbeats on a quiet connection and the end of a silent one, with no timer per frame.

    The receive loop only stamps each frame (:meth:`saw_frame`); a single timer, re-armed
    when it fires, sends a heartbeat after ``heartbeat`` seconds without a frame and aborts
    the connection after ``dead_after`` seconds, or once the heartbeat went unanswered for
    ``answer_within`` (then :attr:`silent` is true). A timeout scope around every ``recv()``
    would cost each notification a timer of its own.

    A busy stream is watched more closely: the gateway replays at most ``buffer``
    notifications after a recovery (research A8), so a silence noticed only after a minute
    loses all but the last ``buffer`` of them. Once the quiet outlasts the time a share of
    the buffer takes to fill at the stream's pace (a moving mean of the gaps between
    frames), ``probe`` sends a WebSocket ping; a pong (:meth:`answered`) shows the
    peer is only quiet, and its long gap slows the pace, so a stream that really went quiet
    is soon back on the heartbeat schedule. No pong within :meth:`probe_answer` is silence
    if the platform answers otherwise: ``verify`` asks it and hands the answer to
    :meth:`verdict`. A platform that answers nothing at all is stalled, not the socket:
    it is kept (a recovery would replay only the last ``buffer`` frames of those held back)
    and the pace slows as if the probe had been answered.

    Silence is only counted while the process runs and the receive loop waits for a frame
    (:meth:`reading`): a timer that fires late (the daemon was stopped with SIGSTOP, or its
    loop blocked) cannot tell a silent peer from frames queued in the socket that nobody
    has read yet, so it probes with a heartbeat and counts afresh instead of throwing the
    connection and its queued frames away; and while the loop is busy with a frame (the
    pipeline holds it back when the store cannot commit) the next frames wait unread, and
    with them the pongs, so nothing is counted then.
    """

    def __init__(
        self,
        heartbeat: float,
        dead_after: float,
        beat: Callable[[], None],
        abort: Callable[[], None],
        answer_within: float = HEARTBEAT_ANSWER,
        probe: Callable[[], None] | None = None,
        buffer: int = 100,
        verify: Callable[[], None] | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._heartbeat = heartbeat
        self._dead_after = min(dead_after, heartbeat + answer_within)
        self._answer_within = answer_within
        self._beat = beat
        self._abort = abort
        self._probe = probe
        self._verify = verify
        # recoveryBufferSize of the connection (its ConnectionDetails may change it)
        self.buffer = buffer
        self.silent = False
        self.last_frame = self.last_beat = self._loop.time()
        # the moving mean of the gaps between frames (None: no gap seen yet)
        self.pace: float | None = None
        self._probed_at: float | None = None  # an unanswered probe's time
        self._asking = False  # whether the platform answers is being asked (`verify`)
        # Whether the receive loop is busy with a frame, and since when it last waited.
        self._busy = False
        self._waiting_since = self.last_frame
        self._spared_at = self.last_frame  # when a stalled platform's socket was last kept
        self.pauses = 0
        self._sends: set[asyncio.Task[None]] = set()
        self._arm()

    def saw_frame(self) -> None:
        """The receive loop got a frame (and is busy with it until :meth:`reading`)."""
        self.answered()
        self._busy = True

    def answered(self) -> None:
        """The peer showed it is there: a frame, or a probe's pong."""
        now = self._loop.time()
        gap = now - self.last_frame
        pace = self.pace
        self.pace = gap if pace is None else pace + PACE_WEIGHT * (gap - pace)
        self.last_frame = self.last_beat = now
        self._probed_at = None
        self._asking = False

    def reading(self) -> None:
        """The receive loop waits for the next frame: quiet counts from here at the latest."""
        self._busy = False
        self._waiting_since = self._loop.time()

    def probe_after(self) -> float | None:
        """The quiet after which a busy stream is probed (None: not busy enough to)."""
        if self._probe is None or self.pace is None:
            return None
        quiet = max(PROBE_FLOOR, self.pace * self.buffer * PROBE_BUFFER_SHARE)
        return quiet if quiet < self._heartbeat else None

    def probe_answer(self) -> float:
        """How long a probe's pong may take: the quiet allowed, within the heartbeat's."""
        quiet = self.probe_after() or self._answer_within
        return min(self._answer_within, max(PROBE_ANSWER, quiet))

    def _quiet_since(self) -> float:
        return max(self.last_frame, self._spared_at, self._waiting_since)

    def _arm(self) -> None:
        silent_since = max(self.last_frame, self._waiting_since)
        due = min(silent_since + self._dead_after, self.last_beat + self._heartbeat)
        if self._probed_at is not None and not self._asking:
            due = min(due, self._probed_at + self.probe_answer())
        elif self._probe is not None:
            # The pace changes with every frame and the timer is not re-armed per frame:
            # look again a few times a second while a probe may be wanted.
            quiet = self.probe_after()
            look = self._loop.time() + PROBE_LOOK
            due = min(due, look if quiet is None else max(self._quiet_since() + quiet, look))
        self._scheduled = due
        self._timer = self._loop.call_at(due, self._fire)

    def _fire(self) -> None:
        now = self._loop.time()
        quiet = self.probe_after()
        probed = self._probed_at
        unanswered = probed is not None and not self._asking and now - probed >= self.probe_answer()
        if now - self._scheduled > PAUSE_SLACK:
            self.pauses += 1
            self.last_frame = self.last_beat = now
            self._probed_at = None
            self._beat()
        elif self._busy:
            pass  # frames (and pongs) wait unread behind the one being handled
        elif now - max(self.last_frame, self._waiting_since) >= self._dead_after or (
            unanswered and self._verify is None
        ):
            self.silent = True
            self._abort()
            return
        elif unanswered:
            assert self._verify is not None
            self._asking = True
            self._verify()
        elif probed is None and quiet is not None and now - self._quiet_since() >= quiet:
            self._probed_at = now
            assert self._probe is not None
            self._probe()
        elif now - self.last_beat >= self._heartbeat:
            self.last_beat = now
            self._beat()
        self._arm()

    def verdict(self, platform_answers: bool) -> None:
        """Whether the platform answered while the probe was not: silence, or a stall."""
        if not self._asking:
            return  # a frame came meanwhile: the socket is alive
        self._asking = False
        self._probed_at = None
        if platform_answers:
            self.silent = True
            self._abort()
            return
        now = self._loop.time()
        self._spared_at = now
        pace = self.pace if self.pace is not None else 0.0
        self.pace = pace + PACE_WEIGHT * ((now - self.last_frame) - pace)

    def ask(self, answers: Coroutine[object, object, bool]) -> None:
        """Hand :meth:`verdict` what ``answers`` finds, beside the receive loop."""

        async def ask() -> None:
            self.verdict(await answers)

        self._background(ask())

    def send(self, ws: ClientConnection, text: str) -> None:
        """Send ``text`` beside the receive loop; a closed connection is the loop's to see."""

        async def send() -> None:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(text)

        self._background(send())

    def ping(self, ws: ClientConnection) -> None:
        """A WebSocket ping beside the receive loop; its pong shows the peer is there."""

        async def ping() -> None:
            with contextlib.suppress(ConnectionClosed):
                pong = await ws.ping()
                await pong
                self.answered()

        self._background(ping())

    def _background(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(work)
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    def cancel(self) -> None:
        self._timer.cancel()
        for task in self._sends:
            task.cancel()
