"""What the operator's jobs (rollup, purge) share.

One named server lock serializes them: a purge deleting a day while a rollup
recomputes it would write a summary of half a day. Their bookkeeping lives in
the ``tracking_jobs`` table (``schema/mysql/0002_jobs.sql``). Times are the
server's: the jobs compare them with times the writer stored, and the
connection's time zone is UTC. Datetimes here are naive and UTC, as the driver
returns DATETIME columns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from .config import MySQLSettings

__all__ = [
    "JobBusyError",
    "JobState",
    "day_bounds",
    "job_cursor",
    "read_job",
    "record_job",
    "server_now",
]

_LOCK_NAME: Final = "mbasic_tracking.jobs"


class JobBusyError(RuntimeError):
    """Another rollup or purge holds the jobs lock on this database."""


@dataclass(frozen=True, slots=True)
class JobState:
    """A job's row in ``tracking_jobs``; see the schema file for the meanings."""

    watermark: datetime | None
    max_session_id: int
    max_program_id: int
    max_visit_id: int
    last_finished_at: datetime | None
    last_outcome: str | None


@asynccontextmanager
async def job_cursor(
    settings: MySQLSettings, *, lock_wait: float = 60.0, connect_timeout: float = 10.0
) -> AsyncIterator[Any]:
    """An autocommit cursor holding the jobs lock; the lock is released on exit.

    Raises JobBusyError when another job keeps the lock for ``lock_wait``
    seconds. The lock is per database, so jobs on two databases of one server
    do not wait for each other.
    """
    from .sinks.mysql import connect

    connection = await connect(
        settings, connect_timeout=connect_timeout, autocommit=True
    )
    lock = f"{_LOCK_NAME}.{settings.database}"[:64]  # the server's limit
    try:
        async with connection.cursor() as cursor:
            await cursor.execute("SELECT GET_LOCK(%s, %s)", (lock, lock_wait))
            (locked,) = await cursor.fetchone()
            if locked != 1:
                raise JobBusyError(
                    f"another rollup or purge has been running on "
                    f"{settings.database} for over {lock_wait:g} s; try again later"
                )
            try:
                yield cursor
            finally:
                await cursor.execute("SELECT RELEASE_LOCK(%s)", (lock,))
    finally:
        connection.close()


async def server_now(cursor: Any) -> datetime:
    """The server's UTC time, to the millisecond."""
    await cursor.execute("SELECT UTC_TIMESTAMP(3)")
    (now,) = await cursor.fetchone()
    return now  # type: ignore[no-any-return]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The first instant of ``day`` and of the day after (UTC)."""
    start = datetime.combine(day, time())
    return start, start + timedelta(days=1)


async def read_job(cursor: Any, job: str) -> JobState | None:
    """The job's bookkeeping row, or None before its first run."""
    await cursor.execute(
        "SELECT watermark, max_session_id, max_program_id, max_visit_id,"
        " last_finished_at, last_outcome FROM tracking_jobs WHERE job = %s",
        (job,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None

    return JobState(row[0], int(row[1]), int(row[2]), int(row[3]), row[4], row[5])


async def record_job(
    cursor: Any,
    job: str,
    *,
    started: datetime,
    outcome: str,
    state: JobState | None,
) -> None:
    """Write the job's row: its last run, and (when given) its new ``state``.

    With ``state`` None only the run's times and outcome change: a failed run
    must not move a watermark.
    """
    outcome = outcome[:255]
    if state is None:
        await cursor.execute(
            "INSERT INTO tracking_jobs (job, last_started_at, last_finished_at,"
            " last_outcome) VALUES (%s, %s, UTC_TIMESTAMP(3), %s)"
            " ON DUPLICATE KEY UPDATE last_started_at = VALUES(last_started_at),"
            " last_finished_at = VALUES(last_finished_at),"
            " last_outcome = VALUES(last_outcome)",
            (job, started, outcome),
        )
        return

    await cursor.execute(
        "INSERT INTO tracking_jobs (job, watermark, max_session_id, max_program_id,"
        " max_visit_id, last_started_at, last_finished_at, last_outcome)"
        " VALUES (%s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(3), %s)"
        " ON DUPLICATE KEY UPDATE watermark = VALUES(watermark),"
        " max_session_id = VALUES(max_session_id),"
        " max_program_id = VALUES(max_program_id),"
        " max_visit_id = VALUES(max_visit_id),"
        " last_started_at = VALUES(last_started_at),"
        " last_finished_at = VALUES(last_finished_at),"
        " last_outcome = VALUES(last_outcome)",
        (
            job,
            state.watermark,
            state.max_session_id,
            state.max_program_id,
            state.max_visit_id,
            started,
            outcome,
        ),
    )
