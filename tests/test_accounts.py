"""Least-privilege accounts: each can do its job and is refused everything else."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Iterator

import pymysql
import pytest
from typer.testing import CliRunner

from mbasic_tracking import MySQLSettings, TrackingConfig, UsageTracker
from mbasic_tracking.accounts import AccountError, apply_accounts, make_accounts
from mbasic_tracking.cli import app
from mbasic_tracking.report import load_report
from mbasic_tracking.retention import purge
from mbasic_tracking.rollup import rollup
from tests.conftest import admin_connection, query, scalar
from tests.helpers.usage_rows import at, database_url, day, end, run, start, write

DENIED = (1142, 1143, 1044)  # table, column, database access denied


@pytest.fixture
def accounts(
    database: MySQLSettings, mysql_server: MySQLSettings
) -> Iterator[dict[str, MySQLSettings]]:
    """The three accounts, created with a unique prefix; dropped afterwards."""
    prefix = f"t{secrets.token_hex(3)}_"
    made = make_accounts(
        ["writer", "rollup", "dashboard"], prefix=prefix, generate=True
    )
    asyncio.run(apply_accounts(database, made))

    yield {
        account.role: dataclasses.replace(
            database, user=account.user, password=account.password or ""
        )
        for account in made
    }

    with admin_connection(mysql_server) as connection, connection.cursor() as cursor:
        for account in made:
            cursor.execute(f"DROP USER IF EXISTS '{account.user}'@'%'")


def refused(settings: MySQLSettings, sql: str) -> int:
    """The error code the server answers ``sql`` with, as ``settings``' user."""
    with pytest.raises(pymysql.err.MySQLError) as error:
        query(settings, sql)
    return int(error.value.args[0])


async def test_the_writer_account_runs_the_tracker_and_nothing_more(
    accounts: dict[str, MySQLSettings], database: MySQLSettings
) -> None:
    """A real tracker batch lands as the writer; it may not delete, drop, read
    the summary or change the schema."""
    writer = accounts["writer"]
    tracker = UsageTracker(TrackingConfig(mysql=writer, flush_interval=0.05))
    tracker.start_ide_session("w-1", "agent", "192.0.2.1")
    tracker.track_program_execution("w-1", 10, 3, 7, True)
    tracker.track_program_execution("w-1", 10, 3, 8, False, "oops")
    tracker.track_feature_usage("w-1", "debugger", {"step": 1})
    tracker.track_page_visit("/", ip_address="192.0.2.1", session_id="w-1")
    tracker.end_ide_session("w-1")
    assert await tracker.flush(timeout=10)
    stats = tracker.stats()
    await tracker.stop(timeout=5)

    assert (stats["written"], stats["failed"], stats["retries"]) == (6, 0, 0)
    assert query(database, "SELECT programs_run, lines_executed FROM ide_sessions") == [
        (2, 15)
    ]
    assert refused(writer, "DELETE FROM program_executions") in DENIED
    assert refused(writer, "DROP TABLE page_visits") in DENIED
    assert refused(writer, "SELECT * FROM daily_usage_summary") in DENIED
    assert refused(writer, "CREATE TABLE spare (id INT)") in DENIED
    assert refused(writer, "TRUNCATE TABLE feature_usage") in DENIED


async def test_the_rollup_account_runs_rollup_and_purge_and_nothing_more(
    accounts: dict[str, MySQLSettings], database: MySQLSettings
) -> None:
    """Rollup (closing a stale session) and purge work as the rollup account; it
    may not delete summary rows, drop tables or insert events."""
    jobs = accounts["rollup"]
    await write(
        database,
        [
            start(at(-200), "old"),
            run(at(-200, "12:01:00"), "old"),
            end(at(-200, "12:02:00"), "old"),
            start(at(-1), "stale"),
        ],
    )

    done = await rollup(jobs, since=day(-201))
    purged = await purge(jobs, older_than_days=180)

    assert done.closed_sessions == 1
    assert purged.deleted["program_executions"] == 1
    assert (
        scalar(
            database,
            "SELECT programs_run FROM daily_usage_summary WHERE date = %s",
            day(-200),
        )
        == 1
    )
    assert refused(jobs, "DELETE FROM daily_usage_summary") in DENIED
    assert refused(jobs, "DROP TABLE ide_sessions") in DENIED
    assert (
        refused(
            jobs,
            "INSERT INTO page_visits (event_id, timestamp, page_path)"
            " VALUES (x'00', NOW(), '/')",
        )
        in DENIED
    )
    assert refused(jobs, "ALTER TABLE ide_sessions ADD COLUMN spare INT") in DENIED


