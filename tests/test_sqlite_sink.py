"""The SQLite sink: its tables, its batch semantics, and agreement with MySQL."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mbasic_tracking import MySQLSettings, TrackingConfig, UsageTracker
from mbasic_tracking.events import (
    Event,
    feature_use,
    page_visit,
    program_run,
    session_activity,
    session_end,
    session_start,
)
from mbasic_tracking.migrate import migrations
from mbasic_tracking.sinks import RejectedError, TransientError
from mbasic_tracking.sinks.mysql import MySQLSink
from mbasic_tracking.sinks.sqlite import SQLiteSink
from tests.conftest import query

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC

# Batches whose meaning the sinks must agree on: a run before its session's
# start, a start and an end out of order across batches, a repeated batch
# (unknown commit outcome), activity, features with JSON, a page visit.
BATCHES: list[list[Event]] = [
    [program_run(10, T0 + 60, "late", 4, 3, 12, True, None)],
    [
        session_start(1, T0 + 5, "s1", "Firefox", "203.0.113.0"),
        program_run(2, T0 + 10, "s1", 5, 7, 10, True, None),
        program_run(3, T0 + 20, "s1", 6, 9, 32, False, "line 20: division by zero"),
        feature_use(4, T0 + 30, "s1", "renumber", '{"lines": 5}'),
        session_activity(5, T0 + 40, "s1"),
        page_visit(6, T0 + 1, "/", "https://example.org/", "Firefox", None, "s1"),
    ],
    [
        session_start(9, T0, "late", "Chromium", None),
        session_end(11, T0 + 125.5, "late"),
        session_start(12, T0 + 2, "s1", "Other", "198.51.100.0"),
    ],
    [session_end(7, T0 + 95, "s1"), session_end(8, T0 + 80, "s1")],
]


def expected_tables() -> dict[str, list[tuple[Any, ...]]]:
    """What the batches above must leave, in either database."""
    return {
        "ide_sessions": [
            (
                "late",
                "2026-01-01 00:00:00.000",
                "2026-01-01 00:02:05.500",
                "2026-01-01 00:02:05.500",
                125,
                1,
                12,
                "Chromium",
                None,
            ),
            (
                "s1",
                "2026-01-01 00:00:02.000",
                "2026-01-01 00:01:35.000",
                "2026-01-01 00:01:35.000",
                93,
                2,
                42,
                "Firefox",
                "203.0.113.0",
            ),
        ],
        "program_executions": [
            (2, "s1", 5, 7, 10, 1, None),
            (3, "s1", 6, 9, 32, 0, "line 20: division by zero"),
            (10, "late", 4, 3, 12, 1, None),
        ],
        "feature_usage": [(4, "s1", "renumber", '{"lines": 5}')],
        "page_visits": [(6, "/", "https://example.org/", "Firefox", None, "s1")],
    }


_READS = {
    "ide_sessions": "SELECT session_id, start_time, last_activity, end_time,"
    " duration_seconds, programs_run, lines_executed, user_agent, ip_address"
    " FROM ide_sessions ORDER BY session_id",
    "program_executions": "SELECT event_id, session_id, program_lines,"
    " execution_time_ms, lines_executed, success, error_message"
    " FROM program_executions ORDER BY event_id",
    "feature_usage": "SELECT event_id, session_id, feature_name, feature_data"
    " FROM feature_usage ORDER BY event_id",
    "page_visits": "SELECT event_id, page_path, referrer, user_agent, ip_address,"
    " session_id FROM page_visits ORDER BY event_id",
}


def _plain(value: Any) -> Any:
    """One spelling for both databases: times as text, event ids as ints."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    return value


def read_sqlite(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with closing(sqlite3.connect(path)) as connection:
        return {
            table: [tuple(map(_plain, row)) for row in connection.execute(sql)]
            for table, sql in _READS.items()
        }


def read_mysql(settings: MySQLSettings) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: [tuple(map(_plain, row)) for row in query(settings, sql)]
        for table, sql in _READS.items()
    }


async def write_all(sink: Any, batches: Sequence[Sequence[Event]]) -> None:
    for batch in batches:
        await sink.write(batch)
    await sink.write(batches[1])  # the same batch again: nothing may change
    await sink.close()


