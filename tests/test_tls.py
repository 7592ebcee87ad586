"""TLS to a private MariaDB with certificates made by the test."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mbasic_tracking import MySQLSettings, TrackingConfig, UsageTracker
from mbasic_tracking.cli import app
from mbasic_tracking.sinks.mysql import MySQLSink, connect
from tests.helpers.mariadb import PrivateMariaDB, TlsFiles
from tests.helpers.tls import Authority, make_ca, make_server_cert

pytestmark = pytest.mark.slow


@dataclasses.dataclass(frozen=True)
class TlsServer:
    """A running TLS server, its files, and a CA that did not sign it."""

    server: PrivateMariaDB
    files: TlsFiles
    authority: Authority
    stranger: Authority


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """mariadbd with a certificate for IP:127.0.0.1 and DNS:localhost."""
    folder = tmp_path_factory.mktemp("tls")
    authority = make_ca(folder / "certs", "right")
    stranger = make_ca(folder / "certs", "wrong")
    files = make_server_cert(folder / "certs", authority, "IP:127.0.0.1,DNS:localhost")

    server = PrivateMariaDB(folder / "server", tls=files)
    with warnings.catch_warnings():
        # While mariadbd starts, PyMySQL leaves the socket of each refused
        # connection attempt to the garbage collector.
        warnings.simplefilter("ignore", ResourceWarning)
        server.start()
        gc.collect()
    try:
        yield TlsServer(server, files, authority, stranger)
    finally:
        server.stop()


async def session_status(settings: MySQLSettings) -> dict[str, str]:
    """Ssl_cipher and Ssl_version of a new connection made with ``settings``."""
    connection = await connect(settings, connect_timeout=5)
    try:
        async with connection.cursor() as cursor:
            await cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_%%'")
            rows: Any = await cursor.fetchall()
    finally:
        connection.close()
    return {name: value for name, value in rows}


@contextlib.contextmanager
def tls_sockets_collected() -> Iterator[None]:
    """Collect, without ResourceWarning, the sockets TLS connections leave behind.

    aiomysql leaves the socket of a failed TLS handshake to the garbage
    collector, and a TLS connection closed just before its event loop ends
    may not finish asyncio's TLS shutdown.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        yield
        gc.collect()


async def refusal(settings: MySQLSettings) -> str:
    """The error chain of a connection attempt that must fail."""
    with tls_sockets_collected(), pytest.raises(Exception) as refused:
        await session_status(settings)
    return error_chain(refused.value)


def error_chain(error: BaseException | None) -> str:
    """The messages of ``error`` and its causes, joined."""
    messages = []
    while error is not None:
        messages.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return " <- ".join(messages)


async def test_a_verified_connection_works_with_the_ca_as_a_path(
    tls_server: TlsServer,
) -> None:
    """ssl_ca naming a file: the connection is encrypted (a cipher is in use)."""
    settings = tls_server.server.settings(ssl_ca=str(tls_server.files.ca))

    status = await session_status(settings)

    assert settings.uses_tls
    assert status["Ssl_cipher"]
    assert status["Ssl_version"] in ("TLSv1.2", "TLSv1.3")


async def test_a_verified_connection_works_with_the_ca_as_pem_text(
    tls_server: TlsServer,
) -> None:
    """ssl_ca holding the PEM text itself, as MYSQL_CA_CERT carries it."""
    config = TrackingConfig.from_env(
        {
            "MYSQL_HOST": "127.0.0.1",
            "MYSQL_PORT": str(tls_server.server.port),
            "MYSQL_USER": "root",
            "MYSQL_DATABASE": "test",
            "MYSQL_CA_CERT": tls_server.files.ca.read_text(),
        }
    )
    assert config.mysql is not None

    status = await session_status(config.mysql)

    assert status["Ssl_cipher"]