async def test_the_dashboard_account_reads_views_and_writes_nothing(
    accounts: dict[str, MySQLSettings], database: MySQLSettings
) -> None:
    """The dashboard account reads every view and the report; it may not insert,
    update or delete anything."""
    board = accounts["dashboard"]
    await write(
        database,
        [
            start(at(-1), "s"),
            run(at(-1, "12:00:05"), "s"),
            end(at(-1, "12:01:00"), "s"),
        ],
    )
    await rollup(database)

    for view in (
        "session_summary",
        "daily_usage",
        "feature_popularity",
        "error_rates",
        "common_errors",
    ):
        query(board, f"SELECT * FROM {view}")
    assert query(
        board, "SELECT programs_run FROM daily_usage WHERE date = %s", day(-1)
    ) == [(1,)]
    assert (await load_report(board, days=3)).daily[1]["ide_sessions"] == 1

    assert (
        refused(
            board,
            "INSERT INTO daily_usage_summary (date, updated_at)"
            " VALUES ('2020-01-01', NOW())",
        )
        in DENIED
    )
    assert refused(board, "UPDATE ide_sessions SET programs_run = 0") in DENIED
    assert refused(board, "DELETE FROM page_visits") in DENIED


async def test_a_refused_grant_names_no_password(
    database: MySQLSettings, mysql_server: MySQLSettings
) -> None:
    """When the server refuses a statement, the error names the account and the
    code, never the password in the statement."""
    made = make_accounts(["writer"], prefix=f"t{secrets.token_hex(3)}_", generate=True)
    try:
        with pytest.raises(AccountError) as error:
            await apply_accounts(database, made, database="no_such_database_here")
    finally:
        with (
            admin_connection(mysql_server) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(f"DROP USER IF EXISTS '{made[0].user}'@'%'")

    assert made[0].user in str(error.value)
    assert made[0].password and made[0].password not in str(error.value)
    assert made[0].password not in repr(made[0])


def test_the_command_prints_placeholders_unless_asked(
    database: MySQLSettings,
    mysql_server: MySQLSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`accounts` prints SQL with placeholders; a password from the environment
    appears only with --show-passwords; --apply without passwords is refused."""
    runner = CliRunner()
    url = database_url(database)
    monkeypatch.setenv("MBASIC_TRACKING_WRITER_PASSWORD", "from-env-Secret-1")

    printed = runner.invoke(app, ["accounts", "--database-url", url])
    assert printed.exit_code == 0, printed.output
    assert "'<writer password>'" in printed.output
    assert "from-env-Secret-1" not in printed.output
    assert (
        f"GRANT SELECT ON `{database.database.replace('_', chr(92) + '_')}`.*"
        in printed.output
    )

    shown = runner.invoke(
        app, ["accounts", "--database-url", url, "--role", "writer", "--show-passwords"]
    )
    assert "from-env-Secret-1" in shown.output

    refused_apply = runner.invoke(app, ["accounts", "--database-url", url, "--apply"])
    assert refused_apply.exit_code == 2
    assert "no password for rollup, dashboard" in refused_apply.output

    prefix = f"t{secrets.token_hex(3)}_"
    try:
        applied = runner.invoke(
            app,
            [
                "accounts",
                "--database-url",
                url,
                "--apply",
                "--role",
                "writer",
                "--prefix",
                prefix,
            ],
        )
        assert applied.exit_code == 0, applied.output
        assert "from-env-Secret-1" not in applied.output
        writer = dataclasses.replace(
            database, user=f"{prefix}writer", password="from-env-Secret-1"
        )
        assert query(writer, "SELECT COUNT(*) FROM ide_sessions") == [(0,)]
    finally:
        with (
            admin_connection(mysql_server) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(f"DROP USER IF EXISTS '{prefix}writer'@'%'")
