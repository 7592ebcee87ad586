"""Reports: the daily summary and recent sessions as tables, CSV and JSON."""

from __future__ import annotations

import asyncio
import csv
import io
import json

from typer.testing import CliRunner

from mbasic_tracking import MySQLSettings
from mbasic_tracking.cli import app
from mbasic_tracking.rollup import rollup
from tests.helpers.usage_rows import at, database_url, day, end, run, start, write


def prepare(settings: MySQLSettings, *, rolled_up: bool = True) -> str:
    """Two sessions three and one days ago; returns the database URL."""
    asyncio.run(
        write(
            settings,
            [
                start(at(-3, "10:00:00"), "first"),
                run(at(-3, "10:00:10"), "first", lines=12),
                end(at(-3, "10:01:00"), "first"),
                start(at(-1, "08:00:00"), "second", ip="203.0.113.0"),
                end(at(-1, "08:00:30"), "second"),
            ],
        )
    )
    if rolled_up:
        asyncio.run(rollup(settings, since=day(-3)))
    return database_url(settings)


def report(*args: str) -> str:
    """The output of `mbasic-tracking report ARGS`, which must succeed."""
    result = CliRunner().invoke(app, ["report", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_json_holds_the_days_and_the_recent_sessions(database: MySQLSettings) -> None:
    """--format json: one object with the last N days, newest first, and the
    sessions, newest first, with UTC times."""
    url = prepare(database)

    document = json.loads(
        report("--database-url", url, "--days", "2", "--format", "json")
    )

    assert [row["date"] for row in document["daily"]] == [str(day(0)), str(day(-1))]
    assert document["daily"][1] == {
        "date": str(day(-1)),
        "ide_sessions": 1,
        "unique_visitors": 1,
        "page_views": 0,
        "programs_run": 0,
        "total_lines_executed": 0,
        "avg_session_duration_seconds": 30,
    }
    assert [s["session_id"] for s in document["sessions"]] == ["second", "first"]
    assert document["sessions"][1]["programs_run"] == 1
    assert document["sessions"][1]["start_time"] == f"{day(-3)}T10:00:00.000+00:00"
    assert document["last_rollup_at"] is not None


def test_csv_is_one_header_and_a_line_per_day_then_the_sessions(
    database: MySQLSettings,
) -> None:
    """--format csv: the daily table, an empty line, the sessions table."""
    url = prepare(database)

    output = report("--database-url", url, "--days", "4", "--format", "csv")
    daily, sessions = output.split("\n\n")

    days = list(csv.DictReader(io.StringIO(daily)))
    assert [row["date"] for row in days] == [str(day(n)) for n in (0, -1, -2, -3)]
    assert days[3]["programs_run"] == "1"
    assert days[3]["total_lines_executed"] == "12"
    assert days[0]["avg_session_duration_seconds"] == ""
    assert [row["session_id"] for row in csv.DictReader(io.StringIO(sessions))] == [
        "second",
        "first",
    ]

    only_days = report("--database-url", url, "--format", "csv", "--sessions", "0")
    assert "\n\n" not in only_days


def test_the_table_shows_days_sessions_and_a_missing_rollup(
    database: MySQLSettings,
) -> None:
    """The terminal tables show whole dates and session ids, and say so when no
    rollup has run yet."""
    url = prepare(database, rolled_up=False)

    before = report("--database-url", url)
    assert "No rollup has run yet" in before

    asyncio.run(rollup(database, since=day(-3)))
    after = report("--database-url", url, "--days", "4")

    assert str(day(-3)) in after and str(day(-1)) in after
    assert "second" in after and "first" in after
    assert "Last rollup" in after
