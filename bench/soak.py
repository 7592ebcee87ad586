"""``make soak``: steady traffic for a long time, the connection cut every minute.

Proves (issue 5): at 500 events per second for 30 minutes (``--minutes``), with
the writer's connection killed on the server (``KILL <id>`` from another
connection) every minute, the process's memory stays flat and every event lands
exactly once: row counts per table and the sessions' counters match what was
sent, and nothing is dropped, refused or abandoned.

The traffic is an IDE's: sessions start, run programs, use features, visit
pages, show activity and end; 50 sessions are open at a time and are replaced
every 2,000 events. Memory is the resident set, sampled every 5 s; "flat" means
it grew by at most 4 MiB between the end of the warm-up (the first minute, or the
first third of a shorter run) and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from mbasic_tracking import MySQLSettings, TrackingConfig, UsageTracker

from ._common import (
    FEATURES,
    Result,
    admin_connection,
    percentile,
    rss_bytes,
    scalar,
    scratch_database,
    server_settings,
)
from ._report import (
    describe_machine,
    format_markdown,
    format_table,
    machine,
    update_benchmarks_md,
)

_OPEN_SESSIONS: Final = 50
_GENERATION: Final = 2_000  # events between session turnovers
_TICK: Final = 0.01
_SAMPLE_EVERY: Final = 5.0
_FLAT_LIMIT: Final = 4 * 2**20


@dataclass
class Traffic:
    """What the soak sent, by kind, to compare with what landed.

    Counts only: keeping the sessions' names would grow the process by a few
    MiB over 30 minutes and blur the tracker's own memory curve.
    """

    sent: Counter[str] = field(default_factory=Counter)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long")
    parser.add_argument("--rate", type=int, default=500, help="events per second")
    parser.add_argument(
        "--kill-every", type=float, default=60.0, help="seconds between KILLs"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave BENCHMARKS.md"
    )
    return parser


def _send(tracker: UsageTracker, index: int, traffic: Traffic) -> None:
    """Event ``index`` of the IDE-like traffic."""
    generation, slot = divmod(index, _GENERATION)
    session = f"soak-{generation}-{index % _OPEN_SESSIONS}"
    kind = index % 10

    if slot == 0 and generation > 0:
        for number in range(_OPEN_SESSIONS):
            tracker.end_ide_session(f"soak-{generation - 1}-{number}")
            traffic.sent["ended"] += 1
    if slot < _OPEN_SESSIONS:  # each session's first event, once per session
        tracker.start_ide_session(session, "Mozilla/5.0 (soak)", "198.51.100.23")
        traffic.sent["sessions"] += 1

    if kind < 5:
        tracker.track_program_execution(session, 30, index % 900, index % 10_000, True)
        traffic.sent["program"] += 1
    elif kind < 8:
        tracker.track_feature_usage(session, FEATURES[kind - 5], {"n": index})
        traffic.sent["feature"] += 1
    elif kind == 8:
        tracker.track_page_visit("/ide", None, "Mozilla/5.0", None, session)
        traffic.sent["visit"] += 1
    else:
        tracker.update_session_activity(session)


async def _produce(
    tracker: UsageTracker, rate: int, until: float, traffic: Traffic
) -> None:
    per_tick = max(1, round(rate * _TICK))
    index = 0
    tick = time.monotonic()

    while tick < until:
        for _ in range(per_tick):
            _send(tracker, index, traffic)
            index += 1
        tick += _TICK
        await asyncio.sleep(max(0.0, tick - time.monotonic()))


def _kill_writer(server: MySQLSettings, database: str) -> int:
    """KILL every connection using ``database``; returns how many."""
    with admin_connection(server) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT ID FROM information_schema.PROCESSLIST"
            " WHERE DB = %s AND ID <> CONNECTION_ID()",
            (database,),
        )
        ids = [row[0] for row in cursor.fetchall()]
        for connection_id in ids:
            cursor.execute(f"KILL {int(connection_id)}")

    return len(ids)


async def _killer(database: str, every: float, until: float) -> int:
    server = server_settings()
    kills = 0
    while time.monotonic() + every < until:
        await asyncio.sleep(every)
        kills += await asyncio.to_thread(_kill_writer, server, database)

    return kills


async def _sample_memory(until: float, samples: list[tuple[float, int]]) -> None:
    began = time.monotonic()
    while time.monotonic() < until:
        samples.append((time.monotonic() - began, rss_bytes()))
        await asyncio.sleep(_SAMPLE_EVERY)
    samples.append((time.monotonic() - began, rss_bytes()))


async def soak(args: argparse.Namespace) -> list[Result]:
    """Run the traffic, the killer and the memory sampler; then count."""
    seconds = args.minutes * 60
    traffic = Traffic()
    memory: list[tuple[float, int]] = []

    async with scratch_database() as settings:
        tracker = UsageTracker(TrackingConfig(mysql=settings))
        await tracker.start()
        until = time.monotonic() + seconds
        _, kills, _ = await asyncio.gather(
            _produce(tracker, args.rate, until, traffic),
            _killer(settings.database, args.kill_every, until),
            _sample_memory(until, memory),
        )
        await tracker.stop(timeout=60)
        landed = _landed(settings)

    return _results(args, tracker, traffic, landed, memory, kills)


def _landed(settings: MySQLSettings) -> dict[str, int]:
    counts = {
        "program": "SELECT COUNT(*) FROM program_executions",
        "feature": "SELECT COUNT(*) FROM feature_usage",
        "visit": "SELECT COUNT(*) FROM page_visits",
        "sessions": "SELECT COUNT(*) FROM ide_sessions",
        "ended": "SELECT COUNT(*) FROM ide_sessions WHERE end_time IS NOT NULL",
        "programs_run": "SELECT COALESCE(SUM(programs_run), 0) FROM ide_sessions",
    }

    return {name: int(scalar(settings, sql)) for name, sql in counts.items()}


def _growth(memory: list[tuple[float, int]], warmup: float) -> tuple[int, float]:
    """(bytes grown after the warm-up, slope in bytes per minute)."""
    steady = [(at, rss) for at, rss in memory if at >= warmup]
    if len(steady) < 2:
        return 0, 0.0

    start = percentile(sorted(rss for _, rss in steady[:3]), 0.5)
    end = percentile(sorted(rss for _, rss in steady[-3:]), 0.5)
    times = [at for at, _ in steady]
    mean_t = sum(times) / len(times)
    mean_r = sum(rss for _, rss in steady) / len(steady)
    spread = sum((at - mean_t) ** 2 for at in times) or 1.0
    slope = sum((at - mean_t) * (rss - mean_r) for at, rss in steady) / spread

    return int(end - start), slope * 60


def _results(
    args: argparse.Namespace,
    tracker: UsageTracker,
    traffic: Traffic,
    landed: dict[str, int],
    memory: list[tuple[float, int]],
    kills: int,
) -> list[Result]:
    stats = tracker.stats()
    warmup = min(60.0, args.minutes * 20)
    grown, slope = _growth(memory, warmup)
    peak = max(rss for _, rss in memory)
    lost = stats["dropped"] + stats["failed"] + stats["abandoned"] + stats["invalid"]
    expected = {
        "program": traffic.sent["program"],
        "feature": traffic.sent["feature"],
        "visit": traffic.sent["visit"],
        "sessions": traffic.sent["sessions"],
        "ended": traffic.sent["ended"],
        "programs_run": traffic.sent["program"],
    }
    where = f"{args.minutes:g} min at {args.rate} events/s"

    results = [
        Result("soak", "events enqueued", stats["enqueued"], "events", note=where),
        Result("soak", "connections killed", kills, "", ">=", 1, "KILL on the server"),
        Result("soak", "retries by the writer", stats["retries"], ""),
        Result("soak", "dropped + refused + abandoned", lost, "events", "==", 0),
        Result(
            "soak",
            "RSS growth after warm-up",
            grown / 2**20,
            "MiB",
            "<=",
            _FLAT_LIMIT / 2**20,
            f"slope {slope / 1024:+.0f} KiB/min, peak {peak / 2**20:.0f} MiB",
        ),
    ]
    for name, want in expected.items():
        results.append(Result("soak", f"{name} landed", landed[name], "", "==", want))

    return results


def main() -> None:
    """Run the soak from the command line; print and record the results."""
    args = _parser().parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    facts = machine()
    results = asyncio.run(soak(args))
    table = format_table(results)
    print(describe_machine(facts) + "\n\n" + table)

    if not args.no_write:
        body = describe_machine(facts) + "\n\n" + format_markdown(results)
        update_benchmarks_md("soak", "make soak", body)

    failed = any(result.verdict == "FAIL" for result in results)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
