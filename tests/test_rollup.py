"""Rollup: stale sessions closed, daily_usage_summary recomputed per UTC day."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

import pytest
from typer.testing import CliRunner

from mbasic_tracking import MySQLSettings, TrackingConfig, UsageTracker
from mbasic_tracking.cli import app
from mbasic_tracking.jobs import JobBusyError
from mbasic_tracking.rollup import rollup
from tests.conftest import admin_connection, query, scalar
from tests.helpers.usage_rows import (
    activity,
    at,
    database_url,
    day,
    end,
    run,
    start,
    visit,
    write,
)

SUMMARY = (
    "SELECT date, ide_sessions, unique_visitors, page_views, programs_run,"
    " total_lines_executed, avg_session_duration_seconds"
    " FROM daily_usage_summary ORDER BY date"
)


def summary_of(settings: MySQLSettings, when: date) -> tuple[object, ...] | None:
    """The summary row of one day, without updated_at."""
    rows = [row for row in query(settings, SUMMARY) if row[0] == when]
    return rows[0] if rows else None


async def test_each_column_is_computed_from_that_days_raw_rows(
    database: MySQLSettings,
) -> None:
    """Sessions, visitors, average duration, runs, lines and page views of a day
    come from that day's rows only, with the day's edges exact to the millisecond."""
    await write(
        database,
        [
            start(at(-3, "08:00:00"), "a", ip="198.51.100.0"),
            run(at(-3, "08:00:10"), "a", lines=10),
            end(at(-3, "08:01:40"), "a"),
            start(at(-3, "09:00:00"), "b", ip="198.51.100.0"),
            run(at(-3, "09:01:00"), "b", lines=20),
            end(at(-3, "09:05:00"), "b"),
            start(at(-3, "10:00:00"), "c", ip="203.0.113.0"),
            run(at(-3, "10:00:30"), "c", lines=None, success=False),
            activity(at(-3, "10:01:00"), "c"),
            start(at(-3, "11:00:00"), "d", ip=None),
            end(at(-3, "11:00:20"), "d"),
            start(at(-3, "23:59:59.000"), "late"),
            run(at(-3, "23:59:59.999"), "late", lines=1),
            end(at(-2, "00:00:00.500"), "late"),
            start(at(-2, "00:00:00.000"), "early", ip="203.0.113.0"),
            run(at(-2, "00:00:00.000"), "early", lines=1000),
            end(at(-2, "00:00:10.000"), "early"),
            visit(at(-3, "07:00:00")),
            visit(at(-3, "23:59:59.999")),
            visit(at(-2, "00:00:00.000")),
        ],
    )

    result = await rollup(database, since=day(-3))

    # c was idle for days: closed at its last activity, 60 s after its start.
    assert result.closed_sessions == 1
    assert result.days == [day(-3), day(-2), day(-1), day(0)]
    average = round((100 + 300 + 60 + 20 + 1) / 5)
    assert summary_of(database, day(-3)) == (day(-3), 5, 2, 2, 4, 31, average)
    assert summary_of(database, day(-2)) == (day(-2), 1, 1, 1, 1, 1000, 10)
    assert summary_of(database, day(-1)) == (day(-1), 0, 0, 0, 0, 0, None)


async def test_a_second_run_gives_the_same_rows(database: MySQLSettings) -> None:
    """Rollup is idempotent: running it again changes no summary value."""
    await write(
        database,
        [
            start(at(-2), "a"),
            run(at(-2, "12:01:00"), "a", lines=7),
            end(at(-2, "12:30:00"), "a"),
        ],
    )

    await rollup(database, since=day(-5))
    first = query(database, SUMMARY)
    await rollup(database, since=day(-5))
    await rollup(database)

    assert query(database, SUMMARY) == first
    assert summary_of(database, day(-2)) == (day(-2), 1, 1, 0, 1, 7, 1800)


async def test_idle_sessions_are_closed_at_their_last_activity(
    database: MySQLSettings,
) -> None:
    """A session idle longer than the limit gets end_time = last_activity and
    its duration; a session idle for less stays open until the limit is lowered."""
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ide_sessions (session_id, start_time, last_activity) VALUES"
            " ('idle', UTC_TIMESTAMP(3) - INTERVAL 2 HOUR,"
            "  UTC_TIMESTAMP(3) - INTERVAL 45 MINUTE),"
            " ('busy', UTC_TIMESTAMP(3) - INTERVAL 1 HOUR,"
            "  UTC_TIMESTAMP(3) - INTERVAL 10 MINUTE)"
        )

    result = await rollup(database)

    assert result.closed_sessions == 1
    assert query(
        database,
        "SELECT session_id, end_time = last_activity, duration_seconds"
        " FROM ide_sessions ORDER BY session_id",
    ) == [("busy", None, None), ("idle", 1, 4500)]

    result = await rollup(database, idle_minutes=5)

    assert result.closed_sessions == 1
    assert (
        scalar(
            database,
            "SELECT duration_seconds FROM ide_sessions WHERE session_id = 'busy'",
        )
        == 3000
    )


async def test_a_real_end_after_a_stale_close_wins(database: MySQLSettings) -> None:
    """When the session's own end arrives after rollup closed it, the writer
    keeps the later, real end and its duration."""
    await write(
        database, [start(at(-1, "10:00:00"), "s"), activity(at(-1, "10:00:30"), "s")]
    )
    await rollup(database)
    assert scalar(database, "SELECT duration_seconds FROM ide_sessions") == 30

    await write(database, [end(at(-1, "10:20:00"), "s")])
    await rollup(database)

    assert scalar(database, "SELECT duration_seconds FROM ide_sessions") == 1200
    assert summary_of(database, day(-1)) == (day(-1), 1, 1, 0, 0, 0, 1200)


async def test_without_since_only_changed_days_are_recomputed(
    database: MySQLSettings,
) -> None:
    """After a first run, a run without --since recomputes yesterday, today and
    the days of rows that arrived since (a late event for an old day), and no
    other day."""
    await write(
        database,
        [
            start(at(-10), "old"),
            end(at(-10, "12:10:00"), "old"),
            start(at(-5), "mid"),
            end(at(-5, "12:10:00"), "mid"),
        ],
    )
    first = await rollup(database)
    assert first.days[0] == day(-10)
    untouched = query(
        database, "SELECT updated_at FROM daily_usage_summary WHERE date = %s", day(-5)
    )

    await write(database, [run(at(-10, "13:00:00"), "old", lines=5)])
    second = await rollup(database)

    assert second.days == [day(-10), day(-1), day(0)]
    assert summary_of(database, day(-10)) == (day(-10), 1, 1, 0, 1, 5, 600)
    assert (
        query(
            database,
            "SELECT updated_at FROM daily_usage_summary WHERE date = %s",
            day(-5),
        )
        == untouched
    )


async def test_a_session_that_ended_since_the_last_run_is_picked_up(
    database: MySQLSettings,
) -> None:
    """A long session started days ago and ended now changes its start day's
    average: the next run recomputes that day."""
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ide_sessions (session_id, start_time, last_activity) VALUES"
            " ('long', UTC_DATE() - INTERVAL 4 DAY + INTERVAL 12 HOUR,"
            "  UTC_TIMESTAMP(3))"
        )
    await rollup(database)
    assert summary_of(database, day(-4)) == (day(-4), 1, 0, 0, 0, 0, None)

    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ide_sessions SET end_time = UTC_TIMESTAMP(3),"
            " duration_seconds = TIMESTAMPDIFF(SECOND, start_time, UTC_TIMESTAMP(3))"
        )
    result = await rollup(database)

    duration = scalar(database, "SELECT duration_seconds FROM ide_sessions")
    assert day(-4) in result.days
    assert summary_of(database, day(-4)) == (day(-4), 1, 0, 0, 0, 0, duration)


async def test_days_before_the_purge_cutoff_are_left_alone(
    database: MySQLSettings,
) -> None:
    """A --since reaching past the purge watermark never overwrites the final
    summary of purged days with the little raw data left."""
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO daily_usage_summary (date, ide_sessions, programs_run,"
            " updated_at) VALUES (%s, 42, 99, UTC_TIMESTAMP(3))",
            (day(-8),),
        )
        cursor.execute(
            "INSERT INTO tracking_jobs (job, watermark) VALUES ('purge', %s)",
            (datetime.combine(day(-6), datetime.min.time()),),
        )

    result = await rollup(database, since=day(-9))

    assert result.skipped_purged == [day(-9), day(-8), day(-7)]
    assert result.days[0] == day(-6)
    assert summary_of(database, day(-8)) == (day(-8), 42, 0, 0, 99, 0, None)


async def test_a_rollup_waits_for_a_running_job_then_gives_up(
    database: MySQLSettings,
) -> None:
    """While another rollup or purge holds the jobs lock, rollup raises
    JobBusyError and changes nothing."""
    lock = f"mbasic_tracking.jobs.{database.database}"
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, 0)", (lock,))
        with pytest.raises(JobBusyError, match="another rollup or purge"):
            await rollup(database, lock_wait=0.2)

    assert scalar(database, "SELECT COUNT(*) FROM daily_usage_summary") == 0


async def test_rows_from_the_real_tracker_are_rolled_up(
    database: MySQLSettings,
) -> None:
    """What the tracker writes through its public API shows up in today's row."""
    tracker = UsageTracker(TrackingConfig(mysql=database, flush_interval=0.05))
    tracker.start_ide_session("live-1", "agent", "192.0.2.10")
    tracker.start_ide_session("live-2", "agent", "192.0.2.99")
    for lines in (3, 4, 5):
        tracker.track_program_execution("live-1", 10, 2, lines, True)
    tracker.track_page_visit("/", ip_address="192.0.2.10")
    tracker.end_ide_session("live-2")
    assert await tracker.flush(timeout=10)
    await tracker.stop(timeout=5)

    await rollup(database)

    today = query(database, SUMMARY)[-1]
    # Both addresses truncate to 192.0.2.0: one visitor.
    assert today[:6] == (day(0), 2, 1, 1, 3, 12)


