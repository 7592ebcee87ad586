"""The MySQL and MariaDB sink, on aiomysql.

One connection, owned by the writer task. A batch is one transaction:

1. multi-row inserts into ``program_executions``, ``feature_usage`` and
   ``page_visits``, each row keyed by its event id, a repeated id a no-op;
2. one multi-row upsert of ``ide_sessions`` for every session the batch
   touches, adding the batch's runs and lines to the session counters when
   every run of the batch was new;
3. only when some were not (the batch is a repeat): one statement that
   recounts the touched sessions' counters from ``program_executions``.

Statements are rendered here rather than by ``executemany``: aiomysql escapes a
whole statement without yielding, which would hold the event loop (shared with
the IDE) for tens of milliseconds per thousand rows. Rendering yields to the loop
every ``rows_per_yield`` rows and cuts statements well below the server's
``max_allowed_packet``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Final, TypeVar

import aiomysql
import pymysql
from pymysql.constants import CLIENT

from ..config import MySQLSettings, resolve_ca
from ..events import Event
from . import RejectedError, TransientError
from .rows import ProgramRow, RowPlanner

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

_Row = TypeVar("_Row", bound=tuple[object, ...])

_PLAN_SLICE: Final = 500  # events planned between two yields to the loop

_SESSIONS_SQL: Final = (
    "INSERT INTO ide_sessions (session_id, start_time, last_activity, end_time,"
    " duration_seconds, user_agent, ip_address, programs_run, lines_executed)"
    " VALUES {rows}"
    " ON DUPLICATE KEY UPDATE"
    " start_time = LEAST(start_time, VALUES(start_time)),"
    " last_activity = GREATEST(last_activity, VALUES(last_activity)),"
    " end_time = COALESCE(GREATEST(end_time, VALUES(end_time)), end_time,"
    " VALUES(end_time)),"
    " duration_seconds = IF(end_time IS NULL, NULL,"
    " GREATEST(0, TIMESTAMPDIFF(SECOND, start_time, end_time))),"
    " user_agent = COALESCE(user_agent, VALUES(user_agent)),"
    " ip_address = COALESCE(ip_address, VALUES(ip_address)),"
    " programs_run = programs_run + VALUES(programs_run),"
    " lines_executed = LEAST(lines_executed + VALUES(lines_executed),"
    " 9223372036854775807)"
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


class _Connection(aiomysql.Connection):  # type: ignore[misc]
    """A connection that refuses to go on in clear when TLS is required.

    aiomysql starts TLS only if the server offers it, and otherwise carries on
    unencrypted, sending the password in clear. Here a server that offers no TLS
    is refused before any credential leaves the client.
    """

    async def _request_authentication(self) -> None:
        if self._ssl_context is not None and not self.server_capabilities & CLIENT.SSL:
            raise pymysql.err.OperationalError(
                2026, "TLS is required, and the server does not offer it"
            )
        await super()._request_authentication()


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
    """Open one connection in UTC with utf8mb4; TLS as ``settings`` say.

    With TLS, the server's certificate and name are verified, and a server that
    does not offer TLS is refused (error 2026) before the password is sent.
    """
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

    connection = _Connection(**options)
    try:
        async with asyncio.timeout(connect_timeout * 2):
            await connection._connect()
    except BaseException:
        connection.close()
        raise

    return connection


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
        try:
            connection = await self._connect()
            async with asyncio.timeout(self._statement_timeout):
                async with connection.cursor() as cursor:
                    await self._write_rows(cursor, batch, connection.escape_string)
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

    async def _write_rows(
        self, cursor: Any, batch: Sequence[Event], escape_string: Callable[[str], str]
    ) -> None:
        """The batch's statements on ``cursor``, inside the caller's transaction.

        The batch is planned a slice at a time, and each slice's event rows are
        sent while the next slice is planned and rendered: the server inserts
        while Python prepares, and the loop is never held for long.

        The affected-row count of the program inserts says whether every run
        was new (a repeated event id affects no row): then the sessions upsert
        adds the batch's own counts to the counters. Otherwise (a batch repeated
        after an unknown COMMIT outcome, or replayed from the spool) it adds
        nothing and the touched sessions are recounted from
        ``program_executions``, which is always right and costs more.
        """
        quote = _quoter(escape_string)
        row_text = _row_renderer(escape_string, quote)
        program_text = _program_row_renderer(quote)
        planner = RowPlanner()

        async with _OneInFlight(cursor) as pipe:
            for start in range(0, len(batch), _PLAN_SLICE):
                programs, features, visits = planner.add(
                    batch[start : start + _PLAN_SLICE]
                )
                async for sql in self._render(_PROGRAMS_SQL, programs, program_text):
                    await pipe.send(sql, counts_runs=True)
                async for sql in self._render(_FEATURES_SQL, features, row_text):
                    await pipe.send(sql)
                async for sql in self._render(_VISITS_SQL, visits, row_text):
                    await pipe.send(sql)
                await asyncio.sleep(0)  # a large batch must not hold the loop

            new_runs = await pipe.drain()

        rows = planner.finish()
        counted = new_runs == len(rows.programs)
        sessions = (  # a generator: _render yields to the loop as it goes
            (*session.values(), *((session.runs, session.lines) if counted else (0, 0)))
            for session in rows.sessions
        )
        async for sql in self._render(_SESSIONS_SQL, sessions, row_text):
            await cursor.execute(sql)

        if not counted and rows.counted_sessions:
            ids = ", ".join(quote(sid) for sid in rows.counted_sessions)
            await cursor.execute(_COUNTERS_SQL.format(ids=ids))

    async def _render(
        self,
        template: str,
        rows: Iterable[_Row],
        row_text: Callable[[_Row], str],
    ) -> AsyncIterator[str]:
        budget = self._statement_budget - len(template)
        rendered: list[str] = []
        size = 0

        for index, row in enumerate(rows, 1):
            text = row_text(row)
            if rendered and size + len(text) > budget:
                yield template.format(rows=", ".join(rendered))
                rendered, size = [], 0
            rendered.append(text)
            size += len(text) + 2
            if index % self._rows_per_yield == 0:
                await asyncio.sleep(0)

        if rendered:
            yield template.format(rows=", ".join(rendered))


class _OneInFlight:
    """Statements on one cursor, each sent before the caller prepares the next.

    At most one statement is in flight: ``send`` waits for the previous one,
    starts the new one and lets it reach the server, then returns, so the
    caller's next rendering overlaps the server's work. ``drain`` waits for the
    last and returns the rows affected by the statements sent with
    ``counts_runs``. Leaving the block early cancels what is in flight (which
    closes the connection; the sink discards it anyway).
    """

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self._task: asyncio.Task[int] | None = None
        self._counts = False
        self._affected = 0

    async def __aenter__(self) -> _OneInFlight:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def send(self, sql: str, *, counts_runs: bool = False) -> None:
        await self.drain()
        self._counts = counts_runs
        self._task = asyncio.ensure_future(self._cursor.execute(sql))
        await asyncio.sleep(0)  # the statement leaves now; rendering goes on

    async def drain(self) -> int:
        task, self._task = self._task, None
        if task is not None:
            affected = await task
            if self._counts:
                self._affected += affected

        return self._affected


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


def _quoter(escape_string: Callable[[str], str]) -> Callable[[str], str]:
    """A quoted, escaped string literal, each string escaped once per quoter (one
    per batch): session ids and feature names repeat row after row."""
    quoted: dict[str, str] = {}

    def quote(value: str) -> str:
        rendered = quoted.get(value)
        if rendered is None:
            rendered = quoted[value] = "'" + escape_string(value) + "'"
        return rendered

    return quote


def _row_renderer(
    escape_string: Callable[[str], str], quote: Callable[[str], str]
) -> Callable[[tuple[object, ...]], str]:
    """``(literal, literal, ...)`` for one row; the same text as ``_literal_renderer``.

    Rendering runs on the event loop, so it is tuned: the renderer for a value
    is looked up by its exact type, and strings go through ``quote``'s cache.
    Values of other types (subclasses) take ``_literal_renderer``'s path.
    """
    slow = _literal_renderer(escape_string)
    by_type: dict[type, Callable[[Any], str]] = {
        type(None): _null_literal,
        bool: _bool_literal,
        str: quote,
        int: int.__repr__,
        bytes: _bytes_literal,
        float: float.__repr__,
    }
    render_of = by_type.get

    def row_text(row: tuple[object, ...]) -> str:
        return "(" + ", ".join([(render_of(type(v)) or slow)(v) for v in row]) + ")"

    return row_text


def _program_row_renderer(quote: Callable[[str], str]) -> Callable[[ProgramRow], str]:
    """``_row_renderer`` specialized to ``program_executions``, the busiest table:
    its columns' types are known, so no value is looked up by type, and the
    timestamp (digits and separators, made by ``format_time``) needs no escaping.
    """

    def render(row: ProgramRow) -> str:
        key, sid, at, lines, millis, executed, success, error = row
        return (
            f"(X'{key.hex()}', {quote(sid)}, '{at}', "
            f"{'NULL' if lines is None else lines}, "
            f"{'NULL' if millis is None else millis}, "
            f"{'NULL' if executed is None else executed}, "
            f"{'NULL' if success is None else int(success)}, "
            f"{'NULL' if error is None else quote(error)})"
        )

    return render


def _null_literal(value: None) -> str:
    return "NULL"


def _bool_literal(value: bool) -> str:
    return "1" if value else "0"


def _bytes_literal(value: bytes) -> str:
    return "X'" + value.hex() + "'"
