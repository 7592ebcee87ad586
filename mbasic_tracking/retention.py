"""Retention: delete raw event rows older than a number of days, safely.

``purge`` deletes whole UTC days: every row of ``program_executions``,
``feature_usage`` and ``page_visits`` whose ``timestamp`` is before the cutoff
(midnight, ``older_than_days`` before today), and every ``ide_sessions`` row that
started and ended before it. ``daily_usage_summary`` is never touched: it is
what remains of those days.

Before deleting anything it checks that each day it would delete is rolled up:
the day has a summary row, and no raw count (sessions, runs, page views) exceeds
what that row counted. More raw rows than summarized means rows the summary
never saw (a late event, a rollup that never ran): purge refuses, names the
days, says which rollup fixes them, and deletes nothing. Fewer raw rows than
summarized means rows already removed (a partition dropped, a purge cut short),
which loses nothing more. Days before the previous purge's
cutoff are exempt: their summary is final, and rows found there are late events
(a replayed spool) that are deleted uncounted, with a warning.

Deletes run in chunks of ``chunk_size`` rows, each its own short transaction,
oldest first through the time index, so no statement holds locks for long, and
the writer's inserts, at the other end of that index, do not wait on them.

Sessions that started before the cutoff but had not ended by it are kept. Their
``programs_run`` and ``lines_executed`` still count the runs that were deleted,
until a late event for the session arrives: the writer then recomputes both
from the ``program_executions`` rows that are left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from .config import MySQLSettings
from .jobs import JobState, day_bounds, job_cursor, read_job, record_job, server_now

__all__ = ["DayGap", "NotRolledUpError", "PurgeResult", "purge"]

logger = logging.getLogger(__name__)

JOB: Final = "purge"

# (table, time column, extra condition): what purge deletes, in this order.
_TARGETS: Final = (
    ("program_executions", "timestamp", ""),
    ("feature_usage", "timestamp", ""),
    ("page_visits", "timestamp", ""),
    ("ide_sessions", "start_time", " AND end_time < %(cutoff)s"),
)

ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class DayGap:
    """A day that purge would delete but that is not (fully) rolled up."""

    day: date
    reason: str


class NotRolledUpError(RuntimeError):
    """Purge refused: some days it would delete are not rolled up."""

    def __init__(self, gaps: list[DayGap]) -> None:
        self.gaps = gaps
        shown = "; ".join(f"{gap.day}: {gap.reason}" for gap in gaps[:10])
        more = f" (and {len(gaps) - 10} more days)" if len(gaps) > 10 else ""
        super().__init__(
            f"refusing to purge: {len(gaps)} days are not rolled up, and deleting "
            f"their raw rows would lose them for good. {shown}{more}. Run "
            f"`mbasic-tracking rollup --since {gaps[0].day}`, then purge again."
        )


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What a purge did (or, with ``dry_run``, would do)."""

    cutoff: datetime
    deleted: dict[str, int] = field(default_factory=dict)
    late_rows: int = 0
    dry_run: bool = False


async def purge(
    settings: MySQLSettings,
    *,
    older_than_days: int = 180,
    chunk_size: int = 5_000,
    dry_run: bool = False,
    on_progress: ProgressCallback | None = None,
    lock_wait: float = 60.0,
) -> PurgeResult:
    """Delete raw rows of whole days older than ``older_than_days``.

    See the module docstring. ``on_progress(table, deleted_so_far)`` is called
    after each chunk. Raises ValueError for arguments out of range,
    NotRolledUpError (nothing deleted) when a day is not rolled up, and
    JobBusyError when a rollup or another purge keeps the lock.
    """
    if older_than_days < 1:
        raise ValueError(f"older_than_days: {older_than_days} is too small; >= 1")
    if not 1 <= chunk_size <= 100_000:
        raise ValueError(f"chunk_size: {chunk_size} is out of range; 1..100000")

    async with job_cursor(settings, lock_wait=lock_wait) as cursor:
        started = await server_now(cursor)
        cutoff, _ = day_bounds(started.date() - timedelta(days=older_than_days))
        previous = await read_job(cursor, JOB)
        exempt_before = previous.watermark if previous else None

        gaps, late = await _check_rolled_up(cursor, cutoff, exempt_before)
        if gaps:
            await record_job(
                cursor, JOB, started=started, outcome="refused", state=None
            )
            raise NotRolledUpError(gaps)

        if dry_run:
            counts = await _count(cursor, cutoff)
            return PurgeResult(cutoff, counts, late, dry_run=True)

        # The watermark moves first: from here on rollup leaves these days alone,
        # even if this run stops halfway.
        watermark = max(cutoff, exempt_before) if exempt_before else cutoff
        await record_job(
            cursor, JOB, started=started, outcome="deleting", state=_state(watermark)
        )
        await cursor.execute("SET SESSION innodb_lock_wait_timeout = 10")

        deleted: dict[str, int] = {}
        for table, column, extra in _TARGETS:
            deleted[table] = await _delete(
                cursor, table, column, extra, cutoff, chunk_size, on_progress
            )

        outcome = f"deleted {sum(deleted.values())} rows before {cutoff:%Y-%m-%d}"
        await record_job(
            cursor, JOB, started=started, outcome=outcome, state=_state(watermark)
        )

    if late:
        logger.warning(
            "deleted %d late rows of days purged before; the summary of those "
            "days does not count them",
            late,
        )
    logger.info("purge of %s: %s", settings.redacted_url(), outcome)
    return PurgeResult(cutoff, deleted, late)


