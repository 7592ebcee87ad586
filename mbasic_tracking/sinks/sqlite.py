"""The embedded SQLite sink, on aiosqlite: the demo's default and local runs.

The same tables as MySQL (``schema/sqlite/``), created on first connect, and the
same batch semantics, since both sinks share ``plan_rows``: a session upsert that
keeps the earliest start, the latest activity and end and the first user agent
and address; event rows keyed by a unique event id, a repeated id a no-op; and
session counters recomputed from ``program_executions``. A batch is one
transaction. The database runs in WAL mode, so a dashboard may read while the
writer writes.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import aiosqlite

from ..events import Event
from ..migrate import migrations
from . import RejectedError, TransientError
from .rows import BatchRows, plan_rows

__all__ = ["SQLiteSink"]

logger = logging.getLogger(__name__)

_IDS_PER_STATEMENT: Final = 500  # well below SQLite's bound-parameter limit

_LEDGER_SQL: Final = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version TEXT NOT NULL PRIMARY KEY,"
    " checksum TEXT NOT NULL,"
    " applied_at TEXT NOT NULL)"
)
_SESSIONS_SQL: Final = (
    "INSERT INTO ide_sessions (session_id, start_time, last_activity, end_time,"
    " duration_seconds, user_agent, ip_address) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (session_id) DO UPDATE SET"
    " start_time = min(start_time, excluded.start_time),"
    " last_activity = max(last_activity, excluded.last_activity),"
    " end_time = CASE WHEN end_time IS NULL THEN excluded.end_time"
    " WHEN excluded.end_time IS NULL THEN end_time"
    " ELSE max(end_time, excluded.end_time) END,"
    " user_agent = coalesce(user_agent, excluded.user_agent),"
    " ip_address = coalesce(ip_address, excluded.ip_address)"
)
# SQLite's UPDATE sees the old row in every expression, so the duration is set
# once start and end have settled. Whole seconds, cut like TIMESTAMPDIFF.
_DURATION_SQL: Final = (
    "UPDATE ide_sessions SET duration_seconds = CASE WHEN end_time IS NULL THEN NULL"
    " ELSE max(0, CAST(round((julianday(end_time) - julianday(start_time))"
    " * 86400000) AS INTEGER) / 1000) END"
    " WHERE session_id IN ({ids})"
)
_PROGRAMS_SQL: Final = (
    "INSERT INTO program_executions (event_id, session_id, timestamp, program_lines,"
    " execution_time_ms, lines_executed, success, error_message)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)
_FEATURES_SQL: Final = (
    "INSERT INTO feature_usage (event_id, session_id, timestamp, feature_name,"
    " feature_data) VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)
_VISITS_SQL: Final = (
    "INSERT INTO page_visits (event_id, timestamp, page_path, referrer, user_agent,"
    " ip_address, session_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (event_id) DO NOTHING"
)
_COUNTERS_SQL: Final = (
    "UPDATE ide_sessions SET"
    " programs_run = (SELECT COUNT(*) FROM program_executions AS p"
    " WHERE p.session_id = ide_sessions.session_id),"
    " lines_executed = (SELECT coalesce(SUM(p.lines_executed), 0)"
    " FROM program_executions AS p WHERE p.session_id = ide_sessions.session_id)"
    " WHERE session_id IN ({ids})"
)


class SQLiteSink:
    """Writes batches to one SQLite file; see the module docstring.

    ``statement_timeout`` bounds a batch, and is also how long a write waits for
    a lock another process holds on the file.
    """

    def __init__(self, path: str | Path, *, statement_timeout: float = 15.0) -> None:
        self._path = Path(path)
        self._statement_timeout = statement_timeout
        self._connection: aiosqlite.Connection | None = None

    @property
    def name(self) -> str:
        return f"sqlite:///{self._path}"

    def __repr__(self) -> str:
        return f"<SQLiteSink {self.name}>"

    async def write(self, batch: Sequence[Event]) -> None:
        """Write ``batch`` in one transaction; see the module docstring."""
        rows = plan_rows(batch)

        try:
            async with asyncio.timeout(self._statement_timeout):
                connection = await self._connect()
                try:
                    await connection.execute("BEGIN IMMEDIATE")
                    await _write_rows(connection, rows)
                    await connection.commit()
                except BaseException:
                    await _rollback(connection)
                    raise
        except asyncio.CancelledError:
            await self._discard()
            raise
        except TimeoutError:
            await self._discard()
            raise TransientError("timed out") from None
        except sqlite3.Error as error:
            raise _classify(error) from error

    async def ping(self) -> bool:
        """Whether the file opens and answers ``SELECT 1``; never raises."""
        try:
            async with asyncio.timeout(self._statement_timeout):
                connection = await self._connect()
                async with connection.execute("SELECT 1") as cursor:
                    row = await cursor.fetchone()
            return row is not None and row[0] == 1
        except Exception:
            return False

    async def close(self) -> None:
        await self._discard()

    # -- internals ------------------------------------------------------------

    async def _connect(self) -> aiosqlite.Connection:
        if self._connection is not None:
            return self._connection

        self._path.parent.mkdir(parents=True, exist_ok=True)
        connection = await aiosqlite.connect(
            self._path, timeout=self._statement_timeout, isolation_level=None
        )
        try:
            await connection.execute("PRAGMA journal_mode = WAL")
            await connection.execute("PRAGMA synchronous = NORMAL")
            await _create_tables(connection)
        except BaseException:
            await connection.close()
            raise

        self._connection = connection
        logger.debug("opened %s", self.name)

        return connection

    async def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.close()
            except Exception:
                logger.debug("closing %s failed", self.name, exc_info=True)


async def _create_tables(connection: aiosqlite.Connection) -> None:
    await connection.execute(_LEDGER_SQL)
    async with connection.execute("SELECT version FROM schema_migrations") as cursor:
        applied = {row[0] for row in await cursor.fetchall()}

    for migration in migrations("sqlite"):
        if migration.version in applied:
            continue

        await connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in migration.statements():
                await connection.execute(statement)
            await connection.execute(
                "INSERT OR IGNORE INTO schema_migrations"
                " (version, checksum, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.checksum, datetime.now(UTC).isoformat()),
            )
            await connection.commit()
        except BaseException:
            await _rollback(connection)
            raise
        logger.info("applied %s to the SQLite tracking database", migration.version)


async def _write_rows(connection: aiosqlite.Connection, rows: BatchRows) -> None:
    if rows.sessions:
        await connection.executemany(
            _SESSIONS_SQL, [session.values() for session in rows.sessions]
        )
        ended = [session.session_id for session in rows.sessions if session.end]
        await _for_ids(connection, _DURATION_SQL, ended)

    for statement, table_rows in (
        (_PROGRAMS_SQL, rows.programs),
        (_FEATURES_SQL, rows.features),
        (_VISITS_SQL, rows.visits),
    ):
        if table_rows:
            await connection.executemany(statement, table_rows)

    await _for_ids(connection, _COUNTERS_SQL, rows.counted_sessions)


async def _for_ids(
    connection: aiosqlite.Connection, template: str, ids: list[str]
) -> None:
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        chunk = ids[start : start + _IDS_PER_STATEMENT]
        placeholders = ", ".join("?" * len(chunk))
        await connection.execute(template.format(ids=placeholders), chunk)


async def _rollback(connection: aiosqlite.Connection) -> None:
    try:
        await connection.rollback()
    except Exception:
        logger.debug("rollback failed", exc_info=True)


def _classify(error: sqlite3.Error) -> TransientError | RejectedError:
    """A value SQLite refuses for good is rejected; locks, I/O and a missing
    table are transient. The text names no row data."""
    text = f"SQLite error: {type(error).__name__}: {str(error)[:200]}"
    if isinstance(error, sqlite3.IntegrityError | sqlite3.DataError):
        return RejectedError(text)

    return TransientError(text)
