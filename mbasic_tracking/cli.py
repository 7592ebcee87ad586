"""``mbasic-tracking``: the operator's command line.

Every command finds the database from ``--database-url``, else from the
environment (``MBASIC_TRACKING_DATABASE_URL``, or the IDE's ``MYSQL_*``
variables). Nothing here starts a tracker.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Annotated, Optional

import typer

from .config import ConfigError, MySQLSettings, TrackingConfig

__all__ = ["app", "main"]

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


def main() -> None:
    """Entry point of the console script."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
