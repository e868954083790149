"""The enrichment runner: a logged call's recording, voicemail and transcription brought into
its CRM record when RingCentral has them (store/enrichments.py -> here -> ringcentral/media.py
and the writer's ``enrich``).

One runner per CRM writer that can update its records (``crm/enrich.Enricher``). It claims
due enrichment rows of its writer and account (a lease like the dispatcher's, fenced by the
account lease), asks RingCentral for the media, and hands the writer one update:

* media not there yet (a recording RingCentral has not finished, a voicemail not yet in the
  message store, a transcription in progress for up to :data:`TRANSCRIPTION_WAIT`): the row
  is polled again with doubling delays from the writer's ``media_first_look`` to
  :data:`POLL_MAX`, every
  RingCentral request waiting its turn in the account's rate groups, until the row's window
  (:data:`WINDOW` after the create) ends: then it expires;
* ``upload``: the audio is streamed from RingCentral into a spooled file and from there to
  the CRM; a file over ``media_max_mb`` is linked instead (said in the note);
* the writer's answer settles the row: done (passing the note it wrote to the record's other
  updates), retried (uncertain after a timeout or crash: the writer checks before adding),
  or dead with the reason.

Rows come from the dispatcher right after a create is recorded (``enqueue``) and from a
sweep every :data:`SWEEP_INTERVAL` for creates whose rows a crash prevented.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sscl_daemon import metrics
from sscl_daemon.backoff import backoff_delay
from sscl_daemon.calls.model import CompletedCall
from sscl_daemon.config import RecordingsMode, WriterSettings
from sscl_daemon.crm import content
from sscl_daemon.crm.base import PermanentFailure, RetryLater, WriteContext, Writer
from sscl_daemon.crm.enrich import Enricher, Enrichment, Kind, Updated, expected
from sscl_daemon.logging import get_logger
from sscl_daemon.ringcentral.media import Audio, MediaClient, NotReady, TooLarge
from sscl_daemon.ringcentral.rest import ApiError
from sscl_daemon.ringcentral.retry import RetriesExhausted, Retryable
from sscl_daemon.store.enrichments import EnrichmentItem, Enrichments, EnrichmentStatus, Wanted
from sscl_daemon.store.leases import Lease

log = get_logger(__name__)

POLL_MAX = 300.0
WINDOW = timedelta(hours=2)
TRANSCRIPTION_WAIT = timedelta(minutes=10)
SWEEP_INTERVAL = 60.0
# One update may fetch media and make a few CRM requests.
_LEASE = 600.0


@dataclass(frozen=True)
class _Wait:
    """The media is not there yet (or RingCentral could not be asked): look again."""

    reason: str


class EnrichmentRunner:
    """Runs one writer's call log updates for one account until cancelled."""

    def __init__(
        self,
        enrichments: Enrichments,
        writer: Callable[[], Writer],
        settings: Callable[[], WriterSettings],
        media: MediaClient,
        *,
        account: str,
        claimer: str,
        fence: Lease | None = None,
        may_write: Callable[[], bool] | None = None,
        idle_poll: float = 5.0,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._rows = enrichments
        self._writer = writer
        self._settings = settings
        self._media = media
        self._account = account
        self._claimer = claimer
        self._fence = fence
        self._may_write = may_write
        self._idle_poll = idle_poll
        self._rng = rng or random.Random()
        self._clock = clock
        self._wake = asyncio.Event()
        self._last_sweep = float("-inf")
        # A claim's length.
        self.lease = _LEASE

    @property
    def name(self) -> str:
        return self._settings().name

    def wake(self) -> None:
        self._wake.set()

    # -- queueing (called by the dispatcher after a create is recorded) ---------------------

    async def created(self, call: CompletedCall, record_id: str, written: str | None) -> None:
        mode = self._settings().contacts.recordings
        kinds = expected(call, mode)
        if not kinds:
            return
        await self._rows.enqueue(
            self._account,
            self.name,
            [Wanted(call, record_id, k.value, written) for k in kinds],
            first_delay=self._settings().contacts.media_first_look,
            window=WINDOW.total_seconds(),
            fence=self._fence,
        )
        metrics.ENRICHMENTS_PENDING.labels(writer=self.name).inc(len(kinds))

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            if time.monotonic() - self._last_sweep >= SWEEP_INTERVAL:
                await self._sweep()
            settings = self._settings()
            items = await self._rows.claim_due(
                self._account,
                settings.name,
                settings.concurrency,
                self._claimer,
                self.lease,
                fence=self._fence,
            )
            if items:
                await asyncio.gather(*(self.process(item) for item in items))
                continue
            pending = await self._rows.pending(self._account)
            metrics.ENRICHMENTS_PENDING.labels(writer=settings.name).set(
                pending.get(settings.name, 0)
            )
            self._wake.clear()
            try:
                async with asyncio.timeout(self._idle_poll):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _sweep(self) -> None:
        self._last_sweep = time.monotonic()
        mode = self._settings().contacts.recordings
        kinds = [Kind.VOICEMAIL.value]
        if mode is RecordingsMode.UPLOAD:
            kinds.append(Kind.RECORDING.value)
        made = await self._rows.sweep(
            self._account, self.name, kinds, WINDOW.total_seconds(), fence=self._fence
        )
        if made:
            log.warning(
                "enrichment.sweep.recovered",
                writer=self.name,
                rows=made,
                hint="logged calls whose updates a restart had not queued; their notes are"
                " left as they are and the media goes beside them",
            )

    async def process(self, item: EnrichmentItem) -> None:
        """One claimed row: gather the media, hand it to the writer, settle."""
        writer = self._writer()
        if not isinstance(writer, Enricher):
            await self._finish(item, EnrichmentStatus.EXPIRED, "the writer cannot update logs")
            return
        if self._clock() >= item.give_up_at:
            await self._finish(
                item, EnrichmentStatus.EXPIRED, f"no {item.kind} from RingCentral in time"
            )
            return
        try:
            gathered = await self._gather(item, writer.recordings)
        except ApiError as exc:
            await self._finish(item, EnrichmentStatus.DEAD, f"RingCentral refused: {exc}")
            return
        if isinstance(gathered, _Wait):
            await self._poll_again(item, gathered.reason)
            return
        if self._may_write is not None and not self._may_write():
            # Like the dispatcher: leave the claim to lapse; the lease's holder takes the row.
            self._close(gathered)
            log.warning(
                "enrichment.update.held_back",
                writer=self.name,
                call=item.call.key,
                hint="the account lease is not current: the claim lapses for its holder",
            )
            return
        settings = self._settings()
        ctx = WriteContext(attempt=item.attempts, uncertain=item.uncertain)
        try:
            async with asyncio.timeout(settings.timeout * 4):
                result = await writer.enrich(gathered, ctx)
        except TimeoutError:
            await self._retry(item, None, "the update got no answer in time", True)
            return
        except Exception as exc:
            log.warning("enrichment.writer.raised", writer=self.name, error=repr(exc))
            await self._retry(item, None, f"writer error: {exc!r}", True)
            return
        finally:
            self._close(gathered)
        if isinstance(result, Updated):
            await self._finish(item, EnrichmentStatus.SENT, result.detail, result.written)
        elif isinstance(result, RetryLater):
            await self._retry(item, result.delay, result.reason, result.uncertain)
        elif isinstance(result, PermanentFailure):
            await self._finish(item, EnrichmentStatus.DEAD, result.reason)

    # -- media -------------------------------------------------------------------------

    async def _gather(self, item: EnrichmentItem, mode: RecordingsMode) -> Enrichment | _Wait:
        e = Enrichment(Kind(item.kind), item.call, item.record_id, item.written)
        audio: list[Audio] = []
        audio_links: list[str] = []
        links: list[str] = []
        remarks: list[str] = []
        try:
            if e.kind is Kind.RECORDING:
                uris = content.recording_urls(item.call)
                for rid, uri in zip(item.call.recording_ids, uris, strict=True):
                    if mode is not RecordingsMode.UPLOAD:
                        links.append(content.player_link(uri))
                        continue
                    got = await self._media.recording(rid)
                    if isinstance(got, NotReady):
                        self._close_all(audio)
                        return _Wait(got.reason)
                    self._keep(got, uri, audio, audio_links, links, remarks)
            else:
                vm = await self._media.voicemail(item.call)
                if isinstance(vm, NotReady):
                    return _Wait(vm.reason)
                in_progress = vm.transcription is None and vm.transcription_status in (
                    "InProgress",
                    "Pending",
                )
                if in_progress and self._clock() < item.created_at + TRANSCRIPTION_WAIT:
                    return _Wait("the voicemail transcription is in progress")
                e.transcription = vm.transcription
                if mode is RecordingsMode.UPLOAD:
                    got = await self._media.attachment(vm)
                    if isinstance(got, NotReady):
                        return _Wait(got.reason)
                    self._keep(got, vm.audio_uri, audio, audio_links, links, remarks)
                elif mode is RecordingsMode.LINK:
                    links.append(content.player_link(vm.audio_uri))
        except (Retryable, RetriesExhausted) as exc:
            self._close_all(audio)
            return _Wait(f"RingCentral: {exc}")
        e.audio, e.audio_links, e.links, e.remarks = audio, audio_links, links, remarks
        return e

    def _keep(
        self,
        got: Audio | TooLarge,
        uri: str,
        audio: list[Audio],
        audio_links: list[str],
        links: list[str],
        remarks: list[str],
    ) -> None:
        if isinstance(got, Audio):
            audio.append(got)
            audio_links.append(content.player_link(uri))
            return
        links.append(content.player_link(uri))
        remarks.append(
            f"the audio ({got.size // 1_000_000} MB or more) is larger than media_max_mb"
            f" ({got.limit // 1_000_000} MB): linked instead of attached"
        )

    @staticmethod
    def _close_all(audio: list[Audio]) -> None:
        for a in audio:
            a.close()

    def _close(self, e: Enrichment) -> None:
        for a in e.audio:
            a.close()

    # -- settling --------------------------------------------------------------------------

    async def _poll_again(self, item: EnrichmentItem, reason: str) -> None:
        first = max(self._settings().contacts.media_first_look, 1.0)
        delay = min(POLL_MAX, first * 2 ** max(item.attempts - 1, 0))
        left = (item.give_up_at - self._clock()).total_seconds()
        await self._retry(item, max(0.0, min(delay, left)), reason, item.uncertain)

    async def _retry(
        self, item: EnrichmentItem, delay: float | None, reason: str, uncertain: bool
    ) -> None:
        if delay is None:
            settings = self._settings()
            delay = backoff_delay(
                item.attempts, settings.retry_initial, settings.retry_max, self._rng
            )
        metrics.ENRICHMENTS.labels(writer=self.name, kind=item.kind, outcome="retry").inc()
        await self._rows.retry(item.id, self._claimer, delay, reason, uncertain, fence=self._fence)
        log.info(
            "enrichment.update.retry_scheduled",
            writer=self.name,
            call=item.call.key,
            kind=item.kind,
            retry_in=round(delay, 3),
            reason=reason,
        )

    async def _finish(
        self,
        item: EnrichmentItem,
        status: EnrichmentStatus,
        result: str,
        written: str | None = None,
    ) -> None:
        held = await self._rows.finish(
            item.id, self._claimer, status, result, written=written, fence=self._fence
        )
        metrics.ENRICHMENTS.labels(writer=self.name, kind=item.kind, outcome=status.value).inc()
        event = {
            EnrichmentStatus.SENT: "enrichment.call.updated",
            EnrichmentStatus.EXPIRED: "enrichment.call.expired",
        }.get(status, "enrichment.call.dead")
        (log.error if status is EnrichmentStatus.DEAD else log.info)(
            event,
            writer=self.name,
            call=item.call.key,
            kind=item.kind,
            record=item.record_id,
            result=result,
            held=held,
        )
