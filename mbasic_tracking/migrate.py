"""Versioned schema: apply the numbered files of ``schema/<dialect>/`` in order.

Applied files are recorded in ``schema_migrations`` with a checksum. Running
again applies only what is new, so ``mbasic-tracking migrate`` is a no-op when
the database is up to date. Two processes migrating at once (two pods of a
rollout) serialize on a named server lock (``GET_LOCK``), and every statement in
the schema files is idempotent, so a file interrupted halfway can run again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from .config import MySQLSettings

__all__ = [
    "Migration",
    "MigrationError",
    "apply_mysql",
    "migrations",
    "split_statements",
]

logger = logging.getLogger(__name__)

Dialect = Literal["mysql", "sqlite"]

_LOCK_NAME: Final = "mbasic_tracking.migrate"
_LOCK_WAIT_SECONDS: Final = 120
_FILE_NAME: Final = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LEDGER_SQL: Final = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version VARCHAR(255) NOT NULL PRIMARY KEY,"
    " checksum CHAR(64) NOT NULL,"
    " applied_at DATETIME(3) NOT NULL"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)


class MigrationError(RuntimeError):
    """The schema could not be brought up to date."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema file: ``version`` is its file name, e.g. ``0001_core.sql``."""

    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def statements(self) -> list[str]:
        return split_statements(self.sql)


def schema_root() -> Path:
    """The folder holding ``mysql/`` and ``sqlite/``: inside an installed wheel
    it is ``mbasic_tracking/_schema``; in a checkout, the top-level ``schema/``."""
    packaged = Path(__file__).parent / "_schema"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "schema"


def migrations(dialect: Dialect) -> list[Migration]:
    """The schema files for ``dialect``, in the order they apply."""
    folder = schema_root() / dialect
    if not folder.is_dir():
        raise MigrationError(f"no schema folder for {dialect} at {folder}")

    found = [
        Migration(path.name, path)
        for path in sorted(folder.iterdir())
        if _FILE_NAME.match(path.name)
    ]
    if not found:
        raise MigrationError(f"no schema files in {folder}")

    return found


def split_statements(sql: str) -> list[str]:
    """Split a schema file into statements at semicolons that end a line.

    Schema files keep one rule for this to hold: no semicolon ends a line inside
    a string or comment. Whole-line ``--`` comments are dropped.
    """
    statements: list[str] = []
    current: list[str] = []

    for line in sql.splitlines():
        if line.strip().startswith("--") and not current:
            continue
        current.append(line)
        if line.rstrip().endswith(";"):
            statement = "\n".join(current).strip().rstrip(";").strip()
            if statement:
                statements.append(statement)
            current = []

    tail = "\n".join(current).strip()
    if tail and not all(part.strip().startswith("--") for part in tail.splitlines()):
        statements.append(tail)

    return statements


async def apply_mysql(
    settings: MySQLSettings, *, connect_timeout: float = 10.0
) -> list[str]:
    """Bring a MySQL or MariaDB database up to date; returns the versions applied.

    Creates the database when it does not exist and the account may do so.
    """
    connection = await _connect_creating(settings, connect_timeout)
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(
                "SELECT GET_LOCK(%s, %s)", (_LOCK_NAME, _LOCK_WAIT_SECONDS)
            )
            (locked,) = await cursor.fetchone()
            if locked != 1:
                raise MigrationError(
                    f"another migration held the lock for {_LOCK_WAIT_SECONDS} s; "
                    "try again"
                )
            try:
                return await _apply_pending(cursor)
            finally:
                await cursor.execute("SELECT RELEASE_LOCK(%s)", (_LOCK_NAME,))
    finally:
        connection.close()


async def _connect_creating(settings: MySQLSettings, connect_timeout: float) -> Any:
    import pymysql

    from .sinks.mysql import connect

    try:
        return await connect(settings, connect_timeout=connect_timeout, autocommit=True)
    except pymysql.err.OperationalError as error:
        if error.args[0] != 1049:  # unknown database
            raise

    server = dataclasses.replace(settings, database="mysql")
    connection = await connect(server, connect_timeout=connect_timeout, autocommit=True)
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(
                f"CREATE DATABASE IF NOT EXISTS `{settings.database}` "
                "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        logger.info("created database %s", settings.database)
    finally:
        connection.close()

    return await connect(settings, connect_timeout=connect_timeout, autocommit=True)


async def _apply_pending(cursor: Any) -> list[str]:
    await cursor.execute(_LEDGER_SQL)
    await cursor.execute("SELECT version, checksum FROM schema_migrations")
    applied = dict(await cursor.fetchall())
    done: list[str] = []

    for migration in migrations("mysql"):
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                logger.warning(
                    "schema file %s changed after it was applied; "
                    "changes belong in a new numbered file",
                    migration.version,
                )
            continue

        logger.info("applying %s", migration.version)
        for statement in migration.statements():
            await cursor.execute(statement)
        await cursor.execute(
            "INSERT INTO schema_migrations (version, checksum, applied_at)"
            " VALUES (%s, %s, UTC_TIMESTAMP(3))",
            (migration.version, migration.checksum),
        )
        done.append(migration.version)

    return done
