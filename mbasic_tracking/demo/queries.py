"""The usage page's queries, one text for MySQL and SQLite alike.

Only what both dialects spell the same way: ``DATE()``, ``COUNT``, ``AVG``,
``SUM``, comparisons of the stored UTC time text ``YYYY-MM-DD HH:MM:SS.fff``
with a string. Each call opens a connection, reads, and closes it: the page
refreshes every few seconds, and the tracker's own connection stays its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from ..config import TrackingConfig

__all__ = ["DayUsage", "UsageQueries"]

_DAILY_SESSIONS_SQL: Final = (
    "SELECT DATE(start_time), COUNT(*), AVG(duration_seconds)"
    " FROM ide_sessions WHERE start_time >= {p} GROUP BY DATE(start_time)"
)
_DAILY_RUNS_SQL: Final = (
    "SELECT DATE(timestamp), COUNT(*) FROM program_executions"
    " WHERE timestamp >= {p} GROUP BY DATE(timestamp)"
)
_RECENT_SQL: Final = (
    "SELECT session_id, start_time, end_time, duration_seconds, programs_run,"
    " lines_executed FROM ide_sessions ORDER BY start_time DESC LIMIT {p}"
)


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One UTC day: sessions started, programs run, average session seconds."""

    day: date
    sessions: int
    programs: int
    average_seconds: float | None


class UsageQueries:
    """Reads the dashboard's figures from the tracker's database."""

    def __init__(self, config: TrackingConfig, *, timeout: float = 5.0) -> None:
        self._config = config
        self._timeout = timeout

    async def daily(self, days: int = 30) -> list[DayUsage]:
        """One entry per day of the last ``days`` UTC days, oldest first,
        days without sessions included."""
        first = datetime.now(UTC).date() - timedelta(days=days - 1)
        since = f"{first.isoformat()} 00:00:00.000"
        sessions, runs = await self._read(
            (_DAILY_SESSIONS_SQL, (since,)), (_DAILY_RUNS_SQL, (since,))
        )

        by_day = {_day(row[0]): row for row in sessions}
        runs_by_day = {_day(row[0]): int(row[1]) for row in runs}
        result = []
        for offset in range(days):
            day = first + timedelta(days=offset)
            row = by_day.get(day)
            average = None if row is None or row[2] is None else float(row[2])
            result.append(
                DayUsage(
                    day=day,
                    sessions=0 if row is None else int(row[1]),
                    programs=runs_by_day.get(day, 0),
                    average_seconds=average,
                )
            )

        return result

    async def recent_sessions(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest sessions, newest first, as table rows."""
        (rows,) = await self._read((_RECENT_SQL, (limit,)))

        return [
            {
                "session": str(row[0])[:8],
                "started": _minute(row[1]),
                "ended": _minute(row[2]) if row[2] is not None else "open",
                "seconds": row[3],
                "programs": int(row[4]),
                "lines": int(row[5]),
            }
            for row in rows
        ]

    async def _read(self, *queries: tuple[str, tuple[Any, ...]]) -> list[list[Any]]:
        async with asyncio.timeout(self._timeout):
            if self._config.mysql is not None:
                return await self._read_mysql(queries)
            return await self._read_sqlite(queries)

    async def _read_mysql(
        self, queries: tuple[tuple[str, tuple[Any, ...]], ...]
    ) -> list[list[Any]]:
        from ..sinks.mysql import connect

        settings = self._config.mysql
        if settings is None:
            raise RuntimeError("no MySQL settings")
        connection = await connect(
            settings, connect_timeout=self._timeout, autocommit=True
        )
        try:
            results = []
            async with connection.cursor() as cursor:
                for sql, args in queries:
                    await cursor.execute(sql.format(p="%s"), args)
                    results.append(list(await cursor.fetchall()))
            return results
        finally:
            connection.close()

    async def _read_sqlite(
        self, queries: tuple[tuple[str, tuple[Any, ...]], ...]
    ) -> list[list[Any]]:
        import aiosqlite

        path = self._config.sqlite_path
        if path is None:
            raise RuntimeError("no SQLite path")
        async with aiosqlite.connect(path) as connection:
            results = []
            for sql, args in queries:
                async with connection.execute(sql.format(p="?"), args) as cursor:
                    results.append(list(await cursor.fetchall()))
            return results


def _day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _minute(value: object) -> str:
    return str(value)[:16]
