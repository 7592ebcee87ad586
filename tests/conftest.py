"""Shared fixtures: a real MySQL-compatible server, a fresh database per test.

How the server is found (DEVELOPERS.md says the same):

1. ``MBASIC_TRACKING_TEST_DATABASE_URL`` (``mysql://root@127.0.0.1:3306/test``):
   the user must be allowed to create and drop databases.
2. Otherwise MySQL 8 in a container, through testcontainers, when a Docker
   engine answers.
3. Otherwise the run fails with a message that says how to provide one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import secrets
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pymysql
import pytest

from mbasic_tracking import MySQLSettings, TrackingConfig, UsageTracker
from mbasic_tracking.migrate import apply_mysql
from mbasic_tracking.tracker import _reset_for_tests
from tests.helpers.proxy import FaultProxy

SERVER_HELP = (
    "No MySQL-compatible server for the tests. Set MBASIC_TRACKING_TEST_DATABASE_URL "
    "to a server whose user may create databases, for example "
    "mysql://root@127.0.0.1:3306/test, or start a Docker engine so that the tests "
    "can run MySQL 8 with testcontainers."
)


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MySQLSettings]:
    """Admin settings for the test server (session-scoped, synchronous)."""
    url = os.environ.get("MBASIC_TRACKING_TEST_DATABASE_URL")
    if url:
        settings = TrackingConfig.from_url(url).mysql
        assert settings is not None
        yield settings
        return

    if not _docker_answers():
        pytest.fail(SERVER_HELP, pytrace=False)

    from testcontainers.community.mysql import MySqlContainer

    with MySqlContainer("mysql:8.0", root_password="test", dbname="test") as container:
        yield MySQLSettings(
            host=container.get_container_host_ip(),
            port=int(container.get_exposed_port(3306)),
            user="root",
            password="test",
            database="test",
        )


def _docker_answers() -> bool:
    """Whether a Docker engine answers (its client leaks a socket when none does)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            client = docker.from_env()
            try:
                client.ping()
            finally:
                client.close()
        except Exception:
            return False
        finally:
            gc.collect()

    return True


@pytest.fixture
def database(mysql_server: MySQLSettings) -> Iterator[MySQLSettings]:
    """A new, migrated database for one test; dropped afterwards."""
    name = f"mbt_{secrets.token_hex(6)}"
    settings = dataclasses.replace(mysql_server, database=name)
    asyncio.run(apply_mysql(settings))

    yield settings

    with admin_connection(mysql_server) as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture
def strict_mode(mysql_server: MySQLSettings) -> Iterator[None]:
    """Make sure the server runs in strict SQL mode for the test.

    A server already strict (MariaDB's and MySQL's default) is left alone, so
    that tests running at the same time never see the mode flip.
    """
    with admin_connection(mysql_server) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.sql_mode")
        (previous,) = cursor.fetchone()
        if "STRICT_" in previous:
            yield
            return
        cursor.execute(
            "SET GLOBAL sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
            "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"
        )
    yield
    with admin_connection(mysql_server) as connection, connection.cursor() as cursor:
        cursor.execute("SET GLOBAL sql_mode = %s", (previous,))


@pytest.fixture
async def make_tracker(database: MySQLSettings) -> AsyncIterator[Any]:
    """A factory of trackers writing to this test's database; all stopped at the end."""
    made: list[UsageTracker] = []

    def make(settings: MySQLSettings | None = None, **options: Any) -> UsageTracker:
        options.setdefault("flush_interval", 0.05)
        options.setdefault("retry_initial_wait", 0.01)
        options.setdefault("retry_max_wait", 0.2)
        tracker = UsageTracker(TrackingConfig(mysql=settings or database, **options))
        made.append(tracker)
        return tracker

    yield make

    for tracker in made:
        await tracker.stop(timeout=5)


@pytest.fixture
def proxy(database: MySQLSettings) -> Iterator[FaultProxy]:
    """A proxy in front of the test server, closed after the test."""
    with FaultProxy(database.host, database.port) as running:
        yield running


@pytest.fixture
def via_proxy(database: MySQLSettings, proxy: FaultProxy) -> MySQLSettings:
    """The test database, reached through the proxy."""
    return dataclasses.replace(database, host="127.0.0.1", port=proxy.port)


@pytest.fixture(autouse=True)
def _reset_global_tracker() -> Iterator[None]:
    """No test sees the module-level tracker of another."""
    _reset_for_tests()
    yield
    _reset_for_tests()


def admin_connection(settings: MySQLSettings) -> pymysql.Connection[Any]:
    """A plain synchronous connection, for setting up and checking results."""
    return pymysql.connect(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        password=settings.password,
        database=settings.database,
        unix_socket=settings.unix_socket,
        charset="utf8mb4",
        autocommit=True,
    )


def query(settings: MySQLSettings, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on the test database, read through a fresh connection."""
    with admin_connection(settings) as connection, connection.cursor() as cursor:
        cursor.execute(sql, args or None)
        return list(cursor.fetchall())


def scalar(settings: MySQLSettings, sql: str, *args: Any) -> Any:
    """The single value of ``sql``."""
    rows = query(settings, sql, *args)
    return rows[0][0] if rows else None


async def until(condition: Callable[[], object], timeout: float = 20.0) -> None:
    """Wait until ``condition()`` is true; TimeoutError after ``timeout`` s."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
