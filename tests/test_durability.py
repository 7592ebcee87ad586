"""The spool at work: outages longer than the queue, a killed server, stop()
during an outage, damaged spool files, and SIGTERM to a process that tracks.

Every test counts what it sent and checks the database holds exactly that once
the server is back: row counts and every session's counters.
"""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from mbasic_tracking import MySQLSettings
from mbasic_tracking.events import (
    EVENT_ID,
    FEATURE_USE,
    KIND_NAMES,
    PAGE_VISIT,
    PROGRAM_RUN,
    Event,
)
from mbasic_tracking.migrate import apply_mysql
from mbasic_tracking.spool import decode_records, encode
from tests.conftest import query, until
from tests.helpers.mariadb import PrivateMariaDB
from tests.helpers.proxy import FaultProxy
from tests.helpers.workload import Workload

ROOT = Path(__file__).resolve().parent.parent


def _replayed_all(tracker: Any) -> bool:
    """Whether a tracker has opened its spool, replayed, and emptied it."""
    stats = tracker.stats()
    return bool(stats["replayed"] > 0 and stats["spool_bytes"] == 0)


def _spooled_events(folder: Path) -> list[Event]:
    events: list[Event] = []
    for segment in sorted(folder.glob("*.spool")):
        found, _, _ = decode_records(segment.read_bytes(), 0, 10**9)
        events += found
    return events


def _forget(workload: Workload, event: Event) -> None:
    """Take a lost event out of what the database is expected to hold."""
    if event[0] == PROGRAM_RUN:
        workload.runs[event[3]] -= 1  # (kind, id, at, session, lines, ms, executed,
        workload.lines[event[3]] -= event[6] or 0  #  success, error)
    elif event[0] == FEATURE_USE:
        workload.features -= 1
    elif event[0] == PAGE_VISIT:
        workload.visits -= 1
    else:
        raise AssertionError(f"this test cannot lose a {KIND_NAMES[event[0]]}")


