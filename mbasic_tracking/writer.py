"""The one task that drains the queue into a sink.

It takes up to ``batch_size`` events, or whatever arrived within
``flush_interval``, and hands them to the sink as one transaction. A transient
failure is retried with capped exponential backoff and jitter, for as long as it
takes: the queue keeps accepting events meanwhile, up to its bound. A batch the
server refuses is split in halves until the refused row is alone; that row is
counted as failed and logged once with its event id, and its batch-mates land.

With a spool (``spool_dir``), the queue does not overflow while the database is
away or slow: a guard task beside the writer moves events from the head of the
queue to the spool whenever the queue passes three quarters of its bound, down
to a quarter, a chunk at a time so that the loop is never held for long. The
writer replays the spool, oldest first, before it takes from the queue again.
At ``stop()`` whatever is left unwritten goes to the spool (``spool_unwritten``)
and a later writer on the same folder replays it.

The writer never dies on an error. Anything unexpected is logged with its
traceback and handled like a transient failure.

Backoff is a few lines here rather than a retry library: the ones we tried
install process-wide hooks (a warning per retry, metrics in the application's
default registry), which a library embedded in someone else's app must not do.
The first failure of an outage is logged once; recovery once more.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from .events import EVENT_ID, KIND, KIND_NAMES, Event, format_event_id
from .queue import EventQueue
from .sinks import RejectedError, Sink, TransientError
from .spool import Spool, SpoolBatch, SpoolError

__all__ = ["Writer"]

logger = logging.getLogger(__name__)

_REFUSAL_LOG_LIMIT: Final = 100  # refused rows logged per process, then counted only
_SPILL_CHECK_EVERY: Final = 0.05  # seconds between looks at the queue's level
_SPILL_CHUNK: Final = 200  # events encoded per step: a few ms of the loop at most
_SPOOL_WARNING_EVERY: Final = 10.0  # seconds between spool warnings of one kind


class Writer:
    """Drains ``queue`` into ``sink``; owned and driven by a UsageTracker."""

    def __init__(
        self,
        queue: EventQueue,
        sink: Sink,
        *,
        batch_size: int,
        flush_interval: float,
        retry_initial_wait: float,
        retry_max_wait: float,
        spool: Spool | None = None,
    ) -> None:
        self._queue = queue
        self._sink = sink
        self._spool = spool
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_initial_wait = retry_initial_wait
        self._retry_max_wait = retry_max_wait

        self._closing = False
        self._in_flight = 0
        self._batch_done = 0
        # Events of this process that left the writer's hands: written or
        # refused. Spooled events settle when replayed; an earlier process's
        # spooled events never count here.
        self._settled = 0
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._spool_warned: dict[str, float] = {}

        self.written = 0
        self.replayed = 0
        self.failed = 0
        self.batches = 0
        self.retries = 0
        self.last_flush_at: float | None = None
        self.last_error: str | None = None
        self.database_ok: bool | None = None
        #: Called after each batch lands with (events, seconds); for metrics.
        self.on_batch: Callable[[int, float], None] | None = None

    @property
    def in_flight(self) -> int:
        """Events taken from the queue or the spool, not yet written or given up."""
        return self._in_flight

    @property
    def spool(self) -> Spool | None:
        """The spool in use, or None (none configured, or it could not be opened)."""
        return self._spool

    async def run(self) -> None:
        """Write batches until ``close()`` is called and nothing is left: the
        queue is empty, and so is the spool when there is one."""
        guard: asyncio.Task[None] | None = None
        if self._spool is not None and await self._open_spool():
            guard = asyncio.get_running_loop().create_task(
                self._spill_when_high(), name="mbasic-tracking-spill"
            )

        try:
            await self._drain()
        finally:
            if guard is not None:
                # Safe at any await: a chunk is taken and appended in one step.
                guard.cancel()
                await asyncio.wait([guard])

    async def _drain(self) -> None:
        queue = self._queue

        while True:
            spool = self._spool
            if spool is not None and spool.pending:
                replay = await spool.read(self._batch_size)
                if replay is not None:
                    await self._write_batch(replay.events, replay)
                    await spool.ack(replay)
                    continue

            if not queue:
                if self._closing:
                    return
                await queue.wait_for_batch(self._flush_interval)
                continue

            if len(queue) < self._batch_size and not self._closing:
                await queue.wait_for_batch(self._flush_interval)

            batch = queue.take(self._batch_size)
            if batch:
                await self._write_batch(batch)

    async def _write_batch(
        self, batch: Sequence[Event], replay: SpoolBatch | None = None
    ) -> None:
        self._in_flight = len(batch)
        self._batch_done = 0
        try:
            if batch:
                await self._write_isolating(batch)
        except asyncio.CancelledError:
            # Halves are written left to right, so what is unsettled is a
            # suffix of the batch: give it back to the queue, in order. A
            # replayed batch stays in the spool until it is acknowledged.
            if replay is None:
                self._queue.put_front(batch[self._batch_done :])
            raise
        finally:
            if replay is not None:
                self.replayed += self._batch_done
            if replay is None or not replay.inherited:
                self._settled += self._batch_done
            self._in_flight = 0
            self._release_flush_waiters()

    def close(self) -> None:
        """Ask ``run()`` to return once the queue is empty."""
        self._closing = True
        self._queue.hurry()

    async def wait_settled(self, target: int) -> None:
        """Return once ``target`` events of this process have settled (written or
        refused); wakes the writer at once."""
        if self._settled >= target:
            return

        future = asyncio.get_running_loop().create_future()
        self._flush_waiters.append((target, future))
        self._queue.hurry()
        await future

    async def spool_unwritten(self) -> tuple[int, int]:
        """Move the queue to the spool, synced to disk; for ``stop()``, once the
        writer task has ended (a batch it was writing is back in the queue).

        Returns (kept, lost): events now in the spool and events it had no room
        for (also counted in its ``dropped``). Without a usable spool nothing is
        kept.
        """
        queue = self._queue
        spool = self._spool
        if spool is None or not await self._open_spool():
            return 0, len(queue)

        kept = lost = 0
        while queue:
            chunk = queue.take(_SPILL_CHUNK)
            stored = self._append(spool, chunk)
            kept += stored
            if stored < len(chunk):
                lost += len(chunk) - stored + len(queue)
                queue.take(len(queue))
                break
            await asyncio.sleep(0)

        spool.dropped += lost
        await self._sync(spool)

        return kept, lost

    async def close_spool(self) -> None:
        """Sync and close the spool, releasing its folder. Idempotent."""
        spool = self._spool
        if spool is None:
            return

        try:
            await spool.close()
        except OSError as error:
            logger.warning("cannot close the spool at %s: %s", spool.directory, error)

    # -- the spool ------------------------------------------------------------

    async def _open_spool(self) -> bool:
        spool = self._spool
        if spool is None:
            return False

        try:
            await spool.open()
        except SpoolError as error:
            logger.warning(
                "no spool: %s; events beyond the queue's bound will be dropped", error
            )
            self._spool = None
            return False

        return True

    async def _spill_when_high(self) -> None:
        queue = self._queue
        high = queue.maxsize * 3 // 4
        low = queue.maxsize // 4

        while True:
            await asyncio.sleep(_SPILL_CHECK_EVERY)
            spool = self._spool
            if spool is not None and len(queue) > high:
                await self._spill(spool, len(queue) - low)

    async def _spill(self, spool: Spool, count: int) -> None:
        queue = self._queue
        moved = 0

        while moved < count:
            chunk = queue.take(min(_SPILL_CHUNK, count - moved))
            if not chunk:
                break
            stored = self._append(spool, chunk)
            moved += stored
            if stored < len(chunk):
                queue.put_front(chunk[stored:])
                break
            await self._sync(spool)

        if moved:
            self._warn_spool(
                "spilled",
                "the queue is running high (%s); moving events to the spool at %s",
                self.last_error or "the database is slow",
                spool.directory,
            )

    def _append(self, spool: Spool, events: Sequence[Event]) -> int:
        try:
            stored = spool.append(events)
        except OSError as error:
            self._warn_spool("broken", "cannot write the spool: %s", error)
            return 0

        if stored < len(events):
            self._warn_spool(
                "full",
                "the spool at %s is full (%d bytes); events wait in the queue",
                spool.directory,
                spool.disk_bytes,
            )

        return stored

    async def _sync(self, spool: Spool) -> None:
        try:
            await spool.sync()
        except OSError as error:
            self._warn_spool("broken", "cannot sync the spool: %s", error)

    def _warn_spool(self, kind: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        last = self._spool_warned.get(kind)
        if last is not None and now - last < _SPOOL_WARNING_EVERY:
            return
        self._spool_warned[kind] = now
        logger.warning(message, *args)

    # -- one batch ------------------------------------------------------------

    async def _write_isolating(self, batch: Sequence[Event]) -> None:
        try:
            await self._write_retrying(batch)
        except RejectedError as error:
            if len(batch) > 1:
                middle = len(batch) // 2
                await self._write_isolating(batch[:middle])
                await self._write_isolating(batch[middle:])
                return
            self._refused(batch[0], error)
            return

        self.written += len(batch)
        self._batch_done += len(batch)

    async def _write_retrying(self, batch: Sequence[Event]) -> None:
        started = time.monotonic()
        failures = 0

        while True:
            try:
                await self._attempt(batch)
                break
            except TransientError:
                failures += 1
                self.retries += 1
                await asyncio.sleep(self._backoff(failures))

        if failures and self.database_ok is False:
            logger.info("%s answers again after %d retries", self._sink.name, failures)
        self.batches += 1
        self.last_flush_at = time.time()
        self.database_ok = True
        seconds = time.monotonic() - started
        logger.debug("wrote %d events in %.3f s", len(batch), seconds)
        if self.on_batch is not None:
            self.on_batch(len(batch), seconds)

    def _backoff(self, failures: int) -> float:
        """Seconds before retry number ``failures``: doubling from the initial
        wait up to the cap, the upper half of it randomized so that replicas
        recovering from the same outage do not retry in step."""
        ceiling = min(
            self._retry_max_wait,
            self._retry_initial_wait * 2.0 ** min(failures - 1, 32),
        )
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _attempt(self, batch: Sequence[Event]) -> None:
        try:
            await self._sink.write(batch)
        except RejectedError:
            self.database_ok = True
            raise
        except TransientError as error:
            self._note_failure(str(error))
            raise
        except asyncio.CancelledError:
            raise
        except Exception as error:
            logger.exception("unexpected error while writing a batch; will retry")
            self._note_failure(f"{type(error).__name__}: {error}")
            raise TransientError(type(error).__name__) from error

    def _note_failure(self, message: str) -> None:
        if self.database_ok is not False:
            logger.warning(
                "cannot write to %s: %s; retrying with backoff, events wait",
                self._sink.name,
                message,
            )
        self.database_ok = False
        self.last_error = message

    def _refused(self, event: Event, error: RejectedError) -> None:
        self.failed += 1
        self._batch_done += 1
        self.last_error = str(error)

        if self.failed <= _REFUSAL_LOG_LIMIT:
            logger.warning(
                "the server refused event %s (%s): %s; its batch-mates were written",
                format_event_id(event[EVENT_ID]),
                KIND_NAMES[event[KIND]],
                error,
            )

    def _release_flush_waiters(self) -> None:
        if not self._flush_waiters:
            return

        waiting = []
        for target, future in self._flush_waiters:
            if self._settled >= target:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((target, future))

        self._flush_waiters = waiting
