"""Run a NiceGUI app as a real server process on a free port, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx

T = TypeVar("T")


def free_port() -> int:
    """A port the OS just handed out on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A running server process."""

    process: subprocess.Popen[bytes]
    url: str
    log: IO[bytes]

    def output(self) -> str:
        """Everything the process printed so far (stdout and stderr)."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, as Kubernetes sends it; waits for the exit and returns its code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"server ignored SIGTERM:\n{self.output()}") from None


@contextmanager
def run_server(
    args: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/health",
    startup_timeout: float = 30.0,
) -> Iterator[Server]:
    """Start ``python args...``, wait until ``ready_path`` answers, and stop it
    with SIGTERM (then SIGKILL) when the block ends."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    # NiceGUI takes a server started under pytest for its own screen tests.
    environment.pop("PYTEST_CURRENT_TEST", None)
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        [sys.executable, *args],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(server, ready_path, startup_timeout)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


@contextmanager
def run_demo(
    data_dir: Path,
    *,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[Server]:
    """The demo IDE (``python -m mbasic_tracking.demo``) on a free port."""
    port = free_port()
    args = [
        "-m",
        "mbasic_tracking.demo",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        *extra_args,
    ]
    with run_server(args, port=port, env=env) as server:
        yield server


def _wait_ready(server: Server, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited early:\n{server.output()}")
        try:
            if httpx.get(server.url + path, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)

    raise AssertionError(f"server not ready after {timeout} s:\n{server.output()}")


def eventually(
    check: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.1
) -> T:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = check()

    assert value, f"still {value!r} after {timeout} s"
    return value


def sqlite_rows(path: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows from the demo's SQLite file, read through a fresh connection."""
    import sqlite3

    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as connection:
        try:
            return list(connection.execute(sql, args))
        except sqlite3.OperationalError:
            return []  # the tables are not there yet