async def test_outage_five_times_the_queue_loses_nothing(
    make_tracker: Any,
    database: MySQLSettings,
    via_proxy: MySQLSettings,
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    """6,000 events at a steady rate while the server refuses, with a queue of
    1,000: they wait in the spool and all land, once, when it answers."""
    tracker = make_tracker(
        via_proxy, queue_size=1_000, batch_size=100, spool_dir=str(tmp_path)
    )
    workload = Workload("outage")
    workload.emit(tracker, 100)
    assert await tracker.flush(timeout=10)

    proxy.refuse()
    proxy.reset_all()
    await workload.stream(tracker, 6_000, per_second=3_000)
    during = tracker.stats()
    assert during["written"] == 100
    assert during["spooled"] >= 4_000
    assert during["spool_bytes"] > 0

    proxy.refuse(False)
    assert await tracker.flush(timeout=30)

    stats = tracker.stats()
    assert (stats["enqueued"], stats["written"]) == (6_100, 6_100)
    assert stats["replayed"] == stats["spooled"] >= during["spooled"]
    assert (stats["dropped"], stats["spool_dropped"], stats["spool_corrupt"]) == (
        0,
        0,
        0,
    )
    assert (stats["queue_depth"], stats["spool_bytes"]) == (0, 0)
    workload.assert_landed(database)


async def test_stop_during_an_outage_spools_and_the_next_start_replays(
    make_tracker: Any,
    database: MySQLSettings,
    via_proxy: MySQLSettings,
    proxy: FaultProxy,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What stop() could not write is on disk; a new tracker on the same folder
    writes it, exactly once."""
    proxy.refuse()
    first = make_tracker(via_proxy, spool_dir=str(tmp_path), batch_size=100)
    workload = Workload("restart")
    workload.emit(first, 3_000)
    await until(lambda: first.stats()["retries"] >= 2)

    await first.stop(timeout=0.3)
    stats = first.stats()
    assert (stats["spooled"], stats["abandoned"], stats["written"]) == (3_000, 0, 0)
    assert stats["spool_bytes"] > 0
    warnings = [r for r in caplog.records if "unwritten" in r.getMessage()]
    assert len(warnings) == 1
    assert "3000 are in the spool" in warnings[0].getMessage()
    assert len(_spooled_events(tmp_path)) == 3_000

    second = make_tracker(database, spool_dir=str(tmp_path))
    await second.start()
    await until(lambda: _replayed_all(second))

    stats = second.stats()
    assert (stats["replayed"], stats["written"], stats["enqueued"]) == (3_000, 3_000, 0)
    assert list(tmp_path.glob("*.spool")) == []
    workload.assert_landed(database)


async def test_damaged_spool_records_are_skipped_and_the_rest_replayed(
    make_tracker: Any,
    database: MySQLSettings,
    via_proxy: MySQLSettings,
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    """A flipped byte and a cut tail cost exactly their two events."""
    proxy.refuse()
    first = make_tracker(via_proxy, spool_dir=str(tmp_path))
    workload = Workload("damage")
    workload.emit(first, 1_000)
    await first.stop(timeout=0.2)

    (segment,) = tmp_path.glob("*.spool")
    events = _spooled_events(tmp_path)
    assert len(events) == 1_000
    victim = next(i for i, e in enumerate(events) if i > 500 and e[0] == PROGRAM_RUN)
    data = bytearray(segment.read_bytes())
    offset = sum(len(encode(e)) for e in events[:victim])
    data[offset + 30] ^= 0x20
    segment.write_bytes(bytes(data[:-5]))
    _forget(workload, events[victim])
    _forget(workload, events[-1])

    second = make_tracker(database, spool_dir=str(tmp_path))
    await second.start()
    await until(lambda: _replayed_all(second))

    stats = second.stats()
    assert (stats["spool_corrupt"], stats["replayed"]) == (2, 998)
    workload.assert_landed(database)


def _start_quietly(server: PrivateMariaDB) -> None:
    # PyMySQL leaks the socket of each refused attempt while PrivateMariaDB
    # polls a starting server; those ResourceWarnings are not what we test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        server.start()
        gc.collect()


@pytest.mark.slow
async def test_server_killed_and_restarted_under_load_loses_and_doubles_nothing(
    make_tracker: Any, tmp_path: Path
) -> None:
    """SIGKILL to the server in the middle of a stream, a restart 1.5 s later:
    every event lands once (the spool holds what the queue cannot)."""
    server = PrivateMariaDB(tmp_path / "server")
    await asyncio.to_thread(_start_quietly, server)
    try:
        settings = server.settings()
        await apply_mysql(settings)
        tracker = make_tracker(
            settings,
            spool_dir=str(tmp_path / "spool"),
            queue_size=1_000,
            batch_size=200,
            connect_timeout=0.3,
            statement_timeout=1.0,
        )
        workload = Workload("kill")

        async def crash_and_restart() -> None:
            await asyncio.sleep(1.0)
            server.kill()
            await asyncio.sleep(1.5)
            await asyncio.to_thread(_start_quietly, server)

        await asyncio.gather(
            workload.stream(tracker, 8_000, per_second=2_000), crash_and_restart()
        )
        assert await tracker.flush(timeout=60)
        stats = tracker.stats()
        await tracker.stop(timeout=5)

        assert stats["database_ok"] is True
        assert stats["retries"] >= 1
        assert stats["spooled"] > 0
        assert (stats["enqueued"], stats["written"], stats["dropped"]) == (
            8_000,
            8_000,
            0,
        )
        assert (stats["spool_bytes"], stats["queue_depth"]) == (0, 0)
        workload.assert_landed(settings)
    finally:
        server.stop()


@pytest.mark.slow
async def test_sigterm_under_load_keeps_every_event(
    make_tracker: Any,
    database: MySQLSettings,
    proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    """A process tracking the IDE's way, SIGTERMed while its database hangs,
    exits within its grace period; every event is in the database or the
    spool, and in the database after the next start."""
    spool_dir = tmp_path / "spool"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.helpers.ide_process",
            "127.0.0.1",
            str(proxy.port),
            database.database,
            str(spool_dir),
            "sigterm",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        await asyncio.sleep(1.5)
        proxy.black_hole()
        await asyncio.sleep(0.5)

        sent_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.to_thread(process.communicate, timeout=10)
        took = time.monotonic() - sent_at
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0
    assert took < 5.0  # the drain timeout is 1 s; Kubernetes grants 30
    report = json.loads(output.strip().splitlines()[-1])
    sent, stats = report["sent"], report["stats"]
    workload = Workload(
        "sigterm",
        calls=sent["calls"],
        runs=sent["runs"],
        lines=sent["lines"],
        features=sent["features"],
        visits=sent["visits"],
    )
    assert stats["enqueued"] == workload.calls > 2_000
    assert (stats["dropped"], stats["abandoned"], stats["spool_dropped"]) == (0, 0, 0)
    assert stats["spooled"] > 0

    in_database = {
        row[0]
        for table in ("program_executions", "feature_usage", "page_visits")
        for row in query(database, f"SELECT event_id FROM {table}")
    }
    in_spool = {
        event[EVENT_ID].to_bytes(16, "big")
        for event in _spooled_events(spool_dir)
        if event[0] in (PROGRAM_RUN, FEATURE_USE, PAGE_VISIT)
    }
    assert len(in_database | in_spool) == workload.rows
    waiting = len(_spooled_events(spool_dir))

    proxy.pass_through()
    tracker = make_tracker(database, spool_dir=str(spool_dir))
    await tracker.start()
    await until(lambda: _replayed_all(tracker))
    assert tracker.stats()["replayed"] == waiting
    workload.assert_landed(database)
