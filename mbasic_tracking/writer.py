"""The one task that drains the queue into a sink.

It takes up to ``batch_size`` events, or whatever arrived within
``flush_interval``, and hands them to the sink as one transaction. A transient
failure is retried with capped exponential backoff and jitter, for as long as it
takes: the queue keeps accepting events meanwhile, up to its bound. A batch the
server refuses is split in halves until the refused row is alone; that row is
counted as failed and logged once with its event id, and its batch-mates land.

The writer never dies on an error. Anything unexpected is logged with its
traceback and handled like a transient failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

import stamina

from .events import Event, format_event_id
from .queue import EventQueue
from .sinks import RejectedError, Sink, TransientError

__all__ = ["Writer"]

logger = logging.getLogger(__name__)

_REFUSAL_LOG_LIMIT: Final = 100  # refused rows logged per process, then counted only


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
    ) -> None:
        self._queue = queue
        self._sink = sink
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._retry_initial_wait = retry_initial_wait
        self._retry_max_wait = retry_max_wait

        self._closing = False
        self._in_flight = 0
        self._batch_done = 0
        self._settled = 0
        self._flush_waiters: list[tuple[int, asyncio.Future[None]]] = []

        self.written = 0
        self.failed = 0
        self.batches = 0
        self.retries = 0
        self.last_flush_at: float | None = None
        self.last_error: str | None = None
        self.database_ok: bool | None = None
        self.flush_seconds: float | None = None
        #: Called after each batch lands with (events, seconds); for metrics.
        self.on_batch: Callable[[int, float], None] | None = None

    @property
    def in_flight(self) -> int:
        """Events taken from the queue and not yet written or given up."""
        return self._in_flight

    @property
    def settled(self) -> int:
        """Events that left the writer's hands: written or failed."""
        return self._settled

    async def run(self) -> None:
        """Write batches until ``close()`` is called and the queue is empty."""
        queue = self._queue

        while True:
            if not queue:
                if self._closing:
                    return
                await queue.wait_for_batch(self._flush_interval)
                continue

            if len(queue) < self._batch_size and not self._closing:
                await queue.wait_for_batch(self._flush_interval)

            batch = queue.take(self._batch_size)
            if not batch:
                continue

            self._in_flight = len(batch)
            self._batch_done = 0
            try:
                await self._write_isolating(batch)
            except asyncio.CancelledError:
                # Halves are written left to right, so what is unsettled is a
                # suffix of the batch: give it back to the queue, in order.
                self._queue.put_front(batch[self._batch_done :])
                raise
            finally:
                self._in_flight = 0
                self._release_flush_waiters()

    def close(self) -> None:
        """Ask ``run()`` to return once the queue is empty."""
        self._closing = True
        self._queue.hurry()

    async def wait_settled(self, target: int) -> None:
        """Return once ``settled`` reaches ``target``; wakes the writer at once."""
        if self._settled >= target:
            return

        future = asyncio.get_running_loop().create_future()
        self._flush_waiters.append((target, future))
        self._queue.hurry()
        await future

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
        self._settled += len(batch)
        self._batch_done += len(batch)

    async def _write_retrying(self, batch: Sequence[Event]) -> None:
        started = time.monotonic()
        retrying = stamina.retry_context(
            on=TransientError,
            attempts=None,
            timeout=None,
            wait_initial=self._retry_initial_wait,
            wait_max=self._retry_max_wait,
            wait_jitter=min(1.0, self._retry_max_wait),
        )

        async for attempt in retrying:
            with attempt:
                if attempt.num > 1:
                    self.retries += 1
                await self._attempt(batch)

        self.batches += 1
        self.last_flush_at = time.time()
        self.database_ok = True
        self.flush_seconds = time.monotonic() - started
        logger.debug("wrote %d events in %.3f s", len(batch), self.flush_seconds)
        if self.on_batch is not None:
            self.on_batch(len(batch), self.flush_seconds)

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
        self._settled += 1
        self._batch_done += 1
        self.last_error = str(error)

        if self.failed <= _REFUSAL_LOG_LIMIT:
            logger.warning(
                "the server refused event %s (%s): %s; its batch-mates were written",
                format_event_id(event.event_id),
                type(event).__name__,
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
