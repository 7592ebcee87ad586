"""Settings for the tracker, and their validation.

A ``TrackingConfig`` is made from the IDE's ``usage_tracking`` section (a dict),
from environment variables, or from a database URL. Every way in validates the
same fields and fails at once with a ``ConfigError`` that names the key and what
is allowed. A config's ``repr`` never shows the password or the IP hash secret.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from .privacy import IP_MODES, IpMode

__all__ = ["ConfigError", "MySQLSettings", "TrackingConfig"]

_ENV_REFERENCE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})
_MASK: Final = "***"


class ConfigError(ValueError):
    """A setting is missing or invalid. The message names the key."""


@dataclass(frozen=True, kw_only=True)
class MySQLSettings:
    """Where the MySQL (or MariaDB) server is and how to reach it.

    ``ssl_ca`` is a CA bundle as a file path or as PEM text. With ``ssl_ca`` set,
    or a host that is not on this machine, TLS is used and the server's
    certificate is verified. ``disable_ssl`` turns TLS off (the tracker warns).
    """

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)
    database: str = "mbasic_logs"
    unix_socket: str | None = None
    disable_ssl: bool = False
    ssl_ca: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        password = _MASK if self.password else "''"
        ca = "<set>" if self.ssl_ca else None
        return (
            f"MySQLSettings(host={self.host!r}, port={self.port}, user={self.user!r}, "
            f"password={password}, database={self.database!r}, "
            f"unix_socket={self.unix_socket!r}, disable_ssl={self.disable_ssl}, "
            f"ssl_ca={ca})"
        )

    @property
    def uses_tls(self) -> bool:
        """Whether connections are encrypted (and the server verified)."""
        if self.disable_ssl:
            return False

        return bool(self.ssl_ca) or not _is_local(self.host, self.unix_socket)

    def redacted_url(self) -> str:
        """``mysql://user:***@host:port/db``: safe for logs and health output."""
        where = (
            f"unix:{self.unix_socket}"
            if self.unix_socket
            else f"{self.host}:{self.port}"
        )
        return f"mysql://{self.user}:{_MASK}@{where}/{self.database}"


