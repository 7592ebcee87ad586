"""End-to-end rate against the server's own bulk-load rate, and the drain at stop.

Proves (issue 2):

- end to end: the tracker writes program runs at >= 0.7 of the rate at which
  the ``mariadb`` command-line client loads the same rows, pre-rendered as
  1,000-row INSERT statements, into a copy of ``program_executions`` on the
  same server, in the same run; every row lands and every session's counters
  add up. The tracker's time runs from its first call to the moment ``flush()``
  returns, so it includes making the events, the queue, the writer, the session
  upserts and the counters.
- drain: 100,000 events already queued are written by ``stop()`` within 3 s.
  The writer's connection is opened first (one event, flushed), so the figure
  is the drain, not the connect.

Events are spread over 100 sessions, round robin, as a busy IDE would send them.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from pymysql.converters import escape_string

from mbasic_tracking import MySQLSettings, TrackingConfig, UsageTracker
from mbasic_tracking import events as ev
from mbasic_tracking.sinks.mysql import _literal_renderer
from mbasic_tracking.sinks.rows import plan_rows

from ._common import Result, admin_connection, main, scalar, scratch_database

_SESSIONS: Final = [f"bench-session-{index:04d}" for index in range(100)]
_STATEMENT_ROWS: Final = 1_000
_COLUMNS: Final = (
    "event_id, session_id, timestamp, program_lines, execution_time_ms,"
    " lines_executed, success, error_message"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="end-to-end rows")
    parser.add_argument("--drain", type=int, default=100_000, help="events to drain")
    return parser


def _arguments(index: int) -> tuple[str, int, int, int, bool]:
    """The program run number ``index``: what the tracker and the file both get."""
    return (_SESSIONS[index % 100], 42, index % 5_000, index * 7 % 100_000, True)


def _events(count: int) -> Iterator[ev.Event]:
    started = time.time()
    for index in range(count):
        session, lines, elapsed, executed, success = _arguments(index)
        yield ev.program_run(
            (1 << 100) + index,
            started + index / 1_000,
            session,
            lines,
            elapsed,
            executed,
            success,
            None,
        )


def _render_file(count: int, folder: Path) -> Path:
    """The rows as 1,000-row INSERT statements, rendered as the sink renders them."""
    literal = _literal_renderer(escape_string)
    rows = plan_rows(list(_events(count))).programs
    path = folder / "bulk.sql"

    with path.open("w") as out:
        for start in range(0, len(rows), _STATEMENT_ROWS):
            values = ", ".join(
                "(" + ", ".join(literal(value) for value in row) + ")"
                for row in rows[start : start + _STATEMENT_ROWS]
            )
            out.write(f"INSERT INTO bulk_copy ({_COLUMNS}) VALUES {values};\n")

    return path


def _bulk_load(settings: MySQLSettings, count: int) -> float:
    """Seconds the mariadb client takes to load ``count`` pre-rendered rows."""
    client = shutil.which("mariadb") or shutil.which("mysql")
    if client is None:
        raise SystemExit("the bulk-load baseline needs the mariadb (or mysql) client")

    with admin_connection(settings) as connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bulk_copy LIKE program_executions")

    command = [
        client,
        f"--host={settings.host}",
        f"--port={settings.port}",
        f"--user={settings.user}",
        settings.database,
    ]
    if settings.password:
        command.insert(-1, f"--password={settings.password}")

    with tempfile.TemporaryDirectory() as folder:
        path = _render_file(count, Path(folder))
        with path.open("rb") as source:
            began = time.perf_counter()
            subprocess.run(command, stdin=source, check=True)
            elapsed = time.perf_counter() - began

    landed = scalar(settings, "SELECT COUNT(*) FROM bulk_copy")
    if landed != count:
        raise SystemExit(f"bulk load landed {landed} of {count} rows")

    return elapsed


async def _end_to_end(settings: MySQLSettings, count: int) -> float:
    """Seconds from the tracker's first call until ``flush()`` returns."""
    tracker = UsageTracker(TrackingConfig(mysql=settings, queue_size=count + 1_000))
    track = tracker.track_program_execution

    began = time.perf_counter()
    for index in range(count):
        track(*_arguments(index))
        if index % 1_000 == 999:
            await asyncio.sleep(0)
    flushed = await tracker.flush(timeout=600)
    elapsed = time.perf_counter() - began

    await tracker.stop(timeout=60)
    if not flushed:
        raise SystemExit("the tracker did not flush within 600 s")

    return elapsed


async def _drain(settings: MySQLSettings, count: int) -> float:
    """Seconds ``stop()`` takes to write ``count`` events queued before it."""
    tracker = UsageTracker(TrackingConfig(mysql=settings, queue_size=count + 1_000))
    track = tracker.track_program_execution
    track("bench-drain-warmup", 1, 1, 1, True)
    await tracker.flush(timeout=30)

    for index in range(count):
        track(*_arguments(index))

    began = time.perf_counter()
    await tracker.stop(timeout=60)

    return time.perf_counter() - began


def _landed(settings: MySQLSettings) -> tuple[int, int]:
    """(rows in program_executions, sum of the sessions' programs_run)."""
    rows = scalar(settings, "SELECT COUNT(*) FROM program_executions")
    counted = scalar(
        settings, "SELECT COALESCE(SUM(programs_run), 0) FROM ide_sessions"
    )

    return int(rows), int(counted)


async def run(args: argparse.Namespace) -> list[Result]:
    """Bulk load, then the tracker, on the same server; then the drain."""
    async with scratch_database() as settings:
        bulk = _bulk_load(settings, args.rows)
        ours = await _end_to_end(settings, args.rows)
        rows, counted = _landed(settings)

    async with scratch_database() as settings:
        drain = await _drain(settings, args.drain)
        drained, _ = _landed(settings)

    return _results(args, bulk, ours, (rows, counted), drain, drained)


def _results(
    args: argparse.Namespace,
    bulk: float,
    ours: float,
    landed: tuple[int, int],
    drain: float,
    drained: int,
) -> list[Result]:
    bulk_rate, our_rate = args.rows / bulk, args.rows / ours
    rows, counted = landed

    return [
        Result(
            "end to end",
            "server bulk load (mariadb client)",
            bulk_rate,
            "rows/s",
            note=f"{args.rows:,} rows, 1,000-row INSERTs",
        ),
        Result(
            "end to end",
            "tracker, first call to flush",
            our_rate,
            "rows/s",
            note=f"{args.rows:,} program runs, 100 sessions",
        ),
        Result(
            "end to end",
            "tracker / bulk load",
            our_rate / bulk_rate,
            "x",
            ">=",
            0.7,
            "same rows, same run",
        ),
        Result("end to end", "rows landed", rows, "rows", "==", args.rows),
        Result("end to end", "programs_run counted", counted, "runs", "==", args.rows),
        Result(
            "drain",
            f"stop() with {args.drain:,} queued",
            drain,
            "s",
            "<=",
            3.0,
            f"{args.drain / drain:,.0f} rows/s",
        ),
        Result("drain", "rows landed", drained, "rows", "==", args.drain + 1),
    ]


if __name__ == "__main__":
    main(run, _parser())
