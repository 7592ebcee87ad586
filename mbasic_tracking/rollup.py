"""Daily rollups: close sessions left open, then recompute ``daily_usage_summary``.

A run has two steps, under the jobs lock that keeps it apart from a purge:

1. Stale sessions are closed. A session with no ``end_time`` and no activity for
   longer than the idle limit (a pod that crashed, a browser that vanished) gets
   ``end_time = last_activity`` and the matching ``duration_seconds``. A session
   that later reports its real end takes that end instead (the writer keeps the
   latest end).
2. Each UTC day in scope is recomputed from the raw rows and upserted, so running
   twice gives the same rows. Every statement reads one day through an index on
   the day's time column; nothing scans a whole table.

Which days are in scope: with ``since``, every day from it to today. Without it,
the days touched since the last run, found from three marks kept in
``tracking_jobs``: rows whose id is above the last run's highest id (late events
included, whatever their timestamps), sessions that ended or showed activity
after the last run began, and sessions this run closed; plus yesterday and today
always. The first run covers everything from the oldest row. Days before the
purge watermark are never recomputed: their raw rows are gone and their summary
is final.

Note: a session whose only late news is its end, arriving more than a day late
(a spool replayed after a long outage) with no run or visit beside it, changes
its start day's average duration but is not detected; ``--since`` repairs it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from .config import MySQLSettings
from .jobs import JobState, day_bounds, job_cursor, read_job, record_job, server_now

__all__ = ["DaySummary", "RollupResult", "rollup", "summarize_day"]

logger = logging.getLogger(__name__)

JOB: Final = "rollup"
PURGE_JOB: Final = "purge"

_CLOSE_CHUNK: Final = 1_000
_ID_CHUNK: Final = 100_000
# Batches in flight when a run begins carry event times from before it.
_SESSION_MARGIN: Final = timedelta(minutes=10)
_BIGINT_UNSIGNED_MAX: Final = 18_446_744_073_709_551_615

DayCallback = Callable[[date, int, int], None]


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One row of ``daily_usage_summary``, as computed from the raw rows."""

    day: date
    ide_sessions: int
    unique_visitors: int
    page_views: int
    programs_run: int
    total_lines_executed: int
    avg_session_duration_seconds: int | None


@dataclass(frozen=True, slots=True)
class RollupResult:
    """What a run did: sessions closed, days recomputed, days left alone."""

    closed_sessions: int
    days: list[date] = field(default_factory=list)
    skipped_purged: list[date] = field(default_factory=list)


async def rollup(
    settings: MySQLSettings,
    *,
    since: date | None = None,
    idle_minutes: int = 30,
    on_day: DayCallback | None = None,
    lock_wait: float = 60.0,
) -> RollupResult:
    """Close stale sessions, then recompute the daily summary; see the module doc.

    ``on_day(day, done, total)`` is called after each day, for progress display.
    Raises ValueError for an idle limit below one minute, JobBusyError when a
    purge or another rollup keeps the lock, and the driver's errors otherwise
    (the watermark then stays where it was, so the next run covers the same).
    """
    if idle_minutes < 1:
        raise ValueError(f"idle_minutes: {idle_minutes} is too small; at least 1")

    async with job_cursor(settings, lock_wait=lock_wait) as cursor:
        started = await server_now(cursor)
        try:
            result, state = await _run(cursor, started, since, idle_minutes, on_day)
        except Exception as error:
            await record_job(
                cursor,
                JOB,
                started=started,
                outcome=f"failed: {type(error).__name__}",
                state=None,
            )
            raise

        outcome = (
            f"closed {result.closed_sessions} sessions, "
            f"recomputed {len(result.days)} days"
        )
        await record_job(cursor, JOB, started=started, outcome=outcome, state=state)

    logger.info("rollup of %s: %s", settings.redacted_url(), outcome)
    return result


async def _run(
    cursor: Any,
    started: datetime,
    since: date | None,
    idle_minutes: int,
    on_day: DayCallback | None,
) -> tuple[RollupResult, JobState]:
    previous = await read_job(cursor, JOB)
    purge = await read_job(cursor, PURGE_JOB)
    purged_before = purge.watermark.date() if purge and purge.watermark else None
    high = await _high_ids(cursor)

    closed, closed_days = await _close_stale(
        cursor, started - timedelta(minutes=idle_minutes)
    )

    today = started.date()
    days = {today - timedelta(days=1), today} | closed_days
    if since is not None:
        days |= _day_range(since, today)
    elif previous is None:
        oldest = await _oldest_day(cursor)
        days |= _day_range(oldest, today) if oldest else set()
    else:
        days |= await _changed_days(cursor, previous, high, today)

    skipped = sorted(day for day in days if purged_before and day < purged_before)
    scope = sorted(day for day in days if day not in skipped and day <= today)

    for done, day in enumerate(scope, 1):
        await _store(cursor, await summarize_day(cursor, day))
        if on_day is not None:
            on_day(day, done, len(scope))

    state = JobState(started, *high, last_finished_at=None, last_outcome=None)
    return RollupResult(closed, scope, skipped), state


