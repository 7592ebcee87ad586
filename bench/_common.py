"""What every benchmark shares: results, the server, scratch databases, numbers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import pymysql

from mbasic_tracking import MySQLSettings, TrackingConfig, UsageTracker
from mbasic_tracking.migrate import apply_mysql

__all__ = [
    "Result",
    "admin_connection",
    "main",
    "percentile",
    "query",
    "scalar",
    "scratch_database",
    "server_settings",
]

DEFAULT_URL: Final = "mysql://root@127.0.0.1:3306/test"
PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")

Check = Literal["<=", ">=", "=="]


@dataclass(frozen=True, slots=True)
class Result:
    """One measured figure, with the limit it is held to (None: for reference)."""

    target: str
    metric: str
    value: float
    unit: str
    check: Check | None = None
    limit: float | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        """PASS or FAIL against the limit; ``info`` for a reference figure."""
        if self.check is None or self.limit is None:
            return "info"

        passed = {
            "<=": self.value <= self.limit,
            ">=": self.value >= self.limit,
            "==": self.value == self.limit,
        }[self.check]

        return "PASS" if passed else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        return cls(**data)


def server_settings() -> MySQLSettings:
    """Admin settings for the benchmark server; the user must create databases."""
    url = (
        os.environ.get("MBASIC_TRACKING_BENCH_DATABASE_URL")
        or os.environ.get("MBASIC_TRACKING_TEST_DATABASE_URL")
        or DEFAULT_URL
    )
    settings = TrackingConfig.from_url(url).mysql
    if settings is None:
        raise SystemExit(f"bench needs a mysql:// URL, got {url!r}")

    return settings


@contextlib.asynccontextmanager
async def scratch_database() -> AsyncIterator[MySQLSettings]:
    """A new database ``mbt_bench_<hex>``, migrated; dropped on the way out."""
    server = server_settings()
    settings = dataclasses.replace(server, database=f"mbt_bench_{secrets.token_hex(4)}")
    await apply_mysql(settings)
    try:
        yield settings
    finally:
        with admin_connection(server) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{settings.database}`")


def admin_connection(settings: MySQLSettings) -> pymysql.Connection[Any]:
    """A plain synchronous autocommit connection."""
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


def query(settings: MySQLSettings, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql``, read through a fresh connection."""
    with admin_connection(settings) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def scalar(settings: MySQLSettings, sql: str) -> Any:
    """The single value of ``sql``."""
    return query(settings, sql)[0][0]


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return float("nan")

    rank = max(1, round(fraction * len(ordered) + 0.5))

    return ordered[min(rank, len(ordered)) - 1]


def rss_bytes() -> int:
    """This process's resident set size, from /proc/self/statm."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def main(
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, list[Result]]],
    parser: argparse.ArgumentParser,
) -> None:
    """Run one benchmark from the command line.

    With ``--json PATH`` the results go to PATH (that is how ``python -m bench``
    collects them); without it they are printed as a table.
    """
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    # SIGTERM unwinds like Ctrl-C, so the scratch database is still dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    results = asyncio.run(run(args))

    if args.json is not None:
        args.json.write_text(json.dumps([result.to_json() for result in results]))
        return

    from ._report import format_table

    print(format_table(results))


SESSIONS: Final = [f"bench-session-{index:04d}" for index in range(100)]
FEATURES: Final = ("debugger", "compiler", "save", "load", "renumber")


def emit(tracker: UsageTracker, index: int) -> None:
    """Event ``index`` of the handlers' mix: program runs and feature uses, in
    turn, over 100 sessions, with fresh numbers and a small ``feature_data``."""
    session = SESSIONS[index % 100]
    if index % 2:
        tracker.track_feature_usage(
            session, FEATURES[index % 5], {"line": index % 500, "ok": True}
        )
    else:
        tracker.track_program_execution(
            session, 42, index % 5_000, index * 7 % 100_000, index % 10 != 0
        )