async def _check_rolled_up(
    cursor: Any, cutoff: datetime, exempt_before: datetime | None
) -> tuple[list[DayGap], int]:
    """Days before ``cutoff`` with raw rows their summary did not count, and
    the number of late event rows before ``exempt_before``."""
    first = await _oldest(cursor)
    if first is None or first >= cutoff:
        return [], 0

    late = 0
    if exempt_before is not None:
        counts = await _count(cursor, exempt_before)
        late = sum(n for table, n in counts.items() if table != "ide_sessions")
        first = max(first, exempt_before)

    gaps: list[DayGap] = []
    day = first.date()
    while day < cutoff.date():
        raw = await _raw_counts(cursor, day)
        if any(raw):
            gap = await _compare(cursor, day, raw)
            if gap is not None:
                gaps.append(gap)
        day += timedelta(days=1)

    return gaps, late


async def _compare(
    cursor: Any, day: date, raw: tuple[int, int, int, int]
) -> DayGap | None:
    await cursor.execute(
        "SELECT ide_sessions, programs_run, page_views FROM daily_usage_summary"
        " WHERE date = %s",
        (day,),
    )
    row = await cursor.fetchone()
    if row is None:
        return DayGap(day, "never rolled up")

    names = ("sessions", "program runs", "page views")
    for name, summarized, counted in zip(names, row, raw[:3], strict=True):
        if counted > int(summarized):
            return DayGap(
                day, f"the summary counts {summarized} {name}, the raw rows {counted}"
            )

    return None


async def _raw_counts(cursor: Any, day: date) -> tuple[int, int, int, int]:
    """(sessions started, program runs, page views, feature uses) on ``day``."""
    start, end = day_bounds(day)
    counts = []
    for table, column in (
        ("ide_sessions", "start_time"),
        ("program_executions", "timestamp"),
        ("page_visits", "timestamp"),
        ("feature_usage", "timestamp"),
    ):
        await cursor.execute(
            f"SELECT COUNT(*) FROM {table} WHERE {column} >= %s AND {column} < %s",
            (start, end),
        )
        (count,) = await cursor.fetchone()
        counts.append(int(count))

    return counts[0], counts[1], counts[2], counts[3]


async def _oldest(cursor: Any) -> datetime | None:
    found = []
    for table, column, _ in _TARGETS:
        await cursor.execute(f"SELECT MIN({column}) FROM {table}")
        (first,) = await cursor.fetchone()
        if first is not None:
            found.append(first)

    return min(found) if found else None


async def _count(cursor: Any, cutoff: datetime) -> dict[str, int]:
    counts = {}
    for table, column, extra in _TARGETS:
        await cursor.execute(
            f"SELECT COUNT(*) FROM {table} WHERE {column} < %(cutoff)s{extra}",
            {"cutoff": cutoff},
        )
        (count,) = await cursor.fetchone()
        counts[table] = int(count)

    return counts


async def _delete(
    cursor: Any,
    table: str,
    column: str,
    extra: str,
    cutoff: datetime,
    chunk_size: int,
    on_progress: ProgressCallback | None,
) -> int:
    deleted = 0
    while True:
        await cursor.execute(
            f"DELETE FROM {table} WHERE {column} < %(cutoff)s{extra}"
            f" ORDER BY {column} LIMIT %(limit)s",
            {"cutoff": cutoff, "limit": chunk_size},
        )
        removed = int(cursor.rowcount)
        deleted += removed
        if on_progress is not None:
            on_progress(table, deleted)
        if removed < chunk_size:
            return deleted


def _state(watermark: datetime) -> JobState:
    return JobState(watermark, 0, 0, 0, last_finished_at=None, last_outcome=None)
