"""A private MariaDB server for tests that must kill, restart or configure one.

The shared server on 127.0.0.1:3306 must never be killed by a test. Tests that
need a server of their own (SIGKILL under load, TLS with certificates they make)
start ``mariadbd`` with its own data folder, port and socket under a temporary
directory. The data folder survives ``kill()`` and ``start()``, as a real
server's disk would.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pymysql

from mbasic_tracking import MySQLSettings

INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"


@dataclass(frozen=True)
class TlsFiles:
    """Server-side TLS material: the CA that signed the server certificate."""

    ca: Path
    cert: Path
    key: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateMariaDB:
    """``mariadbd`` in ``base_dir``, root without a password, on 127.0.0.1:port."""

    def __init__(
        self, base_dir: Path, *, port: int | None = None, tls: TlsFiles | None = None
    ) -> None:
        self.base_dir = base_dir
        self.port = port or free_port()
        self.tls = tls
        self.data_dir = base_dir / "data"
        self.socket_path = base_dir / "mysqld.sock"
        self.log_path = base_dir / "error.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrivateMariaDB:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def settings(self, database: str = "test", **overrides: object) -> MySQLSettings:
        """Client settings for this server (TCP, root, no password)."""
        values: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "user": "root",
            "password": "",
            "database": database,
        }
        values.update(overrides)
        return MySQLSettings(**values)  # type: ignore[arg-type]

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (initializing the data folder the first time) and
        wait until it accepts connections."""
        if self.running:
            return

        self.base_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "mysql").is_dir():
            self._install()

        arguments = [
            MARIADBD,
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket_path}",
            f"--pid-file={self.base_dir / 'mysqld.pid'}",
            f"--log-error={self.log_path}",
            "--user=root",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
            "--max-connections=50",
        ]
        if self.tls is not None:
            arguments += [
                f"--ssl-ca={self.tls.ca}",
                f"--ssl-cert={self.tls.cert}",
                f"--ssl-key={self.tls.key}",
            ]

        self._process = subprocess.Popen(
            arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_ready(timeout)
        self._ensure_database("test")

    def kill(self) -> None:
        """SIGKILL the server, as a crash or an OOM kill would, and reap it."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        self._process = None

    def stop(self) -> None:
        """Shut the server down cleanly (SIGTERM)."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        self._process = None

    def execute(
        self, sql: str, database: str | None = None
    ) -> list[tuple[object, ...]]:
        """Run one statement as root over the server's socket; returns its rows."""
        connection = pymysql.connect(
            unix_socket=str(self.socket_path),
            user="root",
            database=database,
            autocommit=True,
        )
        with connection, connection.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())

    def _install(self) -> None:
        result = subprocess.run(
            [
                INSTALL_DB,
                "--no-defaults",
                f"--datadir={self.data_dir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ],
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"mariadb-install-db failed ({result.returncode}): "
                f"{result.stderr.decode(errors='replace')[-2000:]}"
            )

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"mariadbd exited; see {self.log_path}:\n{self._log_tail()}"
                )
            # Probe the socket first: PyMySQL leaks the socket of a refused
            # attempt, which warnings-as-errors would turn into a failure.
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(self.socket_path))
                except OSError:
                    time.sleep(0.1)
                    continue
            try:
                self.execute("SELECT 1")
                return
            except pymysql.err.MySQLError:
                time.sleep(0.1)
        raise TimeoutError(
            f"mariadbd did not start in {timeout} s:\n{self._log_tail()}"
        )

    def _ensure_database(self, name: str) -> None:
        self.execute(f"CREATE DATABASE IF NOT EXISTS `{name}`")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no error log)"
