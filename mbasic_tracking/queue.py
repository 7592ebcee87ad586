"""The bounded queue between the tracking calls and the writer.

A ``collections.deque`` rather than an ``asyncio.Queue``: appending is atomic
under the GIL, so a call from a worker thread needs no hop through the event
loop, and an append costs a fraction of ``put_nowait``. The writer is woken only
when a full batch is waiting or a flush is asked for; otherwise it looks again
after ``flush_interval``.

``Counter`` is for counts that threads other than the loop's may bump.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Iterable

from .events import Event

__all__ = ["Counter", "EventQueue"]


class EventQueue:
    """A bounded FIFO of events, filled from any thread, drained by one task.

    ``put`` never blocks and never raises; it returns False when the queue is
    full. The bound is checked without a lock, so concurrent producers on
    several threads may overshoot ``maxsize`` by at most one event each.
    """

    __slots__ = (
        "_batch_size",
        "_items",
        "_loop",
        "_urgent",
        "_wakeup",
        "maxsize",
    )

    def __init__(self, maxsize: int, batch_size: int) -> None:
        self.maxsize = maxsize
        self._batch_size = batch_size
        self._items: deque[Event] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._urgent = False

    def __len__(self) -> int:
        return len(self._items)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the loop whose task drains the queue."""
        self._loop = loop
        self._wakeup = asyncio.Event()

    def put(self, event: Event) -> bool:
        """Append ``event``; False (and nothing stored) when the queue is full."""
        items = self._items
        if len(items) >= self.maxsize:
            return False

        items.append(event)
        if len(items) == self._batch_size:
            self._wake()

        return True

    def put_front(self, events: Iterable[Event]) -> None:
        """Return events to the head of the queue, keeping their order."""
        self._items.extendleft(reversed(list(events)))

    def take(self, limit: int) -> list[Event]:
        """Remove and return up to ``limit`` events from the head."""
        items = self._items
        count = min(limit, len(items))

        return [items.popleft() for _ in range(count)]

    def hurry(self) -> None:
        """Ask the writer not to wait for a full batch (a flush or a stop)."""
        self._urgent = True
        self._wake()

    async def wait_for_batch(self, interval: float) -> None:
        """Return when a full batch is waiting, a flush was asked for, or after
        ``interval`` seconds, whichever comes first."""
        wakeup = self._wakeup
        if wakeup is None:
            raise RuntimeError("EventQueue.bind() was not called")

        if self._urgent or len(self._items) >= self._batch_size:
            self._urgent = False
            return

        wakeup.clear()
        try:
            async with asyncio.timeout(interval):
                await wakeup.wait()
        except TimeoutError:
            pass

        self._urgent = False

    def _wake(self) -> None:
        wakeup, loop = self._wakeup, self._loop
        if wakeup is None or loop is None or wakeup.is_set():
            return

        if asyncio._get_running_loop() is loop:
            wakeup.set()
            return

        # A closed loop raises RuntimeError: its writer is gone and waits no more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wakeup.set)


class Counter:
    """A monotonically increasing count that any thread may bump."""

    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self, amount: int = 1) -> int:
        with self._lock:
            self.value += amount
            return self.value
