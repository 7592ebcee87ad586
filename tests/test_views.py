"""Dashboard views, and the seed document's queries run unchanged."""

from __future__ import annotations

import sqlite3
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from mbasic_tracking import MySQLSettings
from mbasic_tracking.events import Event
from mbasic_tracking.rollup import rollup
from mbasic_tracking.sinks.sqlite import SQLiteSink
from tests.conftest import query
from tests.helpers.usage_rows import (
    activity,
    at,
    day,
    end,
    feature,
    run,
    start,
    visit,
    write,
)

# Copied character for character from the seed document ("Usage Queries").
SEED_DAILY = "SELECT * FROM session_summary ORDER BY date DESC LIMIT 30;"
SEED_RECENT_SESSIONS = """SELECT
    DATE_FORMAT(start_time, '%Y-%m-%d %H:%i') as started,
    CONCAT(FLOOR(duration_seconds/60), 'm ', duration_seconds%60, 's') as duration,
    programs_run,
    lines_executed
FROM ide_sessions
WHERE end_time IS NOT NULL
ORDER BY start_time DESC
LIMIT 20;"""
SEED_PAGE_VISITS = """SELECT
    page_path,
    COUNT(*) as visits,
    COUNT(DISTINCT ip_address) as unique_ips,
    DATE(timestamp) as date
FROM page_visits
WHERE timestamp >= CURDATE() - INTERVAL 7 DAY
GROUP BY page_path, DATE(timestamp)
ORDER BY date DESC, visits DESC;"""

X, Y = "198.51.100.0", "203.0.113.0"
FAILED = "Syntax error in 10"


def usage() -> list[Event]:
    """Two days of IDE use, and one page visit outside the last week."""
    return [
        start(at(-2, "10:00:00"), "a", ip=X),
        run(at(-2, "10:01:00"), "a", lines=3),
        run(at(-2, "10:01:30"), "a", lines=4, success=False, error=FAILED),
        feature(at(-2, "10:01:40"), "a", "debugger"),
        feature(at(-2, "10:01:50"), "a", "debugger"),
        feature(at(-2, "10:01:55"), "a", "compiler"),
        end(at(-2, "10:02:05"), "a"),
        start(at(-1, "14:00:00"), "b", ip=Y),
        run(at(-1, "14:00:30"), "b", lines=100, success=False, error=FAILED),
        feature(at(-1, "14:00:40"), "b", "debugger"),
        end(at(-1, "14:00:59"), "b"),
        start(at(-1, "15:00:00"), "c", ip=X),
        activity(at(-1, "15:00:05"), "c"),
        visit(at(-2, "09:00:00"), "/", ip=X),
        visit(at(-1, "09:00:00"), "/", ip=X),
        visit(at(-1, "09:30:00"), "/", ip=Y),
        visit(at(-1, "09:40:00"), "/docs", ip=X),
        visit(at(-10, "09:00:00"), "/", ip=X),
    ]


def plain(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows with DECIMAL sums as int or float and SQLite's date text as dates."""

    def value(item: Any) -> Any:
        if isinstance(item, Decimal):
            return int(item) if item == item.to_integral_value() else float(item)
        if isinstance(item, str) and len(item) == 10 and item[4] == "-":
            return date.fromisoformat(item)
        return item

    return [tuple(value(item) for item in row) for row in rows]


async def test_the_seed_documents_queries_run_unchanged(
    database: MySQLSettings,
) -> None:
    """The three dashboard queries of the original design return the right rows."""
    await write(database, usage())

    assert plain(query(database, SEED_DAILY)) == [
        (day(-1), 2, 1, 59, 1, 100, 2),
        (day(-2), 1, 1, 125, 2, 7, 1),
    ]
    assert query(database, SEED_RECENT_SESSIONS) == [
        (f"{day(-1)} 14:00", "0m 59s", 1, 100),
        (f"{day(-2)} 10:00", "2m 5s", 2, 7),
    ]
    assert query(database, SEED_PAGE_VISITS) == [
        ("/", 2, 2, day(-1)),
        ("/docs", 1, 1, day(-1)),
        ("/", 1, 1, day(-2)),
    ]


async def test_views_show_daily_usage_features_and_errors(
    database: MySQLSettings,
) -> None:
    """daily_usage, feature_popularity, error_rates and common_errors hold the
    right numbers for each day."""
    await write(database, usage())
    await rollup(database, since=day(-2))

    assert plain(
        query(
            database,
            "SELECT date, ide_sessions, unique_visitors, page_views, programs_run,"
            " total_lines_executed, avg_session_duration_seconds,"
            " programs_per_session FROM daily_usage WHERE date >= %s ORDER BY date",
            day(-2),
        )
    ) == [
        (day(-2), 1, 1, 1, 2, 7, 125, 2),
        # c was closed by the rollup after 5 s: (59 + 5) / 2.
        (day(-1), 2, 2, 3, 1, 100, 32, 0.5),
        (day(0), 0, 0, 0, 0, 0, None, None),
    ]
    check_raw_views(lambda sql: plain(query(database, sql)))


def test_sqlite_has_the_same_views(tmp_path: Path) -> None:
    """The SQLite schema (the demo's) has the same views with the same results."""
    import asyncio

    path = tmp_path / "usage.db"

    async def fill() -> None:
        sink = SQLiteSink(path)
        await sink.write(usage())
        await sink.close()

    asyncio.run(fill())
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO daily_usage_summary (date, ide_sessions, programs_run,"
            " updated_at) VALUES ('2026-01-02', 4, 6, '2026-01-03 00:00:00.000')"
        )

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return plain(connection.execute(sql).fetchall())

        assert rows(
            "SELECT date, ide_sessions, programs_run, programs_per_session"
            " FROM daily_usage"
        ) == [(date(2026, 1, 2), 4, 6, 1.5)]
        check_raw_views(rows)
    connection.close()


def check_raw_views(rows: Any) -> None:
    """The views over raw rows, for the data of ``usage()``."""
    assert rows(
        "SELECT date, feature_name, uses, sessions FROM feature_popularity"
        " ORDER BY date, uses DESC"
    ) == [
        (day(-2), "debugger", 2, 1),
        (day(-2), "compiler", 1, 1),
        (day(-1), "debugger", 1, 1),
    ]
    assert rows(
        "SELECT date, programs_run, failed, outcome_unknown, error_rate_percent"
        " FROM error_rates ORDER BY date"
    ) == [(day(-2), 2, 1, 0, 50), (day(-1), 1, 1, 0, 100)]
    assert rows(
        "SELECT date, error_message, occurrences, sessions FROM common_errors"
        " ORDER BY date"
    ) == [(day(-2), FAILED, 1, 1), (day(-1), FAILED, 1, 1)]
