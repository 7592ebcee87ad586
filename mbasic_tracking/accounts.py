"""Least-privilege accounts: the SQL that creates them, and applying it.

Three roles, each with only what its job needs:

- ``writer``, for the IDE's tracker: SELECT, INSERT and UPDATE on the four event
  tables (``INSERT ... ON DUPLICATE KEY UPDATE`` needs all three). It can neither
  delete nor read the summary.
- ``rollup``, for the ``rollup`` and ``purge`` jobs: reads the event tables,
  closes stale sessions (UPDATE on ``ide_sessions``), deletes raw rows, writes
  ``daily_usage_summary`` and ``tracking_jobs``. It cannot delete summary rows
  or change the schema.
- ``dashboard``: SELECT on the whole database (tables and views), nothing else.

Table grants name tables that must exist: apply after ``mbasic-tracking
migrate``. Applying again resets each account to exactly these grants and the
given password. The statements contain passwords: they are never logged, and an
error from the server is reported without its statement text.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from .config import MySQLSettings

__all__ = [
    "ROLES",
    "Account",
    "AccountError",
    "Role",
    "account_statements",
    "apply_accounts",
    "make_accounts",
    "render_sql",
]

_EVENT_TABLES: Final = (
    "ide_sessions",
    "program_executions",
    "feature_usage",
    "page_visits",
)
_USER_NAME: Final = re.compile(r"[A-Za-z0-9_]{1,32}")
_HOST: Final = re.compile(r"[A-Za-z0-9_.%:\-/]{1,255}")
PASSWORD_PLACEHOLDER: Final = "<{role} password>"


class AccountError(RuntimeError):
    """An account could not be created or granted; the text names no secret."""


@dataclass(frozen=True, slots=True)
class Role:
    """A role: what it is for, and its grants as (privileges, table) pairs;
    table ``*`` means the whole database."""

    purpose: str
    grants: tuple[tuple[str, str], ...]


ROLES: Final[Mapping[str, Role]] = {
    "writer": Role(
        "the IDE's tracker: writes events and session rows",
        tuple(("SELECT, INSERT, UPDATE", table) for table in _EVENT_TABLES),
    ),
    "rollup": Role(
        "the rollup and purge jobs",
        (
            ("SELECT, UPDATE, DELETE", "ide_sessions"),
            ("SELECT, DELETE", "program_executions"),
            ("SELECT, DELETE", "feature_usage"),
            ("SELECT, DELETE", "page_visits"),
            ("SELECT, INSERT, UPDATE", "daily_usage_summary"),
            ("SELECT, INSERT, UPDATE", "tracking_jobs"),
        ),
    ),
    "dashboard": Role("dashboards and reports: reads everything", (("SELECT", "*"),)),
}


@dataclass(frozen=True, slots=True)
class Account:
    """One account to create: ``password`` None means a placeholder in SQL."""

    role: str
    user: str
    host: str
    password: str | None

    def __repr__(self) -> str:
        shown = "***" if self.password else None
        return (
            f"Account(role={self.role!r}, user={self.user!r}, host={self.host!r}, "
            f"password={shown})"
        )


def make_accounts(
    roles: Iterable[str],
    *,
    prefix: str = "mbasic_",
    host: str = "%",
    passwords: Mapping[str, str] | None = None,
    generate: bool = False,
) -> list[Account]:
    """Accounts named ``<prefix><role>`` for ``roles``.

    A role's password comes from ``passwords``, else is generated when
    ``generate``, else stays a placeholder. Raises ValueError naming a role,
    user name or host that is not allowed.
    """
    if not _HOST.fullmatch(host):
        raise ValueError(f"host: {host!r} is not allowed; letters, digits, . % : - /")

    accounts = []
    for role in roles:
        if role not in ROLES:
            raise ValueError(
                f"role: {role!r} is not allowed; allowed: {', '.join(ROLES)}"
            )
        user = f"{prefix}{role}"
        if not _USER_NAME.fullmatch(user):
            raise ValueError(
                f"prefix: user name {user!r} is not allowed; "
                "letters, digits and '_', at most 32"
            )
        password = (passwords or {}).get(role)
        if password is None and generate:
            password = secrets.token_urlsafe(24)
        accounts.append(Account(role, user, host, password))

    return accounts


def account_statements(account: Account, database: str) -> list[str]:
    """CREATE USER, password, REVOKE and GRANT statements for ``account``.

    With no password, the statements hold a placeholder to replace by hand.
    """
    user = f"'{account.user}'@'{account.host}'"
    password = _literal(
        account.password or PASSWORD_PLACEHOLDER.format(role=account.role)
    )
    statements = [
        f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY {password}",
        f"ALTER USER {user} IDENTIFIED BY {password}",
        f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {user}",
    ]
    for privileges, table in ROLES[account.role].grants:
        if table == "*":
            # In a database-wide grant '_' and '%' are wildcards: escape them so
            # that `mbasic_logs` does not also match `mbasicXlogs`.
            target = "`" + re.sub(r"([_%])", r"\\\1", database) + "`.*"
        else:
            target = f"`{database}`.`{table}`"
        statements.append(f"GRANT {privileges} ON {target} TO {user}")

    return statements


def render_sql(accounts: Iterable[Account], database: str) -> str:
    """The statements for ``accounts`` as a script ``mysql`` accepts."""
    lines = [f"-- least-privilege accounts for database `{database}`"]
    for account in accounts:
        lines.append(f"\n-- {account.role}: {ROLES[account.role].purpose}")
        lines.extend(f"{sql};" for sql in account_statements(account, database))

    return "\n".join(lines) + "\n"


async def apply_accounts(
    settings: MySQLSettings,
    accounts: Iterable[Account],
    *,
    database: str | None = None,
) -> None:
    """Create (or reset) ``accounts`` on the server, as the admin in ``settings``,
    with grants on ``database`` (by default the one ``settings`` names).

    Raises ValueError when an account has no password, and AccountError, naming
    the account and the server's error code, when the server refuses.
    """
    import pymysql

    from .sinks.mysql import connect

    accounts = list(accounts)
    target = database or settings.database
    for account in accounts:
        if not account.password:
            raise ValueError(f"password: none given for the {account.role} account")

    connection = await connect(settings, connect_timeout=10.0, autocommit=True)
    try:
        async with connection.cursor() as cursor:
            for account in accounts:
                for sql in account_statements(account, target):
                    try:
                        await cursor.execute(sql)
                    except pymysql.err.MySQLError as error:
                        raise AccountError(
                            f"{sql.split(' IDENTIFIED', 1)[0].split(' ON ', 1)[0]} "
                            f"for {account.user}: server error {error.args[0]}"
                        ) from None
    finally:
        connection.close()


def _literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"
