"""Migrations of the operations schema: jobs table and views, in both dialects."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from mbasic_tracking import MySQLSettings
from mbasic_tracking.cli import app
from mbasic_tracking.migrate import migrations, split_statements
from tests.conftest import query
from tests.helpers.usage_rows import database_url

FORBIDDEN = re.compile(
    r"\b(FOREIGN\s+KEY|REFERENCES|CREATE\s+TRIGGER|CREATE\s+PROCEDURE"
    r"|CREATE\s+FUNCTION|CREATE\s+EVENT)\b",
    re.IGNORECASE,
)


def test_migrate_applies_jobs_and_views_once(database: MySQLSettings) -> None:
    """The fresh database has every file recorded, the jobs table and the views;
    migrating again changes nothing."""
    versions = [m.version for m in migrations("mysql")]

    assert [
        row[0]
        for row in query(
            database, "SELECT version FROM schema_migrations ORDER BY version"
        )
    ] == versions
    assert {"0002_jobs.sql", "0003_views.sql"} <= set(versions)
    views = query(
        database,
        "SELECT table_name FROM information_schema.views"
        " WHERE table_schema = DATABASE() ORDER BY table_name",
    )
    assert [row[0] for row in views] == [
        "common_errors",
        "daily_usage",
        "error_rates",
        "feature_popularity",
        "session_summary",
    ]

    again = CliRunner().invoke(
        app, ["migrate", "--database-url", database_url(database)]
    )
    assert again.exit_code == 0, again.output
    assert "is up to date" in again.output


def test_each_dialect_has_the_same_numbered_files() -> None:
    """schema/mysql and schema/sqlite hold the same file names, so the SQLite
    demo gets every table and view MySQL gets."""
    assert [m.version for m in migrations("mysql")] == [
        m.version for m in migrations("sqlite")
    ]


def test_no_schema_file_uses_what_sharded_engines_lack() -> None:
    """No foreign keys, triggers, stored routines or events in any schema file."""
    for dialect in ("mysql", "sqlite"):
        for migration in migrations(dialect):
            for statement in split_statements(migration.sql):
                assert not FORBIDDEN.search(statement), (
                    migration.version,
                    statement[:80],
                )


def test_the_sqlite_files_run_twice_on_an_empty_database(tmp_path: Path) -> None:
    """Every SQLite statement is accepted, and is idempotent."""
    connection = sqlite3.connect(tmp_path / "schema.db")
    try:
        for _ in range(2):
            for migration in migrations("sqlite"):
                for statement in migration.statements():
                    connection.execute(statement)
        names = {
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
            )
        }
    finally:
        connection.close()

    assert {
        "tracking_jobs",
        "daily_usage",
        "feature_popularity",
        "error_rates",
    } <= names