@dataclass(frozen=True, kw_only=True)
class TrackingConfig:
    """Everything the tracker needs to know, validated.

    Exactly one destination is set when ``enabled``: ``mysql`` or ``sqlite_path``.
    Every field is documented in the README's settings table.
    """

    enabled: bool = True
    mysql: MySQLSettings | None = None
    sqlite_path: str | None = None

    queue_size: int = 50_000
    batch_size: int = 5_000
    flush_interval: float = 0.5

    ip_mode: IpMode = "truncate"
    ip_hash_secret: str | None = field(default=None, repr=False)

    connect_timeout: float = 5.0
    statement_timeout: float = 15.0
    retry_initial_wait: float = 0.1
    retry_max_wait: float = 30.0

    spool_dir: str | None = None
    spool_max_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        _validate(self)

    def __repr__(self) -> str:
        shown = []
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.name == "ip_hash_secret":
                shown.append(f"ip_hash_secret={_MASK if value else None}")
            else:
                shown.append(f"{item.name}={value!r}")
        return f"TrackingConfig({', '.join(shown)})"

    @property
    def destination(self) -> str:
        """Where rows go, without secrets: for logs, health output and the demo."""
        if self.mysql is not None:
            return self.mysql.redacted_url()
        if self.sqlite_path is not None:
            return f"sqlite:///{self.sqlite_path}"
        return "nowhere (tracking disabled)"

    # -- ways in --------------------------------------------------------------

    @classmethod
    def from_dict(
        cls, section: Mapping[str, Any], *, environ: Mapping[str, str] | None = None
    ) -> TrackingConfig:
        """Build from the IDE's ``usage_tracking`` section.

        ``${NAME}`` inside any string value is replaced from ``environ`` (the
        process environment by default); a reference to an unset variable is an
        error naming the key. Unknown keys are errors too: a typo must not pass
        silently.
        """
        env = os.environ if environ is None else environ
        if not isinstance(section, Mapping):
            raise ConfigError(
                f"usage_tracking: expected a mapping, got {type(section).__name__}"
            )

        values = _expand(dict(section), env, "usage_tracking")
        _reject_unknown(values, _TOP_KEYS, "usage_tracking")
        kwargs: dict[str, Any] = {}

        if "enabled" in values:
            kwargs["enabled"] = _boolean(values["enabled"], "usage_tracking.enabled")

        mysql = values.get("mysql")
        if isinstance(mysql, Mapping) and values.get("ssl_ca"):
            # A top-level ssl_ca is the same setting as mysql.ssl_ca.
            mysql = {"ssl_ca": values["ssl_ca"], **mysql}
        if mysql is not None:
            kwargs["mysql"] = _mysql_from_mapping(mysql, "usage_tracking.mysql")

        sqlite = values.get("sqlite")
        if sqlite is not None:
            if not isinstance(sqlite, Mapping) or "path" not in sqlite:
                raise ConfigError("usage_tracking.sqlite: expected {'path': FILE}")
            _reject_unknown(dict(sqlite), {"path"}, "usage_tracking.sqlite")
            kwargs["sqlite_path"] = str(sqlite["path"])

        if "database_url" in values:
            kwargs.update(
                _from_url(str(values["database_url"]), "usage_tracking.database_url")
            )

        for name in _TUNABLES:
            if name in values:
                kwargs[name] = _coerce(name, values[name], f"usage_tracking.{name}")

        if not kwargs.get("enabled", True):
            kwargs.pop("mysql", None)
            kwargs.pop("sqlite_path", None)

        return cls(**kwargs)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> TrackingConfig:
        """Build from ``mysql://user:password@host:port/db?ssl_ca=...`` or
        ``sqlite:///path/to/file.db``. Query parameters set the MySQL options
        ``ssl_ca``, ``disable_ssl`` and ``unix_socket``."""
        return cls(**_from_url(url, "database_url"), **overrides)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TrackingConfig:
        """Build from ``MBASIC_TRACKING_DATABASE_URL``, or else from the IDE's
        ``MYSQL_HOST``, ``MYSQL_PORT``, ``MYSQL_USER``, ``MYSQL_PASSWORD`` and
        ``MYSQL_DATABASE`` (plus ``MYSQL_CA_CERT``, a CA as PEM text or path).

        ``MBASIC_TRACKING_<SETTING>`` sets any tunable, for example
        ``MBASIC_TRACKING_IP_MODE=hash``. Raises ConfigError when no database is
        named.
        """
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}

        for name in _TUNABLES:
            key = f"MBASIC_TRACKING_{name.upper()}"
            if key in env:
                kwargs[name] = _coerce(name, env[key], key)

        url = env.get("MBASIC_TRACKING_DATABASE_URL")
        if url:
            return cls(**_from_url(url, "MBASIC_TRACKING_DATABASE_URL"), **kwargs)

        if not env.get("MYSQL_HOST"):
            raise ConfigError(
                "MBASIC_TRACKING_DATABASE_URL: not set, and neither is MYSQL_HOST; "
                "set one of them (mysql://user:password@host:port/db)"
            )

        mysql = {
            "host": env["MYSQL_HOST"],
            "port": env.get("MYSQL_PORT", "3306"),
            "user": env.get("MYSQL_USER", "root"),
            "password": env.get("MYSQL_PASSWORD", ""),
            "database": env.get("MYSQL_DATABASE", "mbasic_logs"),
        }
        if env.get("MYSQL_CA_CERT"):
            mysql["ssl_ca"] = env["MYSQL_CA_CERT"]

        return cls(mysql=_mysql_from_mapping(mysql, "MYSQL_*"), **kwargs)


# -- validation ----------------------------------------------------------------

_MYSQL_KEYS: Final = frozenset(f.name for f in dataclasses.fields(MySQLSettings))
_TUNABLES: Final = (
    "queue_size",
    "batch_size",
    "flush_interval",
    "ip_mode",
    "ip_hash_secret",
    "connect_timeout",
    "statement_timeout",
    "retry_initial_wait",
    "retry_max_wait",
    "spool_dir",
    "spool_max_bytes",
)
_TOP_KEYS: Final = frozenset(
    {"enabled", "mysql", "sqlite", "database_url", "ssl_ca", *_TUNABLES}
)

# name: (type, minimum, maximum)
_LIMITS: Final[dict[str, tuple[type, float, float]]] = {
    "queue_size": (int, 1, 10_000_000),
    "batch_size": (int, 1, 10_000),
    "flush_interval": (float, 0.001, 60.0),
    "connect_timeout": (float, 0.1, 300.0),
    "statement_timeout": (float, 0.1, 3600.0),
    "retry_initial_wait": (float, 0.001, 60.0),
    "retry_max_wait": (float, 0.01, 3600.0),
    "spool_max_bytes": (int, 0, 1 << 50),
}


def _validate(config: TrackingConfig) -> None:
    for name, (kind, low, high) in _LIMITS.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        if kind is int and not isinstance(value, int):
            raise ConfigError(f"{name}: expected a whole number, got {value!r}")
        if not low <= value <= high:
            raise ConfigError(
                f"{name}: {value!r} is out of range; allowed {low}..{high}"
            )

    if config.retry_initial_wait > config.retry_max_wait:
        raise ConfigError("retry_initial_wait: must not exceed retry_max_wait")

    if config.ip_mode not in IP_MODES:
        raise ConfigError(
            f"ip_mode: {config.ip_mode!r} is not allowed; "
            f"allowed: {', '.join(IP_MODES)}"
        )

    if config.ip_mode == "hash" and len(config.ip_hash_secret or "") < 16:
        raise ConfigError(
            "ip_hash_secret: ip_mode 'hash' needs a secret of at least 16 characters"
        )

    if config.mysql is not None and not isinstance(config.mysql, MySQLSettings):
        raise ConfigError("mysql: expected MySQLSettings")

    if config.enabled and (config.mysql is None) == (config.sqlite_path is None):
        raise ConfigError(
            "mysql: an enabled tracker needs exactly one destination: "
            "'mysql' settings or a 'sqlite' path"
        )

    if config.mysql is not None:
        _validate_mysql(config.mysql, "mysql")