async def test_sqlite_and_mysql_agree_on_batch_semantics(
    database: MySQLSettings, tmp_path: Path
) -> None:
    """The same batches leave the same rows in SQLite and in MySQL: earliest
    start, latest activity and end, first user agent and address, counters
    recomputed, each event once."""
    path = tmp_path / "usage.db"

    await write_all(SQLiteSink(path), BATCHES)
    await write_all(MySQLSink(database), BATCHES)

    assert read_sqlite(path) == expected_tables()
    assert read_mysql(database) == expected_tables()


async def test_tables_are_created_on_first_connect(tmp_path: Path) -> None:
    """A new file gets every schema file applied and recorded; a second sink on
    the same file applies nothing again."""
    path = tmp_path / "nested" / "usage.db"
    first = SQLiteSink(path)

    assert await first.ping()
    await first.close()
    second = SQLiteSink(path)
    await second.write([session_start(1, T0, "s", None, None)])
    await second.close()

    with closing(sqlite3.connect(path)) as connection:
        versions = [
            row[0]
            for row in connection.execute("SELECT version FROM schema_migrations")
        ]
        views = {
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'view'"
            )
        }
        sessions = connection.execute("SELECT COUNT(*) FROM ide_sessions").fetchone()[0]
    assert versions == [migration.version for migration in migrations("sqlite")]
    assert "session_summary" in views
    assert sessions == 1


async def test_a_refused_row_rejects_the_whole_transaction(tmp_path: Path) -> None:
    """A value SQLite will never take raises RejectedError and leaves nothing of
    its batch behind, so the writer can isolate the row."""
    sink = SQLiteSink(tmp_path / "usage.db")
    bad = feature_use(2, T0, "s", None, None)  # type: ignore[arg-type]  # NOT NULL column

    with pytest.raises(RejectedError):
        await sink.write([session_start(1, T0, "s", None, None), bad])
    await sink.write([session_start(3, T0, "t", None, None)])
    await sink.close()

    with closing(sqlite3.connect(tmp_path / "usage.db")) as connection:
        sessions = [
            row[0] for row in connection.execute("SELECT session_id FROM ide_sessions")
        ]
    assert sessions == ["t"]


async def test_a_locked_file_is_a_transient_error(tmp_path: Path) -> None:
    """Another process holding the write lock makes the batch wait, then fail as
    transient; it lands once the lock is gone."""
    path = tmp_path / "usage.db"
    sink = SQLiteSink(path, statement_timeout=0.3)
    assert await sink.ping()
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")

    with pytest.raises(TransientError):
        await sink.write([session_start(1, T0, "s", None, None)])
    locker.execute("ROLLBACK")
    locker.close()
    await sink.write([session_start(1, T0, "s", None, None)])
    await sink.close()

    with closing(sqlite3.connect(path)) as connection:
        assert (
            connection.execute("SELECT COUNT(*) FROM ide_sessions").fetchone()[0] == 1
        )


async def test_ping_is_false_where_no_file_can_be(tmp_path: Path) -> None:
    """A path under a regular file cannot be opened; ping says so, never raises."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    sink = SQLiteSink(blocker / "usage.db")

    assert await sink.ping() is False
    await sink.close()


async def test_tracker_writes_to_sqlite_from_loop_and_threads(tmp_path: Path) -> None:
    """Through the tracker: calls from the loop and from worker threads all land,
    with exact counters."""
    path = tmp_path / "usage.db"
    tracker = UsageTracker(
        TrackingConfig.from_url(f"sqlite:///{path}", flush_interval=0.05, batch_size=50)
    )
    tracker.start_ide_session("loop", "ua", "203.0.113.77")

    def worker(index: int) -> None:
        for _ in range(100):
            tracker.track_program_execution("loop", 3, 1, 2, True)
        tracker.track_feature_usage(f"thread-{index}", "run", {"index": index})

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        await asyncio.to_thread(thread.join)
    tracker.end_ide_session("loop")
    await tracker.stop(timeout=10)

    assert tracker.stats()["written"] == 1 + 400 + 4 + 1
    with closing(sqlite3.connect(path)) as connection:
        session = connection.execute(
            "SELECT programs_run, lines_executed, ip_address, end_time IS NOT NULL"
            " FROM ide_sessions WHERE session_id = 'loop'"
        ).fetchone()
        features = connection.execute("SELECT COUNT(*) FROM feature_usage").fetchone()[
            0
        ]
    assert session == (400, 800, "203.0.113.0", 1)
    assert features == 4