async def test_a_server_signed_by_another_ca_is_refused(tls_server: TlsServer) -> None:
    """A CA that did not sign the server's certificate: no connection."""
    settings = tls_server.server.settings(ssl_ca=str(tls_server.stranger.cert))

    assert "CERTIFICATE_VERIFY_FAILED" in await refusal(settings)


async def test_a_certificate_for_another_name_is_refused(
    tls_server: TlsServer, tmp_path: Path
) -> None:
    """The hostname is verified: a certificate signed by the right CA but made
    for another name is refused."""
    files = tls_server.files
    saved = tmp_path / "saved"
    saved.mkdir()
    for path in (files.cert, files.key):
        shutil.copy(path, saved / path.name)
    other = make_server_cert(tmp_path, tls_server.authority, "DNS:db.example.invalid")
    shutil.copy(other.cert, files.cert)
    shutil.copy(other.key, files.key)
    tls_server.server.execute("FLUSH SSL")
    settings = tls_server.server.settings(ssl_ca=str(files.ca))

    try:
        refused = await refusal(settings)
    finally:
        for path in (files.cert, files.key):
            shutil.copy(saved / path.name, path)
        tls_server.server.execute("FLUSH SSL")

    assert "mismatch" in refused
    assert (await session_status(settings))["Ssl_cipher"]


async def test_disable_ssl_connects_in_clear_with_a_warning(
    tls_server: TlsServer, caplog: pytest.LogCaptureFixture
) -> None:
    """disable_ssl wins over ssl_ca: no TLS, and the sink warns once."""
    settings = tls_server.server.settings(
        ssl_ca=str(tls_server.files.ca), disable_ssl=True
    )

    with caplog.at_level(logging.WARNING, logger="mbasic_tracking.sinks.mysql"):
        sink = MySQLSink(settings)
    assert await sink.ping()
    await sink.close()

    assert not settings.uses_tls
    assert (await session_status(settings))["Ssl_cipher"] == ""
    assert "TLS to mysql://root:***@127.0.0.1" in caplog.text
    assert "disabled" in caplog.text


def test_migrate_tracker_and_rollup_work_over_tls(tls_server: TlsServer) -> None:
    """The whole path over a verified connection: migrate and rollup from the
    command line (ssl_ca in the URL), the tracker's batch between them."""
    import asyncio

    port = tls_server.server.port
    url = f"mysql://root@127.0.0.1:{port}/tls_demo?ssl_ca={tls_server.files.ca}"
    runner = CliRunner()
    tls_server.server.execute("CREATE DATABASE IF NOT EXISTS tls_demo")

    async def track() -> dict[str, Any]:
        tracker = UsageTracker(TrackingConfig.from_url(url, flush_interval=0.05))
        tracker.start_ide_session("tls-1", "agent", "192.0.2.7")
        tracker.track_program_execution("tls-1", 10, 2, 9, True)
        tracker.end_ide_session("tls-1")
        assert await tracker.flush(timeout=10)
        stats = tracker.stats()
        await tracker.stop(timeout=5)
        return stats

    with tls_sockets_collected():
        migrated = runner.invoke(app, ["migrate", "--database-url", url])
        stats = asyncio.run(track())
        rolled = runner.invoke(app, ["rollup", "--database-url", url])

    assert migrated.exit_code == 0, migrated.output
    assert (stats["written"], stats["failed"]) == (3, 0)
    assert rolled.exit_code == 0, rolled.output
    assert tls_server.server.execute(
        "SELECT SUM(programs_run), SUM(total_lines_executed) FROM daily_usage_summary",
        database="tls_demo",
    ) == [(1, 9)]


async def test_a_server_without_tls_is_refused_when_tls_is_required(
    mysql_server: MySQLSettings, tls_server: TlsServer
) -> None:
    """With ssl_ca set, a server that does not offer TLS (the shared test server)
    must be refused rather than used in clear text."""
    settings = dataclasses.replace(mysql_server, ssl_ca=str(tls_server.files.ca))

    assert "TLS is required, and the server does not offer it" in await refusal(
        settings
    )
