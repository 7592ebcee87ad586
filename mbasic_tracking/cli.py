"""``mbasic-tracking``: the operator's command line.

Every command finds the database from ``--database-url``, else from the
environment (``MBASIC_TRACKING_DATABASE_URL``, or the IDE's ``MYSQL_*``
variables). Nothing here starts a tracker.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Optional, TypeVar

import typer

from .config import ConfigError, MySQLSettings, TrackingConfig

__all__ = ["app", "main"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

app = typer.Typer(
    name="mbasic-tracking",
    help="Schema, rollups, retention and reports for MBASIC usage tracking.",
    no_args_is_help=True,
    add_completion=False,
)

DatabaseUrl = Annotated[
    Optional[str],  # noqa: UP045 - typer needs Optional here
    typer.Option(
        "--database-url",
        envvar="MBASIC_TRACKING_DATABASE_URL",
        help="mysql://user:password@host:port/db (default: MYSQL_* variables).",
        show_envvar=True,
    ),
]


@app.callback()
def _root() -> None:
    """Schema, rollups, retention and reports for MBASIC usage tracking."""


def mysql_settings(database_url: str | None) -> MySQLSettings:
    """The MySQL settings named by ``--database-url`` or the environment.

    Exits with status 2 and a message naming the setting when there are none.
    """
    try:
        config = (
            TrackingConfig.from_url(database_url)
            if database_url
            else TrackingConfig.from_env()
        )
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None

    if config.mysql is None:
        typer.echo("error: --database-url: this command needs a mysql:// URL", err=True)
        raise typer.Exit(2)

    if config.mysql.disable_ssl:
        logger.warning(
            "TLS to %s is disabled by configuration: credentials and data cross "
            "the network in clear text",
            config.mysql.redacted_url(),
        )

    return config.mysql


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Apply pending schema files; a no-op when the database is up to date."""
    from .migrate import apply_mysql

    settings = mysql_settings(database_url)
    applied = asyncio.run(apply_mysql(settings))

    if applied:
        typer.echo(f"applied {', '.join(applied)} to {settings.redacted_url()}")
    else:
        typer.echo(f"{settings.redacted_url()} is up to date")


# -- rollup, purge, report, accounts ---------------------------------------------


class ReportFormat(StrEnum):
    """Output formats of ``report``."""

    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def rollup(
    database_url: DatabaseUrl = None,
    since: Annotated[
        Optional[datetime],  # noqa: UP045 - typer needs Optional here
        typer.Option(
            formats=["%Y-%m-%d"],
            help="Recompute every UTC day from DATE to today "
            "(default: what changed since the last run, and yesterday and today).",
            metavar="DATE",
        ),
    ] = None,
    idle_minutes: Annotated[
        int,
        typer.Option(min=1, help="Close sessions idle for longer than this first."),
    ] = 30,
) -> None:
    """Close stale sessions, then recompute daily_usage_summary per UTC day."""
    from .rollup import rollup as run_rollup

    settings = mysql_settings(database_url)
    progress = _DayProgress()
    try:
        result = _run(
            run_rollup(
                settings,
                since=since.date() if since else None,
                idle_minutes=idle_minutes,
                on_day=progress.update,
            )
        )
    finally:
        progress.close()

    typer.echo(
        f"closed {result.closed_sessions} stale sessions; "
        f"recomputed {len(result.days)} days"
        + (f" ({result.days[0]} to {result.days[-1]})" if result.days else "")
    )
    if result.skipped_purged:
        typer.echo(
            f"left {len(result.skipped_purged)} days before the purge cutoff "
            "as they are: their raw rows are gone, their summary is final"
        )


@app.command()
def purge(
    database_url: DatabaseUrl = None,
    older_than: Annotated[
        int,
        typer.Option(min=1, help="Delete raw rows of UTC days older than this."),
    ] = 180,
    chunk_size: Annotated[
        int, typer.Option(min=1, max=100_000, help="Rows per DELETE statement.")
    ] = 5_000,
    dry_run: Annotated[
        bool, typer.Option(help="Check and count, delete nothing.")
    ] = False,
) -> None:
    """Delete raw event rows of days older than --older-than days.

    Refuses (and deletes nothing) when a day to delete is not rolled up.
    daily_usage_summary is never touched.
    """
    from .retention import NotRolledUpError
    from .retention import purge as run_purge

    settings = mysql_settings(database_url)
    progress = _RowProgress()
    try:
        result = _run(
            run_purge(
                settings,
                older_than_days=older_than,
                chunk_size=chunk_size,
                dry_run=dry_run,
                on_progress=progress.update,
            )
        )
    except NotRolledUpError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        progress.close()

    verb = "would delete" if result.dry_run else "deleted"
    counts = ", ".join(f"{n} {table}" for table, n in result.deleted.items())
    typer.echo(f"{verb} rows before {result.cutoff:%Y-%m-%d}: {counts or 'none'}")


