"""Faults made to happen between the writer and a real server, through a proxy.

Each test streams a known workload, breaks the link on the way (resets in the
middle of batches, a reply lost after COMMIT, a black hole, a slow link), and
then checks that the database holds every event exactly once: row counts and
every session's counters equal what was sent.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import pytest

from mbasic_tracking import MySQLSettings
from mbasic_tracking import tracker as tracker_module
from mbasic_tracking.events import format_event_id
from tests.conftest import admin_connection, query, scalar, until
from tests.helpers.proxy import FaultProxy
from tests.helpers.workload import Workload


async def test_connections_reset_mid_batch_lose_and_double_nothing(
    make_tracker: Any,
    database: MySQLSettings,
    via_proxy: MySQLSettings,
    proxy: FaultProxy,
) -> None:
    """Ten connections reset in the middle of the stream: every event lands once."""
    tracker = make_tracker(via_proxy, batch_size=200)
    workload = Workload("reset")
    chooser = random.Random(7)
    cuts = 10

    async def cut_repeatedly() -> None:
        for _ in range(cuts):
            proxy.cut_after(chooser.randint(2_000, 40_000))
            await until(lambda: not proxy.cut_pending)
            await asyncio.sleep(0.05)

    await asyncio.gather(
        workload.stream(tracker, 6_000, per_second=3_000), cut_repeatedly()
    )
    assert await tracker.flush(timeout=30)

    stats = tracker.stats()
    assert proxy.resets >= cuts
    assert stats["retries"] >= cuts
    assert (stats["enqueued"], stats["written"]) == (6_000, 6_000)
    assert (stats["failed"], stats["dropped"], stats["queue_depth"]) == (0, 0, 0)
    workload.assert_landed(database)


async def test_reply_lost_after_commit_is_retried_without_doubling(
    make_tracker: Any,
    database: MySQLSettings,
    via_proxy: MySQLSettings,
    proxy: FaultProxy,
) -> None:
    """A batch whose COMMIT landed but whose reply was lost is written once."""
    tracker = make_tracker(via_proxy, retry_initial_wait=1.5, retry_max_wait=1.5)
    workload = Workload("commit", sessions=3)
    workload.emit(tracker, 3)
    assert await tracker.flush(timeout=10)

    proxy.lose_reply_after(b"COMMIT")
    workload.emit(tracker, 300)
    await until(lambda: proxy.lost_replies == 1)
    await asyncio.sleep(0.3)

    # The server committed, yet the tracker, which never saw the reply, still
    # holds the batch and will write it again.
    landed = scalar(database, "SELECT COUNT(*) FROM program_executions")
    assert landed == sum(workload.runs.values()) == 100
    assert tracker.stats()["queue_depth"] == 300

    assert await tracker.flush(timeout=15)
    stats = tracker.stats()
    assert stats["retries"] >= 1
    assert (stats["written"], stats["failed"]) == (303, 0)
    workload.assert_landed(database)


async def test_black_holed_link_times_out_then_recovers(
    make_tracker: Any,
    database: MySQLSettings,
    via_proxy: MySQLSettings,
    proxy: FaultProxy,
) -> None:
    """A link that swallows everything trips the statement timeout; after it
    comes back every event lands once."""
    tracker = make_tracker(via_proxy, statement_timeout=0.5, connect_timeout=0.3)
    workload = Workload("hole")
    workload.emit(tracker, 500)
    assert await tracker.flush(timeout=10)

    proxy.black_hole()
    workload.emit(tracker, 400)
    await until(lambda: tracker.stats()["database_ok"] is False)
    await asyncio.sleep(1.0)

    stats = tracker.stats()
    assert stats["last_error"] == "timed out"
    assert (stats["written"], stats["queue_depth"]) == (500, 400)

    proxy.restore()
    workload.emit(tracker, 100)
    assert await tracker.flush(timeout=15)

    stats = tracker.stats()
    assert stats["database_ok"] is True
    assert (stats["written"], stats["queue_depth"], stats["failed"]) == (1_000, 0, 0)
    workload.assert_landed(database)


async def test_slow_link_still_lands_every_event_once(
    make_tracker: Any,
    database: MySQLSettings,
    via_proxy: MySQLSettings,
    proxy: FaultProxy,
) -> None:
    """30 ms added to every chunk each way: slower, and still exact."""
    proxy.latency = 0.03
    tracker = make_tracker(via_proxy, batch_size=250)
    workload = Workload("slow")

    await workload.stream(tracker, 2_000, per_second=2_000)
    assert await tracker.flush(timeout=30)

    stats = tracker.stats()
    assert (stats["written"], stats["retries"], stats["failed"]) == (2_000, 0, 0)
    workload.assert_landed(database)


async def test_a_row_the_server_refuses_is_isolated_and_logged_once(
    make_tracker: Any,
    database: MySQLSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A CHECK constraint refuses one row of a batch: the 99 others land, the
    refused one is counted and logged once with its event id."""
    with admin_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE feature_usage"
            " ADD CONSTRAINT no_poison CHECK (feature_name <> 'poison')"
        )
    tracker = make_tracker(batch_size=100)

    tracker.start_ide_session("refuse-0")
    for number in range(1, 100):
        name = "poison" if number == 60 else "ok"
        tracker.track_feature_usage("refuse-0", name, {"n": number})
    assert await tracker.flush(timeout=10)

    stats = tracker.stats()
    assert (stats["written"], stats["failed"]) == (99, 1)
    assert scalar(database, "SELECT COUNT(*) FROM feature_usage") == 98
    assert (
        scalar(
            database, "SELECT COUNT(*) FROM feature_usage WHERE feature_name = 'poison'"
        )
        == 0
    )

    refusals = [r for r in caplog.records if "refused event" in r.getMessage()]
    assert len(refusals) == 1
    logged = re.search(r"refused event ([0-9a-f]{32})", refusals[0].getMessage())
    assert logged is not None
    poison_id = int(logged.group(1), 16)
    # The 61st call of this tracker: sequence numbers start at 1.
    assert poison_id & ((1 << 64) - 1) == 61
    (some_id,) = query(database, "SELECT HEX(event_id) FROM feature_usage LIMIT 1")[0]
    assert int(some_id, 16) >> 64 == poison_id >> 64
    assert format_event_id(poison_id) in refusals[0].getMessage()


async def test_full_queue_behind_a_dead_link_counts_drops_and_throttles_warnings(
    make_tracker: Any,
    via_proxy: MySQLSettings,
    proxy: FaultProxy,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Drops are counted one by one; the warning repeats only after its interval."""
    assert tracker_module._DROP_WARNING_EVERY == 10.0
    monkeypatch.setattr(tracker_module, "_DROP_WARNING_EVERY", 0.5)
    proxy.refuse()
    tracker = make_tracker(via_proxy, queue_size=100, batch_size=10)

    await tracker.start()
    Workload("full").emit(tracker, 300)
    await until(lambda: tracker.stats()["retries"] >= 2)
    Workload("full2").emit(tracker, 300)

    def drop_warnings() -> int:
        return sum("dropping" in r.getMessage() for r in caplog.records)

    stats = tracker.stats()
    assert (stats["enqueued"], stats["dropped"], stats["queue_depth"]) == (
        110,
        490,
        110,
    )
    assert drop_warnings() == 1

    await asyncio.sleep(0.6)
    Workload("full3").emit(tracker, 5)
    assert drop_warnings() == 2
    assert tracker.stats()["dropped"] == 495

    await tracker.stop(timeout=0.2)
    stats = tracker.stats()
    assert (stats["abandoned"], stats["written"], stats["queue_depth"]) == (110, 0, 0)