async def summarize_day(cursor: Any, day: date) -> DaySummary:
    """The summary of ``day`` computed from the raw rows (reads, never locks)."""
    start, end = day_bounds(day)

    await cursor.execute(
        "SELECT COUNT(*), COUNT(DISTINCT ip_address),"
        " ROUND(AVG(CASE WHEN end_time IS NOT NULL THEN duration_seconds END))"
        " FROM ide_sessions WHERE start_time >= %s AND start_time < %s",
        (start, end),
    )
    sessions, visitors, average = await cursor.fetchone()

    await cursor.execute(
        "SELECT COUNT(*), COALESCE(SUM(lines_executed), 0) FROM program_executions"
        " WHERE timestamp >= %s AND timestamp < %s",
        (start, end),
    )
    runs, lines = await cursor.fetchone()

    await cursor.execute(
        "SELECT COUNT(*) FROM page_visits WHERE timestamp >= %s AND timestamp < %s",
        (start, end),
    )
    (views,) = await cursor.fetchone()

    return DaySummary(
        day=day,
        ide_sessions=int(sessions),
        unique_visitors=int(visitors),
        page_views=int(views),
        programs_run=int(runs),
        total_lines_executed=min(int(lines), _BIGINT_UNSIGNED_MAX),
        avg_session_duration_seconds=None if average is None else int(average),
    )


async def _store(cursor: Any, summary: DaySummary) -> None:
    # Computed first and written with plain values: an INSERT ... SELECT would
    # take shared locks on the day's rows and stall the writer's inserts.
    await cursor.execute(
        "INSERT INTO daily_usage_summary (date, unique_visitors, page_views,"
        " ide_sessions, programs_run, total_lines_executed,"
        " avg_session_duration_seconds, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(3))"
        " ON DUPLICATE KEY UPDATE unique_visitors = VALUES(unique_visitors),"
        " page_views = VALUES(page_views), ide_sessions = VALUES(ide_sessions),"
        " programs_run = VALUES(programs_run),"
        " total_lines_executed = VALUES(total_lines_executed),"
        " avg_session_duration_seconds = VALUES(avg_session_duration_seconds),"
        " updated_at = VALUES(updated_at)",
        (
            summary.day,
            summary.unique_visitors,
            summary.page_views,
            summary.ide_sessions,
            summary.programs_run,
            summary.total_lines_executed,
            summary.avg_session_duration_seconds,
        ),
    )


async def _close_stale(cursor: Any, idle_since: datetime) -> tuple[int, set[date]]:
    """Close sessions idle since before ``idle_since``, a chunk at a time."""
    closed = 0
    days: set[date] = set()

    while True:
        await cursor.execute(
            "SELECT id, DATE(start_time) FROM ide_sessions"
            " WHERE end_time IS NULL AND last_activity < %s"
            " ORDER BY last_activity LIMIT %s",
            (idle_since, _CLOSE_CHUNK),
        )
        rows = await cursor.fetchall()
        if not rows:
            break

        # The conditions are checked again: the writer may have ended or
        # revived a session since the SELECT.
        ids = [int(row[0]) for row in rows]
        await cursor.execute(
            "UPDATE ide_sessions SET end_time = GREATEST(start_time, last_activity),"
            " duration_seconds = GREATEST(0, TIMESTAMPDIFF(SECOND, start_time,"
            " GREATEST(start_time, last_activity)))"
            " WHERE id IN %s AND end_time IS NULL AND last_activity < %s",
            (ids, idle_since),
        )
        changed = int(cursor.rowcount)
        closed += changed
        days.update(row[1] for row in rows)

        if changed == 0 or len(rows) < _CLOSE_CHUNK:
            break

    if closed:
        logger.info("closed %d sessions idle since before %s", closed, idle_since)

    return closed, days


async def _high_ids(cursor: Any) -> tuple[int, int, int]:
    highs = []
    for table in ("ide_sessions", "program_executions", "page_visits"):
        await cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
        (high,) = await cursor.fetchone()
        highs.append(int(high))

    return highs[0], highs[1], highs[2]


async def _oldest_day(cursor: Any) -> date | None:
    oldest: list[datetime] = []
    for table, column in (
        ("ide_sessions", "start_time"),
        ("program_executions", "timestamp"),
        ("page_visits", "timestamp"),
    ):
        await cursor.execute(f"SELECT MIN({column}) FROM {table}")
        (first,) = await cursor.fetchone()
        if first is not None:
            oldest.append(first)

    return min(oldest).date() if oldest else None


async def _changed_days(
    cursor: Any, previous: JobState, high: tuple[int, int, int], today: date
) -> set[date]:
    """Days touched since ``previous`` ran: new rows by id, and session changes."""
    days: set[date] = set()
    marks = (
        ("ide_sessions", "start_time", previous.max_session_id, high[0]),
        ("program_executions", "timestamp", previous.max_program_id, high[1]),
        ("page_visits", "timestamp", previous.max_visit_id, high[2]),
    )
    for table, column, low, top in marks:
        while low < top:
            chunk_top = min(low + _ID_CHUNK, top)
            await cursor.execute(
                f"SELECT DISTINCT DATE({column}) FROM {table}"
                " WHERE id > %s AND id <= %s",
                (low, chunk_top),
            )
            days.update(row[0] for row in await cursor.fetchall())
            low = chunk_top

    if previous.watermark is not None:
        changed_since = previous.watermark - _SESSION_MARGIN
        for condition in (
            "end_time >= %s",
            "end_time IS NULL AND last_activity >= %s",
        ):
            await cursor.execute(
                f"SELECT DISTINCT DATE(start_time) FROM ide_sessions WHERE {condition}",
                (changed_since,),
            )
            days.update(row[0] for row in await cursor.fetchall())

    return {day for day in days if day is not None and day <= today}


def _day_range(first: date, last: date) -> set[date]:
    count = (last - first).days + 1
    return {first + timedelta(days=offset) for offset in range(max(count, 0))}
