"""The MySQL and MariaDB sink, on aiomysql.

One connection, owned by the writer task. A batch is one transaction:

1. one multi-row upsert of ``ide_sessions`` (every session the batch touches),
2. multi-row inserts into ``program_executions``, ``feature_usage`` and
   ``page_visits``, each row keyed by its event id, a repeated id a no-op,
3. one statement that recomputes ``programs_run`` and ``lines_executed`` from
   ``program_executions`` for the sessions that ran programs.

Statements are rendered here rather than by ``executemany``: aiomysql escapes a
whole statement without yielding, which would hold the event loop (shared with
the IDE) for tens of milliseconds per thousand rows. Rendering yields to the loop
every ``rows_per_yield`` rows and cuts statements well below the server's
``max_allowed_packet``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final

import aiomysql
import pymysql

from ..config import MySQLSettings, resolve_ca
from ..events import Event
from . import RejectedError, TransientError
from .rows import BatchRows, plan_rows

__all__ = ["MySQLSink", "classify_error", "connect"]

logger = logging.getLogger(__name__)

# Server error codes that mean "this value will never be accepted". Anything else
# (lost connections, deadlocks, lock waits, read-only failovers, a missing table
# that a migration will create) is retried.
_REJECTED_CODES: Final = frozenset(
    {
        1048,  # column cannot be null
        1264,  # out of range value
        1265,  # data truncated
        1292,  # incorrect datetime / truncated incorrect value
        1366,  # incorrect string or integer value
        1367,  # illegal value
        1406,  # data too long
        1416,  # cannot get geometry object
        1690,  # value out of range in expression
        3140,  # invalid JSON text (MySQL)
        3156,  # invalid JSON value for CAST
        4025,  # CONSTRAINT failed (MariaDB's JSON_VALID check)
    }
)

_SESSIONS_SQL: Final = (
    "INSERT INTO ide_sessions (session_id, start_time, last_activity, end_time,"
    " duration_seconds, user_agent, ip_address) VALUES {rows}"
    " ON DUPLICATE KEY UPDATE"
    " start_time = LEAST(start_time, VALUES(start_time)),"
    " last_activity = GREATEST(last_activity, VALUES(last_activity)),"
    " end_time = COALESCE(GREATEST(end_time, VALUES(end_time)), end_time,"
    " VALUES(end_time)),"
    " duration_seconds = IF(end_time IS NULL, NULL,"
    " GREATEST(0, TIMESTAMPDIFF(SECOND, start_time, end_time))),"
    " user_agent = COALESCE(user_agent, VALUES(user_agent)),"
    " ip_address = COALESCE(ip_address, VALUES(ip_address))"
)
_PROGRAMS_SQL: Final = (
    "INSERT INTO program_executions (event_id, session_id, timestamp, program_lines,"
    " execution_time_ms, lines_executed, success, error_message) VALUES {rows}"
    " ON DUPLICATE KEY UPDATE event_id = event_id"
)
_FEATURES_SQL: Final = (
    "INSERT INTO feature_usage (event_id, session_id, timestamp, feature_name,"
    " feature_data) VALUES {rows} ON DUPLICATE KEY UPDATE event_id = event_id"
)
_VISITS_SQL: Final = (
    "INSERT INTO page_visits (event_id, timestamp, page_path, referrer, user_agent,"
    " ip_address, session_id) VALUES {rows} ON DUPLICATE KEY UPDATE event_id = event_id"
)
_COUNTERS_SQL: Final = (
    "UPDATE ide_sessions AS s JOIN ("
    "SELECT session_id, COUNT(*) AS runs,"
    " LEAST(COALESCE(SUM(lines_executed), 0), 9223372036854775807) AS total_lines"
    " FROM program_executions WHERE session_id IN ({ids}) GROUP BY session_id"
    ") AS p ON p.session_id = s.session_id"
    " SET s.programs_run = p.runs, s.lines_executed = p.total_lines"
)


class _QuietCursor(aiomysql.Cursor):  # type: ignore[misc]
    """A cursor that does not turn server warnings into Python warnings.

    aiomysql runs SHOW WARNINGS after any statement with warnings and calls
    ``warnings.warn``: an extra round trip per batch, and an exception in an
    application that escalates warnings. Values are normalized before they are
    queued, so the warnings left are expected ones (MySQL 8's deprecation of
    ``VALUES()`` in ON DUPLICATE KEY UPDATE, "table already exists").
    """

    async def _show_warnings(self, conn: Any) -> None:
        return None


def classify_error(error: BaseException) -> TransientError | RejectedError:
    """The sink error for a driver or network error; its text names no secret."""
    if isinstance(error, pymysql.err.MySQLError) and error.args:
        code = error.args[0]
        message = str(error.args[1]) if len(error.args) > 1 else ""
        text = f"MySQL error {code}: {message[:200]}"
        if code in _REJECTED_CODES:
            return RejectedError(text)
        return TransientError(text)

    if isinstance(error, TimeoutError):
        return TransientError("timed out")

    return TransientError(f"{type(error).__name__}: {str(error)[:200]}")


def make_ssl_context(settings: MySQLSettings) -> ssl.SSLContext | None:
    """The TLS context for ``settings``, or None when TLS is off."""
    if not settings.uses_tls:
        return None

    cafile, cadata = resolve_ca(settings.ssl_ca) if settings.ssl_ca else (None, None)
    context = ssl.create_default_context(cafile=cafile, cadata=cadata)
    context.minimum_version = ssl.TLSVersion.TLSv1_2

    return context


async def connect(
    settings: MySQLSettings, *, connect_timeout: float, autocommit: bool = False
) -> aiomysql.Connection:
    """Open one connection in UTC with utf8mb4; TLS as ``settings`` say."""
    if settings.disable_ssl and (settings.ssl_ca or not settings.uses_tls):
        logger.debug("TLS disabled for %s", settings.redacted_url())

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "user": settings.user,
        "password": settings.password,
        "db": settings.database,
        "charset": "utf8mb4",
        "autocommit": autocommit,
        "connect_timeout": connect_timeout,
        "init_command": "SET time_zone = '+00:00'",
        "cursorclass": _QuietCursor,
    }
    if settings.unix_socket:
        options["unix_socket"] = settings.unix_socket
    context = make_ssl_context(settings)
    if context is not None:
        options["ssl"] = context

    async with asyncio.timeout(connect_timeout * 2):
        return await aiomysql.connect(**options)


class MySQLSink:
    """Writes batches to MySQL or MariaDB; see the module docstring."""

    def __init__(
        self,
        settings: MySQLSettings,
        *,
        connect_timeout: float = 5.0,
        statement_timeout: float = 15.0,
        max_statement_bytes: int = 1_000_000,
        rows_per_yield: int = 100,
    ) -> None:
        self._settings = settings
        self._connect_timeout = connect_timeout
        self._statement_timeout = statement_timeout
        self._max_statement_bytes = max_statement_bytes
        self._statement_budget = max_statement_bytes
        self._rows_per_yield = rows_per_yield
        self._connection: aiomysql.Connection | None = None

        if settings.disable_ssl:
            logger.warning(
                "TLS to %s is disabled by configuration: credentials and data "
                "cross the network in clear text",
                settings.redacted_url(),
            )

    @property
    def name(self) -> str:
        return self._settings.redacted_url()

    def __repr__(self) -> str:
        return f"<MySQLSink {self.name}>"

    async def write(self, batch: Sequence[Event]) -> None:
        """Write ``batch`` in one transaction; see the module docstring."""
        rows = plan_rows(batch)

        try:
            connection = await self._connect()
            async with asyncio.timeout(self._statement_timeout):
                async with connection.cursor() as cursor:
                    async for statement in self._statements(rows, connection):
                        await cursor.execute(statement)
                await connection.commit()
        except asyncio.CancelledError:
            self._discard()
            raise
        except Exception as error:
            sink_error = classify_error(error)
            if isinstance(sink_error, RejectedError):
                await self._rollback()
            else:
                self._discard()
            raise sink_error from error

    async def ping(self) -> bool:
        """Open a fresh connection and run ``SELECT 1``; never raises."""
        try:
            connection = await connect(
                self._settings, connect_timeout=self._connect_timeout, autocommit=True
            )
        except Exception:
            return False

        try:
            async with asyncio.timeout(self._connect_timeout):
                async with connection.cursor() as cursor:
                    await cursor.execute("SELECT 1")
            return True
        except Exception:
            return False
        finally:
            connection.close()

    async def close(self) -> None:
        self._discard()

    # -- internals ------------------------------------------------------------

    async def _connect(self) -> aiomysql.Connection:
        connection = self._connection
        if connection is not None and not connection.closed:
            return connection

        connection = await connect(
            self._settings, connect_timeout=self._connect_timeout
        )
        async with connection.cursor() as cursor:
            await cursor.execute("SELECT @@max_allowed_packet")
            (packet,) = await cursor.fetchone()
        await connection.commit()
        # Characters, not bytes: a utf8mb4 character takes up to four.
        self._statement_budget = max(
            64_000, min(self._max_statement_bytes, int(packet) // 4)
        )
        self._connection = connection
        logger.debug("connected to %s", self.name)

        return connection

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def _rollback(self) -> None:
        connection = self._connection
        if connection is None:
            return
        try:
            async with asyncio.timeout(self._statement_timeout):
                await connection.rollback()
        except Exception:
            self._discard()

    async def _statements(
        self, rows: BatchRows, connection: aiomysql.Connection
    ) -> AsyncIterator[str]:
        literal = _literal_renderer(connection.escape_string)

        if rows.sessions:
            values = [session.values() for session in rows.sessions]
            async for sql in self._render(_SESSIONS_SQL, values, literal):
                yield sql

        for template, table_rows in (
            (_PROGRAMS_SQL, rows.programs),
            (_FEATURES_SQL, rows.features),
            (_VISITS_SQL, rows.visits),
        ):
            if table_rows:
                async for sql in self._render(template, table_rows, literal):
                    yield sql

        if rows.counted_sessions:
            ids = ", ".join(literal(sid) for sid in rows.counted_sessions)
            yield _COUNTERS_SQL.format(ids=ids)

    async def _render(
        self,
        template: str,
        rows: Sequence[tuple[object, ...]],
        literal: Callable[[object], str],
    ) -> AsyncIterator[str]:
        budget = self._statement_budget - len(template)
        rendered: list[str] = []
        size = 0

        for index, row in enumerate(rows, 1):
            text = "(" + ", ".join([literal(value) for value in row]) + ")"
            if rendered and size + len(text) > budget:
                yield template.format(rows=", ".join(rendered))
                rendered, size = [], 0
            rendered.append(text)
            size += len(text) + 2
            if index % self._rows_per_yield == 0:
                await asyncio.sleep(0)

        if rendered:
            yield template.format(rows=", ".join(rendered))


def _literal_renderer(escape_string: Callable[[str], str]) -> Callable[[object], str]:
    """SQL literals for the value types events hold, with the connection's escaping."""

    def literal(value: object) -> str:
        if value is None:
            return "NULL"
        if value is True:
            return "1"
        if value is False:
            return "0"
        if isinstance(value, str):
            return "'" + escape_string(value) + "'"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, bytes):
            return "X'" + value.hex() + "'"
        if isinstance(value, float):
            return repr(value)
        raise TypeError(f"no SQL literal for {type(value).__name__}")

    return literal
