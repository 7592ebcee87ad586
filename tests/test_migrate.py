"""``mbasic-tracking migrate``: pending files once, safe when pods race."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from mbasic_tracking import MySQLSettings
from mbasic_tracking.cli import app
from mbasic_tracking.migrate import apply_mysql, migrations
from tests.conftest import admin_connection, query


@pytest.fixture
def empty_database(mysql_server: MySQLSettings) -> Iterator[MySQLSettings]:
    """A database name that does not exist yet; dropped afterwards."""
    name = f"mbt_{secrets.token_hex(6)}"
    yield dataclasses.replace(mysql_server, database=name)
    with admin_connection(mysql_server) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


async def test_two_migrations_at_once_apply_each_file_once(
    empty_database: MySQLSettings,
) -> None:
    """Two pods migrating at the same moment: one applies, the other finds it done."""
    first, second = await asyncio.gather(
        apply_mysql(empty_database), apply_mysql(empty_database)
    )

    versions = [migration.version for migration in migrations("mysql")]
    assert sorted([first, second], key=len) == [[], versions]
    recorded = query(
        empty_database, "SELECT version FROM schema_migrations ORDER BY version"
    )
    assert [row[0] for row in recorded] == versions


def test_the_command_is_a_no_op_when_up_to_date(empty_database: MySQLSettings) -> None:
    """The console command creates and migrates, then says it is up to date."""
    url = (
        f"mysql://{empty_database.user}@{empty_database.host}:{empty_database.port}"
        f"/{empty_database.database}"
    )
    runner = CliRunner()

    applied = runner.invoke(app, ["migrate", "--database-url", url])
    again = runner.invoke(app, ["migrate", "--database-url", url])

    assert applied.exit_code == 0, applied.output
    assert "applied 0001_core.sql" in applied.output
    assert again.exit_code == 0, again.output
    assert "is up to date" in again.output
    assert "***" in again.output
