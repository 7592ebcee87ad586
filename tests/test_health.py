"""The tracker's health report: up, down, disabled, and free of secrets."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mbasic_tracking import MySQLSettings, TrackingConfig, UsageTracker
from mbasic_tracking.health import health_report


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_report_with_the_database_up(
    make_tracker: Callable[..., UsageTracker],
) -> None:
    """Writes landed and the database answers: status ok, the age of the last
    write is known, the stats are included."""
    tracker = make_tracker()
    tracker.start_ide_session("s", "ua", "203.0.113.9")
    assert await tracker.flush(timeout=10)

    report = await health_report(tracker)

    assert report["status"] == "ok"
    assert report["problems"] == []
    assert report["tracking"]["database"] == "up"
    assert report["tracking"]["written"] == 1
    assert 0 <= report["tracking"]["last_write_age_seconds"] < 10


async def test_report_with_the_database_down_is_degraded_without_secrets(
    database: MySQLSettings,
) -> None:
    """A closed port: status degraded, database down, and neither the password
    nor the hash secret appears anywhere in the report."""
    settings = dataclasses.replace(
        database, port=closed_port(), password="pw-that-must-not-leak"
    )
    tracker = UsageTracker(
        TrackingConfig(
            mysql=settings,
            connect_timeout=0.5,
            retry_initial_wait=0.01,
            retry_max_wait=0.1,
            ip_mode="hash",
            ip_hash_secret="hash-secret-that-must-not-leak",
        )
    )
    await tracker.start()
    tracker.start_ide_session("s")
    await tracker.flush(timeout=1)

    report = await tracker.health(ping_timeout=2)  # the method an app calls
    await tracker.stop(timeout=0.2)

    assert report["status"] == "degraded"
    assert report["tracking"]["database"] == "down"
    assert report["tracking"]["queue_depth"] == 1
    assert "the tracking database does not answer" in report["problems"]
    text = json.dumps(report)
    assert "pw-that-must-not-leak" not in text
    assert "hash-secret-that-must-not-leak" not in text


async def test_report_for_no_tracker_or_a_disabled_one_is_ok() -> None:
    """Tracking off is not a problem of the app."""
    disabled = UsageTracker(TrackingConfig(enabled=False))

    assert await health_report(None) == {"status": "ok", "tracking": {"enabled": False}}
    assert (await health_report(disabled))["status"] == "ok"


async def test_a_tracker_that_is_not_running_is_degraded(tmp_path: Path) -> None:
    """A stopped writer cannot write, even if the database answers."""
    tracker = UsageTracker(TrackingConfig.from_url(f"sqlite:///{tmp_path}/u.db"))

    report: dict[str, Any] = await health_report(tracker)
    await tracker.stop()

    assert report["status"] == "degraded"
    assert report["tracking"]["database"] == "up"
    assert report["problems"] == ["the tracking writer is not running"]
