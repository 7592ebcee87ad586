"""The await-free tracking API: build an event, put it on the queue, return.

Every tracking method takes microseconds, never awaits, never does I/O, never
raises, and may be called from the event loop's thread or from any other thread
(NiceGUI's ``run.io_bound``, an interpreter thread). The writer task that moves
events to the database starts by itself on the first call made inside a running
event loop, or explicitly with ``await tracker.start()``.

With ``spool_dir`` set, what the database cannot take in time (a long outage,
events unwritten at ``stop()``) waits on disk and is replayed later; only the
writer task touches the spool, never a tracking call.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from . import events as ev
from .config import TrackingConfig
from .privacy import make_ip_filter
from .queue import Counter, EventQueue
from .sinks import Sink
from .spool import Spool
from .writer import Writer

__all__ = ["UsageTracker", "get_usage_tracker", "init_usage_tracker"]

logger = logging.getLogger(__name__)

_DROP_WARNING_EVERY: Final = 10.0  # seconds between "queue full" warnings
_KNOWN_SESSIONS_MAX: Final = 10_000
_INT_MAX: Final = ev.INT_MAX
_LINES_MAX: Final = ev.LINES_MAX
_SESSION_START = ev.SESSION_START
_SESSION_ACTIVITY = ev.SESSION_ACTIVITY
_SESSION_END = ev.SESSION_END
_PROGRAM_RUN = ev.PROGRAM_RUN
_FEATURE_USE = ev.FEATURE_USE
_PAGE_VISIT = ev.PAGE_VISIT
_running_loop = asyncio._get_running_loop
_thread_id = threading.get_ident


class UsageTracker:
    """Records IDE usage without ever holding up the caller.

    Make one with ``init_usage_tracker(config)`` (or directly from a
    ``TrackingConfig``). The tracking methods keep the names and signatures of
    the IDE's original tracker. ``start``, ``flush`` and ``stop`` are the
    lifecycle; ``stats`` reports what happened to the events so far.
    """

    def __init__(self, config: TrackingConfig, *, sink: Sink | None = None) -> None:
        self.config = config
        self.enabled = config.enabled

        secret = config.ip_hash_secret.encode() if config.ip_hash_secret else None
        self._ip = make_ip_filter(config.ip_mode, secret)
        # A batch never holds more than the queue can.
        self._batch_size = min(config.batch_size, config.queue_size)
        self._queue = EventQueue(config.queue_size, self._batch_size)
        self._sink = sink
        self._writer: Writer | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._closed = False

        # Event ids: 64 random bits per tracker, then a sequence number. Unique
        # across replicas and restarts without any coordination.
        self._id_base = secrets.randbits(64) << 64
        self._sequence = itertools.count(1)

        # Session ids already found valid, so that a repeated id costs one dict
        # lookup instead of a normalization. Bounded: cleared when full.
        self._known_sessions: dict[str, None] = {}

        self._enqueued_on_loop = 0
        self._enqueued_elsewhere = Counter()
        self._dropped = Counter()
        self._invalid = Counter()
        self._abandoned = 0
        self._last_drop_warning = 0.0

    def __repr__(self) -> str:
        state = "running" if self.running else "closed" if self._closed else "idle"
        return f"<UsageTracker {state} to {self.config.destination}>"

    @property
    def running(self) -> bool:
        """Whether the writer task is alive."""
        return self._task is not None and not self._task.done()

    # -- the tracking calls ---------------------------------------------------

    def start_ide_session(
        self, session_id: Any, user_agent: Any = None, ip_address: Any = None
    ) -> None:
        """Record that an IDE session began. Never raises, never blocks."""
        if not self.enabled:
            return
        try:
            sid = self._session_id(session_id)
            if sid is None:
                self._invalid.add()
                return
            self._put(
                (
                    _SESSION_START,
                    self._id_base + next(self._sequence),
                    time.time(),
                    sid,
                    ev.text(user_agent, ev.USER_AGENT_WIDTH),
                    self._ip(ip_address),
                )
            )
        except Exception:
            self._internal_error()

    def update_session_activity(self, session_id: Any) -> None:
        """Move the session's ``last_activity`` to now. Never raises, never blocks."""
        if not self.enabled:
            return
        try:
            sid = self._session_id(session_id)
            if sid is None:
                self._invalid.add()
                return
            self._put(
                (
                    _SESSION_ACTIVITY,
                    self._id_base + next(self._sequence),
                    time.time(),
                    sid,
                )
            )
        except Exception:
            self._internal_error()

    def end_ide_session(self, session_id: Any) -> None:
        """Record that the session ended; its duration comes from the events' own
        times, not the database's clock. Never raises, never blocks."""
        if not self.enabled:
            return
        try:
            sid = self._session_id(session_id)
            if sid is None:
                self._invalid.add()
                return
            self._put(
                (_SESSION_END, self._id_base + next(self._sequence), time.time(), sid)
            )
        except Exception:
            self._internal_error()

    def track_program_execution(
        self,
        session_id: Any,
        program_lines: Any,
        execution_time_ms: Any,
        lines_executed: Any,
        success: Any,
        error_message: Any = None,
    ) -> None:
        """Record a program run; the session's ``programs_run`` and
        ``lines_executed`` follow. Never raises, never blocks."""
        if not self.enabled:
            return
        try:
            sid = self._session_id(session_id)
            if sid is None:
                self._invalid.add()
                return
            self._put(
                (
                    _PROGRAM_RUN,
                    self._id_base + next(self._sequence),
                    time.time(),
                    sid,
                    program_lines
                    if type(program_lines) is int and 0 <= program_lines <= _INT_MAX
                    else ev.count(program_lines),
                    execution_time_ms
                    if type(execution_time_ms) is int
                    and 0 <= execution_time_ms <= _INT_MAX
                    else ev.count(execution_time_ms),
                    lines_executed
                    if type(lines_executed) is int and 0 <= lines_executed <= _LINES_MAX
                    else ev.count(lines_executed, _LINES_MAX),
                    success
                    if success is True or success is False
                    else ev.flag(success),
                    None
                    if error_message is None
                    else ev.text(error_message, ev.ERROR_WIDTH),
                )
            )
        except Exception:
            self._internal_error()

    def track_feature_usage(
        self, session_id: Any, feature_name: Any, feature_data: Any = None
    ) -> None:
        """Record the use of a feature; ``feature_data`` is stored as JSON.
        Never raises, never blocks."""
        if not self.enabled:
            return
        try:
            sid = self._session_id(session_id)
            name = ev.text(feature_name, ev.FEATURE_NAME_WIDTH)
            if sid is None or not name:
                self._invalid.add()
                return
            self._put(
                (
                    _FEATURE_USE,
                    self._id_base + next(self._sequence),
                    time.time(),
                    sid,
                    name,
                    None if feature_data is None else ev.json_text(feature_data),
                )
            )
        except Exception:
            self._internal_error()

    def track_page_visit(
        self,
        page_path: Any,
        referrer: Any = None,
        user_agent: Any = None,
        ip_address: Any = None,
        session_id: Any = None,
    ) -> None:
        """Record a page visit; the session is optional. Never raises, never blocks."""
        if not self.enabled:
            return
        try:
            path = ev.text(page_path, ev.PAGE_PATH_WIDTH)
            if not path:
                self._invalid.add()
                return
            self._put(
                (
                    _PAGE_VISIT,
                    self._id_base + next(self._sequence),
                    time.time(),
                    path,
                    ev.text(referrer, ev.REFERRER_WIDTH),
                    ev.text(user_agent, ev.USER_AGENT_WIDTH),
                    self._ip(ip_address),
                    None if session_id is None else self._session_id(session_id),
                )
            )
        except Exception:
            self._internal_error()

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer on the running loop. Idempotent; returns at once
        (the writer connects in the background while calls keep queueing)."""
        if self.enabled and not self._closed:
            self._ensure_started(asyncio.get_running_loop())

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event accepted before this call is written (or
        refused by the server). Returns False if ``timeout`` passed first."""
        if not self.enabled:
            return True

        if not self._closed:
            self._ensure_started(asyncio.get_running_loop())
        writer = self._writer
        if writer is None or not self.running:
            return self._queue_depth() == 0

        target = self._enqueued_count() - self._abandoned - self._spool_count("dropped")
        try:
            async with asyncio.timeout(timeout):
                await writer.wait_settled(target)
        except TimeoutError:
            return False

        return True

    async def stop(self, timeout: float = 30) -> None:
        """Write what is queued, then stop the writer and close connections.

        Waits at most ``timeout`` seconds. Events still unwritten then go to
        the spool when ``spool_dir`` is set (counted in ``spooled``; the next
        tracker on that folder writes them), else they are counted as
        ``abandoned``; either way one warning says how many. Writing the spool
        adds to ``timeout`` the time to encode and sync them (about 10 ms per
        thousand events). Idempotent. Later tracking calls are counted as
        dropped.
        """
        if self._closed:
            return
        self._closed = True

        if self.enabled and self._queue and self._task is None:
            self._ensure_started(asyncio.get_running_loop())

        task, writer = self._task, self._writer
        if task is not None and writer is not None:
            writer.close()
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(task)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        left = self._queue_depth()
        if left and writer is not None and writer.spool is not None:
            kept, lost = await writer.spool_unwritten()
            logger.warning(
                "stopped with %d events unwritten after %.1f s; %d are in the spool "
                "at %s for the next start, %d lost (no room in the spool)",
                left,
                timeout,
                kept,
                writer.spool.directory,
                lost,
            )
        elif left:
            self._abandoned += left
            self._queue.take(len(self._queue))
            logger.warning(
                "stopped with %d events unwritten after %.1f s; they are lost",
                left,
                timeout,
            )

        if writer is not None:
            await writer.close_spool()
        if self._sink is not None:
            await self._sink.close()

    async def ping(self) -> bool:
        """Whether the tracking database answers now (a fresh round trip).

        False when tracking is disabled or the database does not answer. Never
        raises; how long it may take is the sink's connect timeout.
        """
        if not self.enabled:
            return False

        if self._sink is None:
            self._sink = _make_sink(self.config)
        try:
            return await self._sink.ping()
        except Exception:
            return False

    async def health(self, ping_timeout: float = 2.0) -> dict[str, Any]:
        """The tracker's health report, for an app's own health route.

        ``{"status": "ok" | "degraded", "problems": [...], "tracking": {...}}``:
        degraded when the database does not answer within ``ping_timeout`` or
        the writer is not running; the stats, ``database`` and
        ``last_write_age_seconds`` under ``tracking``. Never raises, and holds
        no secrets. Serve it with status 200: an analytics outage must not get
        the app restarted.
        """
        from .health import health_report

        return await health_report(self, ping_timeout=ping_timeout)

    def stats(self) -> dict[str, Any]:
        """What happened to the events so far; safe to expose (no secrets).

        Keys: ``enqueued``, ``written``, ``dropped`` (queue full or tracker
        stopped), ``failed`` (refused by the server), ``invalid`` (calls lacking
        what a row needs), ``abandoned`` (unwritten at stop), ``queue_depth``
        (accepted, not yet written, in-flight batch included), ``batches``,
        ``retries``, ``last_flush_at`` (ISO 8601 UTC or None), ``last_error``,
        ``database_ok`` (None until the first attempt), ``running``,
        ``destination``; and for the spool: ``spooled`` (events moved to it),
        ``replayed`` (events written from it, an earlier process's included),
        ``spool_bytes`` (on disk now), ``spool_corrupt`` (damaged records
        skipped) and ``spool_dropped`` (events it had no room for: lost).
        """
        writer = self._writer
        last_flush = writer.last_flush_at if writer else None

        return {
            "enabled": self.enabled,
            "running": self.running,
            "destination": self.config.destination,
            "enqueued": self._enqueued_count(),
            "written": writer.written if writer else 0,
            "dropped": self._dropped.value,
            "failed": writer.failed if writer else 0,
            "invalid": self._invalid.value,
            "abandoned": self._abandoned,
            "queue_depth": self._queue_depth(),
            "batches": writer.batches if writer else 0,
            "retries": writer.retries if writer else 0,
            "last_flush_at": (
                datetime.fromtimestamp(last_flush, UTC).isoformat()
                if last_flush
                else None
            ),
            "last_error": writer.last_error if writer else None,
            "database_ok": writer.database_ok if writer else None,
            "spooled": self._spool_count("spooled"),
            "replayed": writer.replayed if writer else 0,
            "spool_bytes": self._spool_count("disk_bytes"),
            "spool_corrupt": self._spool_count("corrupt"),
            "spool_dropped": self._spool_count("dropped"),
        }

    # -- internals ------------------------------------------------------------

    def _session_id(self, value: object) -> str | None:
        known = self._known_sessions
        if type(value) is str and value in known:
            return value

        sid = ev.session_id(value)
        if sid is not None and sid is value:
            if len(known) >= _KNOWN_SESSIONS_MAX:
                known.clear()
            known[sid] = None

        return sid

    def _put(self, event: ev.Event) -> None:
        if self._loop is None and not self._closed:
            running = _running_loop()
            if running is not None:
                self._ensure_started(running)

        if self._closed and not self.running:
            self._drop()
            return

        if not self._queue.put(event):
            self._drop()
            return

        # The thread's id, not asyncio's running loop: in Python 3.11 finding
        # the running loop costs a getpid() system call.
        if _thread_id() == self._loop_thread:
            self._enqueued_on_loop += 1
        else:
            self._enqueued_elsewhere.add()

    def _ensure_started(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.running:
            return

        if self._sink is None:
            self._sink = _make_sink(self.config)

        self._loop = loop
        self._loop_thread = _thread_id()
        self._queue.bind(loop)
        if self._writer is None:
            self._writer = Writer(
                self._queue,
                self._sink,
                batch_size=self._batch_size,
                flush_interval=self.config.flush_interval,
                retry_initial_wait=self.config.retry_initial_wait,
                retry_max_wait=self.config.retry_max_wait,
                spool=self._make_spool(),
            )
        self._task = loop.create_task(
            self._supervise(self._writer), name="mbasic-tracking-writer"
        )
        logger.info("usage tracking to %s", self.config.destination)

    async def _supervise(self, writer: Writer) -> None:
        while True:
            try:
                await writer.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("the tracking writer failed; restarting it in 1 s")
                await asyncio.sleep(1.0)

    def _make_spool(self) -> Spool | None:
        if self.config.spool_dir is None:
            return None
        return Spool(self.config.spool_dir, self.config.spool_max_bytes)

    def _spool_count(self, name: str) -> int:
        spool = self._writer.spool if self._writer is not None else None
        return int(getattr(spool, name)) if spool is not None else 0

    def _enqueued_count(self) -> int:
        return self._enqueued_on_loop + self._enqueued_elsewhere.value

    def _queue_depth(self) -> int:
        writer = self._writer
        return len(self._queue) + (writer.in_flight if writer else 0)

    def _drop(self) -> None:
        dropped = self._dropped.add()
        now = time.monotonic()
        if now - self._last_drop_warning >= _DROP_WARNING_EVERY:
            self._last_drop_warning = now
            reason = "the tracker is stopped" if self._closed else "the queue is full"
            logger.warning(
                "dropping tracking events: %s (%d dropped so far)", reason, dropped
            )

    def _internal_error(self) -> None:
        self._invalid.add()
        logger.debug("a tracking call failed inside the tracker", exc_info=True)


def _make_sink(config: TrackingConfig) -> Sink:
    if config.mysql is not None:
        from .sinks.mysql import MySQLSink

        return MySQLSink(
            config.mysql,
            connect_timeout=config.connect_timeout,
            statement_timeout=config.statement_timeout,
        )

    if config.sqlite_path is not None:
        from .sinks.sqlite import SQLiteSink

        return SQLiteSink(
            config.sqlite_path, statement_timeout=config.statement_timeout
        )

    raise RuntimeError("an enabled TrackingConfig always names a destination")


_current: UsageTracker | None = None


def init_usage_tracker(
    config: TrackingConfig | Mapping[str, Any],
    *,
    register_nicegui: bool | None = None,
) -> UsageTracker:
    """Make the process's tracker from a TrackingConfig or the IDE's
    ``usage_tracking`` section, and remember it for ``get_usage_tracker()``.

    Raises ConfigError (a ValueError naming the key) when the config is invalid.
    With ``register_nicegui`` left at None, the tracker's start and drain are
    registered on NiceGUI's app startup and shutdown when NiceGUI is
    importable; True requires it, False skips it.
    """
    global _current

    if not isinstance(config, TrackingConfig):
        config = TrackingConfig.from_dict(config)

    tracker = UsageTracker(config)
    _current = tracker

    if register_nicegui is None:
        register_nicegui = importlib.util.find_spec("nicegui") is not None
    if register_nicegui and tracker.enabled:
        from .nicegui import register_lifecycle

        register_lifecycle(tracker)

    return tracker


def get_usage_tracker() -> UsageTracker | None:
    """The tracker last made by ``init_usage_tracker``, or None."""
    return _current


def _reset_for_tests() -> None:
    global _current
    _current = None
