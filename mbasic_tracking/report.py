"""Reports: the daily summary and the recent sessions, for a terminal or a script.

``load_report`` reads what ``mbasic-tracking rollup`` wrote (``daily_usage_summary``)
and the latest sessions straight from ``ide_sessions``; it only reads, so the
read-only dashboard account can run it. The renderers write rich tables, CSV
or JSON. Session rows carry no IP address or user agent: a report is often
pasted where those do not belong.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import IO, Any, Final

from rich.console import Console
from rich.table import Table

from .config import MySQLSettings

__all__ = [
    "DAILY_COLUMNS",
    "SESSION_COLUMNS",
    "Report",
    "load_report",
    "render_csv",
    "render_json",
    "render_table",
]

DAILY_COLUMNS: Final = (
    "date",
    "ide_sessions",
    "unique_visitors",
    "page_views",
    "programs_run",
    "total_lines_executed",
    "avg_session_duration_seconds",
)
SESSION_COLUMNS: Final = (
    "session_id",
    "start_time",
    "end_time",
    "duration_seconds",
    "programs_run",
    "lines_executed",
)


@dataclass(frozen=True, slots=True)
class Report:
    """Rows as plain values (dates, naive UTC datetimes, ints, None)."""

    generated_at: datetime
    first_day: date
    daily: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    last_rollup_at: datetime | None


async def load_report(
    settings: MySQLSettings, *, days: int = 14, sessions: int = 20
) -> Report:
    """Read the last ``days`` UTC days (today included) and the ``sessions``
    most recently started sessions. Raises ValueError for counts out of range."""
    if not 1 <= days <= 3660:
        raise ValueError(f"days: {days} is out of range; 1..3660")
    if not 0 <= sessions <= 10_000:
        raise ValueError(f"sessions: {sessions} is out of range; 0..10000")

    from .sinks.mysql import connect

    connection = await connect(settings, connect_timeout=10.0, autocommit=True)
    try:
        async with connection.cursor() as cursor:
            await cursor.execute("SELECT UTC_TIMESTAMP(3)")
            (now,) = await cursor.fetchone()
            first_day = now.date() - timedelta(days=days - 1)

            await cursor.execute(
                f"SELECT {', '.join(DAILY_COLUMNS)} FROM daily_usage_summary"
                " WHERE date >= %s ORDER BY date DESC",
                (first_day,),
            )
            daily = _records(DAILY_COLUMNS, await cursor.fetchall())

            recent: list[dict[str, Any]] = []
            if sessions:
                await cursor.execute(
                    f"SELECT {', '.join(SESSION_COLUMNS)} FROM ide_sessions"
                    " ORDER BY start_time DESC LIMIT %s",
                    (sessions,),
                )
                recent = _records(SESSION_COLUMNS, await cursor.fetchall())

            await cursor.execute(
                "SELECT MAX(last_finished_at) FROM tracking_jobs"
                " WHERE job = 'rollup' AND watermark IS NOT NULL"
            )
            (last_rollup,) = await cursor.fetchone()
    finally:
        connection.close()

    return Report(now, first_day, daily, recent, last_rollup)


def render_table(report: Report, console: Console) -> None:
    """Two rich tables, and a note when the summary looks stale."""
    daily = Table(title=f"Daily usage since {report.first_day} (UTC)")
    for column in DAILY_COLUMNS:
        if column == "date":
            daily.add_column("date", no_wrap=True)
        else:
            daily.add_column(_heading(column), justify="right")
    for row in report.daily:
        daily.add_row(*(_cell(row[column]) for column in DAILY_COLUMNS))
    console.print(daily)

    if report.last_rollup_at is None:
        console.print(
            "No rollup has run yet: `mbasic-tracking rollup` fills this table."
        )
    else:
        console.print(f"Last rollup: {report.last_rollup_at:%Y-%m-%d %H:%M} UTC")

    if report.sessions:
        recent = Table(title="Recent sessions (UTC)")
        for column in SESSION_COLUMNS:
            if column in ("session_id", "start_time", "end_time"):
                recent.add_column(_heading(column), no_wrap=True)
            else:
                recent.add_column(_heading(column), justify="right")
        for row in report.sessions:
            recent.add_row(*(_cell(row[column]) for column in SESSION_COLUMNS))
        console.print(recent)


def render_csv(report: Report, out: IO[str]) -> None:
    """The daily rows as CSV with a header; then, after one empty line, the
    sessions the same way (none when the report has no sessions)."""
    _write_csv(out, DAILY_COLUMNS, report.daily)
    if report.sessions:
        out.write("\n")
        _write_csv(out, SESSION_COLUMNS, report.sessions)


def render_json(report: Report, out: IO[str]) -> None:
    """One JSON object: ``generated_at``, ``last_rollup_at``, ``daily`` and
    ``sessions``; times in ISO 8601 with a UTC offset, dates as YYYY-MM-DD."""
    document = {
        "generated_at": _plain(report.generated_at),
        "last_rollup_at": _plain(report.last_rollup_at),
        "first_day": _plain(report.first_day),
        "daily": [_plain_row(row) for row in report.daily],
        "sessions": [_plain_row(row) for row in report.sessions],
    }
    json.dump(document, out, indent=2)
    out.write("\n")


def _records(columns: tuple[str, ...], rows: Any) -> list[dict[str, Any]]:
    return [
        {name: _number(value) for name, value in zip(columns, row, strict=True)}
        for row in rows
    ]


def _number(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _write_csv(
    out: IO[str], columns: tuple[str, ...], rows: list[dict[str, Any]]
) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row[c] is None else _plain(row[c]) for c in columns])


def _plain_row(row: dict[str, Any]) -> dict[str, Any]:
    return {name: _plain(value) for name, value in row.items()}


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC).isoformat(timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _heading(column: str) -> str:
    return column.replace("_", " ")
