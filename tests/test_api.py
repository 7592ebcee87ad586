"""The public API, used the way the IDE uses it, against the real server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

import mbasic_tracking
from mbasic_tracking import (
    MySQLSettings,
    TrackingConfig,
    UsageTracker,
    get_usage_tracker,
    init_usage_tracker,
)
from tests.conftest import query, scalar


def test_exported_names_are_the_documented_ones() -> None:
    """The package exports exactly its public API, sorted."""
    assert mbasic_tracking.__all__ == [
        "ConfigError",
        "MySQLSettings",
        "TrackingConfig",
        "UsageTracker",
        "get_usage_tracker",
        "init_usage_tracker",
    ]
    for name in mbasic_tracking.__all__:
        assert getattr(mbasic_tracking, name).__doc__


def _ide_section(settings: MySQLSettings) -> dict[str, Any]:
    """The IDE's configmap section, with ${...} references as deployed."""
    return json.loads(
        json.dumps(
            {
                "enabled": True,
                "mysql": {
                    "host": "${MYSQL_HOST}",
                    "port": settings.port,
                    "user": "${MYSQL_USER}",
                    "password": "${MYSQL_PASSWORD}",
                    "database": settings.database,
                },
                "flush_interval": 0.05,
            }
        )
    )


async def _wait_for(settings: MySQLSettings, sql: str, expected: Any) -> Any:
    deadline = time.monotonic() + 10
    value = None
    while time.monotonic() < deadline:
        value = scalar(settings, sql)
        if value == expected:
            return value
        await asyncio.sleep(0.05)
    return value


