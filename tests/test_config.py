"""Configuration: every way in validates, and errors name the key."""

from __future__ import annotations

from typing import Any

import pytest

from mbasic_tracking import (
    ConfigError,
    MySQLSettings,
    TrackingConfig,
    init_usage_tracker,
)

IDE_SECTION: dict[str, Any] = {
    "enabled": True,
    "mysql": {
        "host": "${MYSQL_HOST}",
        "port": 25060,
        "user": "${MYSQL_USER}",
        "password": "${MYSQL_PASSWORD}",
        "database": "mbasic_logs",
    },
}
ENV = {"MYSQL_HOST": "db.example.com", "MYSQL_USER": "mbasic", "MYSQL_PASSWORD": "pw"}


def test_ide_section_with_environment_references() -> None:
    """The IDE's configmap section loads, ${NAME} replaced from the environment."""
    config = TrackingConfig.from_dict(IDE_SECTION, environ=ENV)

    assert config.enabled
    assert config.mysql == MySQLSettings(
        host="db.example.com",
        port=25060,
        user="mbasic",
        password="pw",
        database="mbasic_logs",
    )
    assert config.mysql.uses_tls  # a remote host is verified over TLS by default


def test_our_optional_keys_are_read() -> None:
    """queue_size, batch_size, flush_interval, ip_mode and ssl_ca are accepted."""
    section = {
        **IDE_SECTION,
        "mysql": {**IDE_SECTION["mysql"], "ssl_ca": "-----BEGIN CERTIFICATE-----x"},
        "queue_size": "2000",
        "batch_size": 100,
        "flush_interval": "0.25",
        "ip_mode": "hash",
        "ip_hash_secret": "0123456789abcdef0123",
    }
    config = TrackingConfig.from_dict(section, environ=ENV)

    assert (config.queue_size, config.batch_size, config.flush_interval) == (
        2000,
        100,
        0.25,
    )
    assert config.ip_mode == "hash"
    assert config.mysql is not None and config.mysql.ssl_ca is not None


@pytest.mark.parametrize(
    ("change", "key", "allowed"),
    [
        ({"queue_size": 0}, "queue_size", "1..10000000"),
        ({"queue_size": "lots"}, "queue_size", "whole number"),
        ({"batch_size": 20_000}, "batch_size", "1..10000"),
        ({"flush_interval": -1}, "flush_interval", "0.001..60.0"),
        ({"ip_mode": "full"}, "ip_mode", "truncate, hash, raw, none"),
        ({"ip_mode": "hash"}, "ip_hash_secret", "16 characters"),
        ({"enabled": "sometimes"}, "enabled", "true or false"),
        ({"queue_sise": 10}, "queue_sise", "unknown key"),
        ({"mysql": {"host": "h", "port": 70000}}, "port", "1..65535"),
        ({"mysql": {"host": "h", "prot": 1}}, "prot", "unknown key"),
        ({"mysql": {"host": "h", "database": "x; DROP"}}, "database", "letters"),
        (
            {"mysql": {"host": "h", "disable_ssl": "maybe"}},
            "disable_ssl",
            "true or false",
        ),
        ({"mysql": None}, "mysql", "exactly one destination"),
        ({"mysql": "db.example.com"}, "usage_tracking.mysql", "mapping"),
    ],
)
def test_invalid_settings_name_the_key(
    change: dict[str, Any], key: str, allowed: str
) -> None:
    """An invalid setting raises ConfigError naming the key and what is allowed."""
    section = {**IDE_SECTION, **change}

    with pytest.raises(ConfigError) as raised:
        TrackingConfig.from_dict(section, environ=ENV)

    assert key in str(raised.value)
    assert allowed in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_top_level_ssl_ca_applies_to_mysql() -> None:
    """``ssl_ca`` may sit beside ``mysql`` as well as inside it."""
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    config = TrackingConfig.from_dict({**IDE_SECTION, "ssl_ca": pem}, environ=ENV)

    assert config.mysql is not None and config.mysql.ssl_ca == pem


def test_unset_environment_variable_is_named() -> None:
    """A ${NAME} whose variable is unset is an error naming key and variable."""
    with pytest.raises(ConfigError, match=r"usage_tracking\.mysql\.host.*MYSQL_HOST"):
        TrackingConfig.from_dict(IDE_SECTION, environ={})