def _validate_mysql(settings: MySQLSettings, where: str) -> None:
    if not settings.unix_socket and not settings.host:
        raise ConfigError(f"{where}.host: empty; give a host name or a unix_socket")
    if not 1 <= settings.port <= 65535:
        raise ConfigError(
            f"{where}.port: {settings.port} is out of range; allowed 1..65535"
        )
    if not settings.user:
        raise ConfigError(f"{where}.user: empty; a user name is required")
    if not re.fullmatch(r"[A-Za-z0-9_$]{1,64}", settings.database):
        raise ConfigError(
            f"{where}.database: {settings.database!r} is not allowed; "
            "letters, digits, '_' and '$', at most 64"
        )


def _mysql_from_mapping(raw: Any, where: str) -> MySQLSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")

    values = dict(raw)
    _reject_unknown(values, _MYSQL_KEYS, where)
    kwargs: dict[str, Any] = {}

    for key in ("host", "user", "password", "database"):
        if key in values and values[key] is not None:
            kwargs[key] = str(values[key])

    if values.get("port") not in (None, ""):
        kwargs["port"] = _integer(values["port"], f"{where}.port")

    for key in ("unix_socket", "ssl_ca"):
        if values.get(key):
            kwargs[key] = str(values[key])

    if "disable_ssl" in values:
        kwargs["disable_ssl"] = _boolean(values["disable_ssl"], f"{where}.disable_ssl")

    settings = MySQLSettings(**kwargs)
    _validate_mysql(settings, where)

    return settings


def _from_url(url: str, where: str) -> dict[str, Any]:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]

    if scheme == "sqlite":
        # sqlite:///relative/file.db and sqlite:////absolute/file.db
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path:
            raise ConfigError(
                f"{where}: a sqlite URL needs a file: sqlite:///path/to/file.db"
            )
        return {"sqlite_path": path}

    if scheme not in ("mysql", "mariadb"):
        raise ConfigError(
            f"{where}: scheme {parts.scheme!r} is not allowed; "
            "allowed: mysql, mariadb, sqlite"
        )

    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    _reject_unknown(query, {"ssl_ca", "disable_ssl", "unix_socket"}, f"{where} query")

    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{where}: the port is not a number in 1..65535") from None

    mysql: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": unquote(parts.path.lstrip("/")) or "mbasic_logs",
        **query,
    }

    return {"mysql": _mysql_from_mapping(mysql, where)}


def _expand(value: Any, env: Mapping[str, str], where: str) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"{where}: environment variable {name} is not set")
            return env[name]

        return _ENV_REFERENCE.sub(substitute, value)

    if isinstance(value, Mapping):
        return {k: _expand(v, env, f"{where}.{k}") for k, v in value.items()}

    return value


def _reject_unknown(
    values: Mapping[str, Any], allowed: frozenset[str] | set[str], where: str
) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key; allowed: {', '.join(sorted(allowed))}"
        )


def _coerce(name: str, value: Any, where: str) -> Any:
    if name == "ip_mode":
        mode = str(value).strip().lower()
        if mode not in IP_MODES:
            raise ConfigError(
                f"{where}: {value!r} is not allowed; allowed: {', '.join(IP_MODES)}"
            )
        return mode

    if name in ("ip_hash_secret", "spool_dir"):
        return None if value in (None, "") else str(value)

    kind = _LIMITS[name][0]
    return _integer(value, where) if kind is int else _number(value, where)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a whole number, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ConfigError(f"{where}: expected a whole number, got {value!r}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if value in (0, 1):
        return bool(value)
    raise ConfigError(f"{where}: expected true or false, got {value!r}")


def _is_local(host: str, unix_socket: str | None) -> bool:
    if unix_socket or host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_ca(ssl_ca: str) -> tuple[str | None, str | None]:
    """Split ``ssl_ca`` into (cafile, cadata): PEM text is data, else a path."""
    if "-----BEGIN" in ssl_ca:
        return None, ssl_ca
    if not Path(ssl_ca).is_file():
        raise ConfigError(
            f"mysql.ssl_ca: no file at {ssl_ca!r}; give a path or PEM text"
        )
    return ssl_ca, None
