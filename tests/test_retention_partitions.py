"""Retention by partitions: the event tables accept RANGE COLUMNS on timestamp."""

from __future__ import annotations

from mbasic_tracking import MySQLSettings
from mbasic_tracking.retention import purge
from mbasic_tracking.rollup import rollup
from tests.conftest import admin_connection, query, scalar
from tests.helpers.usage_rows import at, day, end, feature, run, start, visit, write

EVENT_TABLES = ("program_executions", "feature_usage", "page_visits")


def partition_by_day(settings: MySQLSettings, table: str) -> None:
    """One partition per day from 200 days ago to today, and one for the future
    (the statement the README shows, with generated names)."""
    days = [day(-200), day(-199), *(day(n) for n in range(-2, 1))]
    parts = [
        f"PARTITION p{d:%Y%m%d} VALUES LESS THAN ('{d.fromordinal(d.toordinal() + 1)}')"
        for d in days
    ]
    with admin_connection(settings) as connection, connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {table} PARTITION BY RANGE COLUMNS (timestamp) ("
            + ", ".join([*parts, "PARTITION pfuture VALUES LESS THAN (MAXVALUE)"])
            + ")"
        )


def rows_in(settings: MySQLSettings, table: str, partition: str) -> int:
    """Exact row count of one partition."""
    return int(
        scalar(settings, f"SELECT COUNT(*) FROM {table} PARTITION ({partition})")
    )


async def test_event_tables_partition_by_day_and_old_days_drop_whole(
    database: MySQLSettings,
) -> None:
    """The server accepts time partitions on every event table; the writer,
    rollup and purge work on them; dropping a partition removes exactly its day."""
    for table in EVENT_TABLES:
        partition_by_day(database, table)
    old, today = f"p{day(-200):%Y%m%d}", f"p{day(0):%Y%m%d}"

    history = [
        start(at(-200), "old"),
        run(at(-200, "12:00:01"), "old"),
        feature(at(-200, "12:00:02"), "old", "debugger"),
        visit(at(-200, "11:59:00")),
        end(at(-200, "12:05:00"), "old"),
        start(at(-199), "older"),
        run(at(-199, "12:00:01"), "older"),
        end(at(-199, "12:05:00"), "older"),
        start(at(0, "00:00:01"), "new"),
        run(at(0, "00:00:02"), "new"),
    ]
    await write(database, history)
    await write(database, history)  # a repeated batch: the unique keys still hold

    assert [rows_in(database, "program_executions", p) for p in (old, today)] == [1, 1]
    assert rows_in(database, "feature_usage", old) == 1
    assert rows_in(database, "page_visits", old) == 1

    await rollup(database, since=day(-201))
    with admin_connection(database) as connection, connection.cursor() as cursor:
        for table in EVENT_TABLES:
            cursor.execute(f"ALTER TABLE {table} DROP PARTITION {old}")
        cursor.execute(
            "ALTER TABLE program_executions REORGANIZE PARTITION pfuture INTO ("
            f" PARTITION p{day(1):%Y%m%d} VALUES LESS THAN ('{day(2)}'),"
            " PARTITION pfuture VALUES LESS THAN (MAXVALUE))"
        )

    assert query(
        database, "SELECT session_id FROM program_executions ORDER BY timestamp"
    ) == [("older",), ("new",)]
    assert scalar(database, "SELECT COUNT(*) FROM feature_usage") == 0

    # purge finishes the job for the other day, through the partitions.
    result = await purge(database, older_than_days=180)
    assert result.deleted["program_executions"] == 1
    assert (
        scalar(
            database,
            "SELECT programs_run FROM daily_usage_summary WHERE date = %s",
            day(-200),
        )
        == 1
    )