async def test_seed_integration_writes_without_start_or_stop(
    database: MySQLSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The IDE's code (points B to E) works with only its import line changed."""
    monkeypatch.setenv("MYSQL_HOST", database.host)
    monkeypatch.setenv("MYSQL_USER", database.user)
    monkeypatch.setenv("MYSQL_PASSWORD", database.password)

    # B: before the loop runs the page functions.
    init_usage_tracker(_ide_section(database), register_nicegui=False)

    # C: in the page function.
    tracker = get_usage_tracker()
    assert tracker is not None and tracker.enabled
    if tracker:
        tracker.start_ide_session("client-1", "Mozilla/5.0", "198.51.100.23")

    # E: in the run handler, with the IDE's keyword arguments.
    for lines_executed in (10, 20, 30):
        tracker.track_program_execution(
            session_id="client-1",
            program_lines=12,
            execution_time_ms=40,
            lines_executed=lines_executed,
            success=True,
            error_message=None,
        )

    # D: on disconnect.
    tracker.end_ide_session("client-1")

    ended = "SELECT COUNT(*) FROM ide_sessions WHERE end_time IS NOT NULL"
    assert await _wait_for(database, ended, 1) == 1
    assert await _wait_for(database, "SELECT programs_run FROM ide_sessions", 3) == 3
    row = query(
        database,
        "SELECT session_id, lines_executed, user_agent, ip_address, duration_seconds"
        " FROM ide_sessions",
    )
    assert row == [("client-1", 60, "Mozilla/5.0", "198.51.100.0", 0)]
    await tracker.stop()


@pytest.mark.parametrize("where", ["loop thread", "worker threads", "before the loop"])
async def test_calls_from_any_thread_land_exactly(
    make_tracker: Any, database: MySQLSettings, where: str
) -> None:
    """Calls from the loop, from worker threads and before start all land once."""
    tracker: UsageTracker = make_tracker()
    sessions, runs = 8, 250

    def produce(session: int) -> None:
        sid = f"s-{session}"
        tracker.start_ide_session(sid, "ua", "10.1.2.3")
        for number in range(runs):
            tracker.track_program_execution(sid, 5, 1, number, number % 7 != 0)
            tracker.track_feature_usage(sid, "step", {"n": number})
        tracker.end_ide_session(sid)

    if where == "loop thread":
        for session in range(sessions):
            produce(session)
    elif where == "worker threads":
        await tracker.start()
        await asyncio.gather(*(asyncio.to_thread(produce, s) for s in range(sessions)))
    else:
        threads = [threading.Thread(target=produce, args=(s,)) for s in range(sessions)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not tracker.running

    assert await tracker.flush(timeout=30)

    expected_events = sessions * (2 + 2 * runs)
    stats = tracker.stats()
    assert stats["enqueued"] == expected_events
    assert stats["written"] == expected_events
    assert (stats["dropped"], stats["failed"], stats["invalid"]) == (0, 0, 0)
    assert stats["queue_depth"] == 0

    assert (
        scalar(database, "SELECT COUNT(*) FROM program_executions") == sessions * runs
    )
    assert scalar(database, "SELECT COUNT(*) FROM feature_usage") == sessions * runs
    per_session = query(
        database,
        "SELECT programs_run, lines_executed, end_time IS NOT NULL FROM ide_sessions",
    )
    total_lines = sum(range(runs))
    assert sorted(per_session) == [(runs, total_lines, 1)] * sessions
    failures = scalar(
        database, "SELECT COUNT(*) FROM program_executions WHERE NOT success"
    )
    assert failures == sessions * len(range(0, runs, 7))


async def test_disabled_tracker_does_nothing(database: MySQLSettings) -> None:
    """``enabled: false`` gives a tracker whose calls do nothing at all."""
    tracker = init_usage_tracker({"enabled": False}, register_nicegui=False)

    assert tracker.enabled is False
    assert get_usage_tracker() is tracker
    tracker.start_ide_session("s", "ua", "1.2.3.4")
    tracker.track_program_execution("s", 1, 1, 1, True)
    assert await tracker.flush(timeout=1)
    await tracker.stop()

    assert tracker.stats()["enqueued"] == 0
    assert not tracker.running
    assert scalar(database, "SELECT COUNT(*) FROM ide_sessions") == 0


def test_get_usage_tracker_is_none_before_init() -> None:
    """Nothing is returned before a tracker is made."""
    assert get_usage_tracker() is None


async def test_stop_is_idempotent_and_later_calls_are_dropped(
    make_tracker: Any, database: MySQLSettings
) -> None:
    """stop() drains, may be called twice, and calls after it count as dropped."""
    tracker: UsageTracker = make_tracker()
    tracker.start_ide_session("s", None, None)

    await tracker.stop()
    await tracker.stop()
    tracker.update_session_activity("s")

    stats = tracker.stats()
    assert (stats["written"], stats["dropped"], stats["running"]) == (1, 1, False)
    assert scalar(database, "SELECT COUNT(*) FROM ide_sessions") == 1


def _unreachable(**options: Any) -> UsageTracker:
    """A tracker whose server is a closed port."""
    nowhere = MySQLSettings(host="127.0.0.1", port=1, database="nowhere")
    return UsageTracker(TrackingConfig(mysql=nowhere, **options))


async def test_stop_counts_what_it_could_not_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With no server, stop() gives up at its deadline, counts and warns once."""
    tracker = _unreachable(
        connect_timeout=0.2,
        retry_initial_wait=0.01,
        retry_max_wait=0.05,
        flush_interval=0.01,
    )
    for number in range(10):
        tracker.track_feature_usage("s", "f", number)
    await tracker.start()
    assert await tracker.flush(timeout=0.3) is False

    await tracker.stop(timeout=0.3)

    stats = tracker.stats()
    assert (stats["abandoned"], stats["written"], stats["queue_depth"]) == (10, 0, 0)
    assert stats["database_ok"] is False
    assert "Can't connect" in stats["last_error"] or "2003" in stats["last_error"]
    unwritten = [r for r in caplog.records if "unwritten" in r.getMessage()]
    assert len(unwritten) == 1


async def test_queue_full_drops_newest_and_warns_rarely(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A full queue drops new events, counts each one, and warns once per 10 s."""
    tracker = _unreachable(queue_size=100, batch_size=10)
    for number in range(1000):
        tracker.track_feature_usage("s", "f", number)

    stats = tracker.stats()
    assert (stats["enqueued"], stats["dropped"], stats["queue_depth"]) == (
        100,
        900,
        100,
    )
    warnings = [r for r in caplog.records if "dropping" in r.getMessage()]
    assert len(warnings) == 1


async def test_stats_never_show_the_password(database: MySQLSettings) -> None:
    """Stats, repr and config text hide the password."""
    secret = "s3cret-Pa55word"
    settings = MySQLSettings(host="127.0.0.1", port=1, user="u", password=secret)
    tracker = UsageTracker(TrackingConfig(mysql=settings, connect_timeout=0.2))
    tracker.track_page_visit("/")
    await tracker.start()
    await asyncio.sleep(0.3)

    shown = " ".join(
        [
            repr(tracker),
            repr(tracker.config),
            repr(settings),
            json.dumps(tracker.stats()),
        ]
    )
    assert secret not in shown
    assert "***" in shown
    await tracker.stop(timeout=0.1)
