"""The MySQL sink's batch semantics, driven with hand-made events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

import pytest

from mbasic_tracking import MySQLSettings, TrackingConfig, UsageTracker
from mbasic_tracking.events import (
    Event,
    feature_use,
    program_run,
    session_end,
    session_start,
)
from mbasic_tracking.sinks.mysql import (
    _PROGRAMS_SQL,
    MySQLSink,
    _program_row_renderer,
    _quoter,
)
from mbasic_tracking.sinks.rows import plan_rows
from tests.conftest import query, scalar

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


def run(event_id: int, at: float, session: str = "s", lines: int = 10) -> Event:
    """A successful five-line program run."""
    return program_run(event_id, at, session, 5, 7, lines, True, None)


async def test_a_repeated_batch_changes_nothing(database: MySQLSettings) -> None:
    """Writing the same batch twice (an unknown COMMIT outcome) leaves rows and
    counters as after the first write."""
    sink = MySQLSink(database)
    batch: list[Event] = [
        session_start(1, T0, "s", "ua", "203.0.113.0"),
        run(2, T0 + 1, lines=10),
        run(3, T0 + 2, lines=32),
        feature_use(4, T0 + 3, "s", "debugger", '{"step": 1}'),
        session_end(5, T0 + 90, "s"),
    ]

    await sink.write(batch)
    await sink.write(batch)
    await sink.write(batch[1:3])
    await sink.close()

    assert query(
        database,
        "SELECT programs_run, lines_executed, duration_seconds, start_time, end_time"
        " FROM ide_sessions",
    ) == [(2, 42, 90, _dt("00:00:00"), _dt("00:01:30"))]
    assert scalar(database, "SELECT COUNT(*) FROM program_executions") == 2
    assert scalar(database, "SELECT COUNT(*) FROM feature_usage") == 1


async def test_a_batch_overlapping_a_written_one_counts_each_run_once(
    database: MySQLSettings,
) -> None:
    """A batch holding runs already written and new ones (a replay of another
    grouping) adds only the new runs to the counters."""
    sink = MySQLSink(database)
    first: list[Event] = [run(1, T0, lines=1), run(2, T0 + 1, lines=2)]
    overlapping: list[Event] = [*first, run(3, T0 + 2, lines=4), run(4, T0 + 3, "t", 8)]

    await sink.write(first)
    await sink.write(overlapping)
    await sink.close()

    assert query(
        database,
        "SELECT session_id, programs_run, lines_executed FROM ide_sessions"
        " ORDER BY session_id",
    ) == [("s", 3, 7), ("t", 1, 8)]
    assert scalar(database, "SELECT COUNT(*) FROM program_executions") == 4


async def test_a_run_for_an_unseen_session_is_kept(database: MySQLSettings) -> None:
    """A run whose session start never arrived still lands, with a session row;
    a late start fills in what it knows and moves the start earlier."""
    sink = MySQLSink(database)

    await sink.write([run(10, T0 + 60, "late")])
    first = query(
        database, "SELECT programs_run, start_time, user_agent FROM ide_sessions"
    )
    await sink.write(
        [session_start(9, T0, "late", "ua", None), session_end(11, T0 + 120, "late")]
    )
    await sink.close()

    assert first == [(1, _dt("00:01:00"), None)]
    assert query(
        database,
        "SELECT programs_run, start_time, user_agent, duration_seconds"
        " FROM ide_sessions",
    ) == [(1, _dt("00:00:00"), "ua", 120)]


async def test_duration_comes_from_event_times(database: MySQLSettings) -> None:
    """duration_seconds is end minus start of the events, not the server clock."""
    sink = MySQLSink(database)

    await sink.write([session_start(1, T0, "s", None, None)])
    await asyncio.sleep(1.1)
    await sink.write([session_end(2, T0 + 5.5, "s")])
    await sink.close()

    assert scalar(database, "SELECT duration_seconds FROM ide_sessions") == 5


async def test_small_statements_split_a_batch(database: MySQLSettings) -> None:
    """A batch larger than one statement is cut into several, all in one transaction."""
    sink = MySQLSink(database, rows_per_yield=7)
    batch: list[Event] = [run(100 + n, T0 + n, f"s{n % 3}") for n in range(600)]

    connection = await sink._connect()
    sink._statement_budget = 2_000  # characters; connecting sets it from the server
    programs = plan_rows(batch).programs
    row_text = _program_row_renderer(_quoter(connection.escape_string))
    statements = [sql async for sql in sink._render(_PROGRAMS_SQL, programs, row_text)]
    await sink.write(batch)
    await sink.close()

    assert len(statements) > 10
    assert scalar(database, "SELECT COUNT(*) FROM program_executions") == 600
    assert scalar(database, "SELECT SUM(programs_run) FROM ide_sessions") == 600


class _FailsOnce:
    """A real MySQL sink behind a bug that strikes on the first write."""

    def __init__(self, sink: MySQLSink) -> None:
        self._sink = sink
        self.calls = 0
        self.name = sink.name

    async def write(self, batch: Sequence[Event]) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("a bug in a sink")
        await self._sink.write(batch)

    async def ping(self) -> bool:
        return await self._sink.ping()

    async def close(self) -> None:
        await self._sink.close()


async def test_the_writer_survives_an_unexpected_error(
    database: MySQLSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception is logged with its traceback; the batch is retried."""
    sink = _FailsOnce(MySQLSink(database))
    config = TrackingConfig(
        mysql=database, flush_interval=0.01, retry_initial_wait=0.01
    )
    tracker = UsageTracker(config, sink=sink)
    tracker.track_program_execution("s", 1, 1, 1, True)

    assert await tracker.flush(timeout=10)
    await tracker.stop()

    assert sink.calls == 2
    assert tracker.stats()["retries"] == 1
    assert scalar(database, "SELECT COUNT(*) FROM program_executions") == 1
    crashes = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(crashes) == 1


def _dt(clock: str) -> datetime:
    return datetime.fromisoformat(f"2026-01-01 {clock}")