@app.command()
def report(
    database_url: DatabaseUrl = None,
    days: Annotated[
        int, typer.Option(min=1, max=3660, help="UTC days to show, today included.")
    ] = 14,
    sessions: Annotated[
        int, typer.Option(min=0, max=10_000, help="Recent sessions to show.")
    ] = 20,
    output: Annotated[
        ReportFormat, typer.Option("--format", help="table, csv or json.")
    ] = ReportFormat.table,
) -> None:
    """The daily summary and the most recent sessions."""
    from rich.console import Console

    from .report import load_report, render_csv, render_json, render_table

    settings = mysql_settings(database_url)
    loaded = _run(load_report(settings, days=days, sessions=sessions))

    if output is ReportFormat.csv:
        render_csv(loaded, sys.stdout)
    elif output is ReportFormat.json:
        render_json(loaded, sys.stdout)
    else:
        render_table(loaded, Console())


@app.command()
def accounts(
    database_url: DatabaseUrl = None,
    role: Annotated[
        Optional[list[str]],  # noqa: UP045 - typer needs Optional here
        typer.Option(help="writer, rollup or dashboard; repeat it (default: all)."),
    ] = None,
    prefix: Annotated[str, typer.Option(help="User names are PREFIX + role.")] = (
        "mbasic_"
    ),
    host: Annotated[str, typer.Option(help="The accounts' host part.")] = "%",
    database: Annotated[
        Optional[str],  # noqa: UP045 - typer needs Optional here
        typer.Option(help="Database to grant on (default: the URL's)."),
    ] = None,
    apply: Annotated[
        bool, typer.Option(help="Create the accounts (the URL's user must be admin).")
    ] = False,
    show_passwords: Annotated[
        bool, typer.Option(help="Print the passwords (generated or given).")
    ] = False,
) -> None:
    """Print, or --apply, least-privilege accounts: writer, rollup, dashboard.

    Passwords come from MBASIC_TRACKING_<ROLE>_PASSWORD when set; otherwise
    --apply generates them, and then needs --show-passwords so that they are
    not lost. Printed SQL holds placeholders unless --show-passwords is given.
    """
    import os

    from .accounts import ROLES, apply_accounts, make_accounts, render_sql

    roles = role or list(ROLES)
    given = {
        name: os.environ[f"MBASIC_TRACKING_{name.upper()}_PASSWORD"]
        for name in roles
        if os.environ.get(f"MBASIC_TRACKING_{name.upper()}_PASSWORD")
    }
    missing = [name for name in roles if name not in given]
    if apply and missing and not show_passwords:
        typer.echo(
            f"error: no password for {', '.join(missing)}: set "
            f"MBASIC_TRACKING_<ROLE>_PASSWORD, or pass --show-passwords to "
            "generate and print them",
            err=True,
        )
        raise typer.Exit(2)

    try:
        made = make_accounts(
            roles,
            prefix=prefix,
            host=host,
            passwords=given if (apply or show_passwords) else None,
            generate=apply or show_passwords,
        )
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None

    if not apply:
        name = database or mysql_settings(database_url).database
        typer.echo(render_sql(made, name), nl=False)
        return

    settings = mysql_settings(database_url)
    _run(apply_accounts(settings, made, database=database))

    for account in made:
        secret = f" password={account.password}" if show_passwords else ""
        typer.echo(f"{account.role}: '{account.user}'@'{account.host}'{secret}")


def _run(work: Coroutine[Any, Any, _T]) -> _T:
    """Run ``work``; server and lock errors become one line and exit status 1
    (3 when another job holds the lock)."""
    import pymysql

    from .jobs import JobBusyError

    try:
        return asyncio.run(work)
    except JobBusyError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(3) from None
    except (pymysql.err.MySQLError, OSError, TimeoutError) as error:
        detail = error.args[1] if len(error.args) > 1 else error
        typer.echo(f"error: the database refused or did not answer: {detail}", err=True)
        raise typer.Exit(1) from None


class _DayProgress:
    """A rich progress bar on stderr for back-fills longer than a few days."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def update(self, day: date, done: int, total: int) -> None:
        if total <= 3:
            return
        if self._progress is None:
            from rich.console import Console
            from rich.progress import Progress

            self._progress = Progress(console=Console(stderr=True))
            self._progress.start()
            self._task = self._progress.add_task("rolling up days", total=total)
        self._progress.update(self._task, completed=done, description=f"day {day}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


class _RowProgress:
    """A rich spinner with a running count of deleted rows, on stderr."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def update(self, table: str, deleted: int) -> None:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                console=Console(stderr=True),
            )
            self._progress.start()
        if table not in self._tasks:
            self._tasks[table] = self._progress.add_task(table, total=None)
        self._progress.update(self._tasks[table], description=f"{table}: {deleted}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def main() -> None:
    """Entry point of the console script."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