def test_init_raises_at_once_on_invalid_config() -> None:
    """init_usage_tracker fails at startup, not at the first tracking call."""
    with pytest.raises(ConfigError, match="batch_size"):
        init_usage_tracker(
            {"enabled": True, "mysql": {"host": "h"}, "batch_size": 0},
            register_nicegui=False,
        )


def test_disabled_section_needs_no_database() -> None:
    """``enabled: false`` is valid without any other key."""
    config = TrackingConfig.from_dict({"enabled": False})

    assert not config.enabled
    assert config.mysql is None


def test_url_with_options() -> None:
    """A mysql:// URL carries credentials (percent-decoded) and TLS options."""
    config = TrackingConfig.from_url(
        "mysql://writer:p%40ss%3Aword@db.internal:25060/mbasic_logs?ssl_ca=/etc/ca.pem"
    )

    assert config.mysql == MySQLSettings(
        host="db.internal",
        port=25060,
        user="writer",
        password="p@ss:word",
        database="mbasic_logs",
        ssl_ca="/etc/ca.pem",
    )


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///usage.db", "usage.db"),
        ("sqlite:////var/lib/usage.db", "/var/lib/usage.db"),
    ],
)
def test_sqlite_url(url: str, path: str) -> None:
    """sqlite:/// URLs name a relative or absolute file."""
    assert TrackingConfig.from_url(url).sqlite_path == path


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://h/db", "scheme 'postgres' is not allowed"),
        ("mysql://h:99999/db", "port"),
        ("mysql://h/db?sslca=x", "sslca"),
        ("sqlite://", "needs a file"),
    ],
)
def test_bad_urls_are_explained(url: str, message: str) -> None:
    """A bad URL fails with the reason."""
    with pytest.raises(ConfigError, match=message):
        TrackingConfig.from_url(url)


def test_from_env_prefers_the_url() -> None:
    """MBASIC_TRACKING_DATABASE_URL wins over the MYSQL_* variables; tunables apply."""
    config = TrackingConfig.from_env(
        {
            "MBASIC_TRACKING_DATABASE_URL": "mysql://u:p@a:1/d",
            "MYSQL_HOST": "ignored",
            "MBASIC_TRACKING_BATCH_SIZE": "50",
        }
    )

    assert config.mysql is not None and config.mysql.host == "a"
    assert config.batch_size == 50


def test_from_env_reads_the_ide_variables() -> None:
    """Without a URL, the IDE's MYSQL_* variables (and its CA secret) are used."""
    config = TrackingConfig.from_env(
        {
            **ENV,
            "MYSQL_PORT": "25060",
            "MYSQL_DATABASE": "logs",
            "MYSQL_CA_CERT": "-----BEGIN CERTIFICATE-----\nabc\n-----END ...",
        }
    )

    assert config.mysql is not None
    assert (config.mysql.host, config.mysql.port, config.mysql.database) == (
        "db.example.com",
        25060,
        "logs",
    )
    assert config.mysql.ssl_ca is not None and config.mysql.ssl_ca.startswith(
        "-----BEGIN"
    )


def test_from_env_without_a_database_says_what_to_set() -> None:
    """No URL and no MYSQL_HOST is an error naming both."""
    with pytest.raises(ConfigError, match=r"MBASIC_TRACKING_DATABASE_URL.*MYSQL_HOST"):
        TrackingConfig.from_env({})


def test_repr_masks_secrets() -> None:
    """Neither the password, the CA nor the IP hash secret appear in a repr."""
    config = TrackingConfig(
        mysql=MySQLSettings(host="h", password="hunter22", ssl_ca="/secret/ca.pem"),
        ip_mode="hash",
        ip_hash_secret="pepper-pepper-pepper",
    )
    text = repr(config)

    assert "hunter22" not in text and "pepper" not in text and "/secret" not in text
    assert "password=***" in text and "ip_hash_secret=***" in text
    assert config.destination == "mysql://root:***@h:3306/mbasic_logs"


def test_local_server_without_ca_uses_no_tls() -> None:
    """A server on loopback or a socket is reached in clear unless a CA is given."""
    assert not MySQLSettings(host="127.0.0.1").uses_tls
    assert not MySQLSettings(host="db", unix_socket="/run/mysqld.sock").uses_tls
    assert MySQLSettings(host="127.0.0.1", ssl_ca="/ca.pem").uses_tls
    assert not MySQLSettings(host="db.example.com", disable_ssl=True).uses_tls