def test_the_command_back_fills_with_progress_and_rejects_bad_limits(
    database: MySQLSettings,
) -> None:
    """`mbasic-tracking rollup --since` covers every day to today; an idle limit
    below one minute is refused with status 2."""
    asyncio.run(write(database, [start(at(-12), "a"), end(at(-12, "12:00:30"), "a")]))
    runner = CliRunner()
    url = database_url(database)

    result = runner.invoke(
        app, ["rollup", "--database-url", url, "--since", str(day(-12))]
    )

    assert result.exit_code == 0, result.output
    assert "recomputed 13 days" in result.output
    assert scalar(database, "SELECT COUNT(*) FROM daily_usage_summary") == 13
    assert scalar(
        database, "SELECT last_outcome FROM tracking_jobs WHERE job = 'rollup'"
    ) == ("closed 0 sessions, recomputed 13 days")

    refused = runner.invoke(
        app, ["rollup", "--database-url", url, "--idle-minutes", "0"]
    )
    assert refused.exit_code == 2


async def test_progress_is_reported_for_each_day_in_order(
    database: MySQLSettings,
) -> None:
    """The on_day callback sees every day once, in order, with the total."""
    seen: list[tuple[date, int, int]] = []

    await rollup(database, since=day(-6), on_day=lambda d, n, t: seen.append((d, n, t)))

    assert seen == [(day(offset), offset + 7, 7) for offset in range(-6, 1)]
