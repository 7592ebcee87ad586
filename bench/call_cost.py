"""What a tracking call costs its caller, against the old synchronous design.

Proves (issue 2): on a running loop, with the writer alive and writing to the
server, ``track_program_execution`` takes <= 2 us at the median and <= 10 us at
p99, and is at least 200 times cheaper than the old design: one synchronous
INSERT into ``program_executions`` plus one UPDATE of the session's counters per
event (PyMySQL, autocommit, one persistent connection), against the same server
in the same run. CPython's floor, ``asyncio.Queue.put_nowait``, is measured the
same way for reference.

How calls are timed: each call alone, between two ``perf_counter_ns`` reads, in
blocks of 1,000 with a yield to the loop between blocks, so the writer drains
the queue while calls are measured. The figures include the timer's own cost
(shown as ``timer overhead``), so they overstate the call slightly. A second
pass times whole blocks and reports the mean per call, without that overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any, Final

from mbasic_tracking import MySQLSettings, TrackingConfig, UsageTracker

from ._common import (
    Result,
    admin_connection,
    main,
    percentile,
    scalar,
    scratch_database,
)

_TARGET: Final = "tracking call"
_BLOCK: Final = 1_000
_SESSIONS: Final = [f"bench-session-{index:04d}" for index in range(100)]
_SYNC_SECONDS: Final = 2.0
_SYNC_MAX_EVENTS: Final = 3_000

Call = Callable[..., object]
MakeArgs = Callable[[int], tuple[object, ...]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000, help="calls timed alone")
    return parser


async def _time_each(call: Call, make_args: MakeArgs, calls: int) -> list[int]:
    """Nanoseconds per call, each call timed alone; yields between blocks.

    Arguments are made before the clock starts, so only the call is timed.
    """
    samples: list[int] = []
    append = samples.append
    clock = time.perf_counter_ns

    for start in range(0, calls, _BLOCK):
        block = [make_args(index) for index in range(start, min(start + _BLOCK, calls))]
        for args in block:
            began = clock()
            call(*args)
            append(clock() - began)
        await asyncio.sleep(0)

    samples.sort()

    return samples


async def _time_blocks(call: Call, make_args: MakeArgs, calls: int) -> float:
    """Mean nanoseconds per call, timing whole blocks of calls."""
    total = 0
    clock = time.perf_counter_ns

    for start in range(0, calls, _BLOCK):
        block = [make_args(index) for index in range(start, min(start + _BLOCK, calls))]
        began = clock()
        for args in block:
            call(*args)
        total += clock() - began
        await asyncio.sleep(0)

    return total / calls


def _timer_overhead() -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(100_000):
        began = clock()
        samples.append(clock() - began)
    samples.sort()

    return percentile(samples, 0.5)


def _program_run_args(index: int) -> tuple[object, ...]:
    return (_SESSIONS[index % 100], 42, index % 5_000, index * 7 % 100_000, True)


def _other_calls(tracker: UsageTracker) -> dict[str, tuple[Call, MakeArgs]]:
    """The other tracking calls, for reference (held to no limit)."""
    agent, address = "Mozilla/5.0 (X11; Linux x86_64)", "203.0.113.77"

    return {
        "track_feature_usage": (
            tracker.track_feature_usage,
            lambda index: (_SESSIONS[index % 100], "debugger", {"line": index % 500}),
        ),
        "update_session_activity": (
            tracker.update_session_activity,
            lambda index: (_SESSIONS[index % 100],),
        ),
        "start_ide_session": (
            tracker.start_ide_session,
            lambda index: (_SESSIONS[index % 100], agent, address),
        ),
        "track_page_visit": (
            tracker.track_page_visit,
            lambda index: ("/ide", "https://example.org/", agent, address),
        ),
    }


def _sync_design(settings: MySQLSettings) -> list[int]:
    """Nanoseconds per event of the old tracker: INSERT + UPDATE, autocommit."""
    samples: list[int] = []
    with admin_connection(settings) as connection, connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO ide_sessions (session_id, start_time, last_activity)"
            " VALUES (%s, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
            [(session,) for session in _SESSIONS],
        )
        deadline = time.perf_counter() + _SYNC_SECONDS
        index = 0
        while time.perf_counter() < deadline and index < _SYNC_MAX_EVENTS:
            began = time.perf_counter_ns()
            _sync_event(cursor, index)
            samples.append(time.perf_counter_ns() - began)
            index += 1

    samples.sort()

    return samples


def _sync_event(cursor: Any, index: int) -> None:
    session, lines = _SESSIONS[index % 100], index * 7 % 100_000
    cursor.execute(
        "INSERT INTO program_executions (event_id, session_id, timestamp,"
        " program_lines, execution_time_ms, lines_executed, success, error_message)"
        " VALUES (%s, %s, UTC_TIMESTAMP(3), %s, %s, %s, %s, %s)",
        (index.to_bytes(16, "big"), session, 42, index % 5_000, lines, True, None),
    )
    cursor.execute(
        "UPDATE ide_sessions SET programs_run = programs_run + 1,"
        " lines_executed = lines_executed + %s, last_activity = UTC_TIMESTAMP(3)"
        " WHERE session_id = %s",
        (lines, session),
    )


async def _floor(calls: int) -> list[int]:
    queue: asyncio.Queue[object] = asyncio.Queue()

    return await _time_each(queue.put_nowait, lambda index: (index,), calls)


async def run(args: argparse.Namespace) -> list[Result]:
    """Measure the call, the floor and the old design in one run."""
    calls = args.calls
    async with scratch_database() as settings:
        sync = _sync_design(settings)
        floor = await _floor(calls)

        tracker = UsageTracker(TrackingConfig(mysql=settings, queue_size=2_000_000))
        call = tracker.track_program_execution
        each = await _time_each(call, _program_run_args, calls)
        mean = await _time_blocks(call, _program_run_args, calls // 2)
        others = {
            name: await _time_each(other, make_args, calls // 10)
            for name, (other, make_args) in _other_calls(tracker).items()
        }

        await tracker.stop(timeout=120)
        landed = scalar(settings, "SELECT COUNT(*) FROM program_executions")
        stats = tracker.stats()

    median, p99 = percentile(each, 0.5) / 1e3, percentile(each, 0.99) / 1e3
    sync_median = percentile(sync, 0.5) / 1e3
    expected = len(sync) + calls + calls // 2

    results = [
        Result(_TARGET, "median", median, "us", "<=", 2.0, "track_program_execution"),
        Result(_TARGET, "p99", p99, "us", "<=", 10.0, f"{calls:,} calls timed alone"),
        Result(_TARGET, "p99.9", percentile(each, 0.999) / 1e3, "us"),
        Result(_TARGET, "max", each[-1] / 1e3, "us"),
        Result(_TARGET, "mean, timing blocks of 1,000", mean / 1e3, "us"),
        Result(_TARGET, "timer overhead (median)", _timer_overhead() / 1e3, "us"),
        Result(
            _TARGET,
            "floor: Queue.put_nowait median",
            percentile(floor, 0.5) / 1e3,
            "us",
            note="CPython's floor, same timing",
        ),
        Result(
            _TARGET,
            "old design: INSERT+UPDATE median",
            sync_median,
            "us",
            note=f"{len(sync):,} events, p99 {percentile(sync, 0.99) / 1e3:,.0f} us",
        ),
        Result(
            _TARGET,
            "old design / tracking call",
            sync_median / median,
            "x",
            ">=",
            200.0,
            "ratio of medians, same run",
        ),
    ]
    for name, samples in others.items():
        results.append(
            Result(
                _TARGET,
                f"{name} median / p99",
                percentile(samples, 0.5) / 1e3,
                "us",
                note=f"p99 {percentile(samples, 0.99) / 1e3:.2f} us",
            )
        )
    results.append(
        Result(
            _TARGET,
            "program runs landed",
            landed,
            "rows",
            "==",
            expected,
            f"dropped {stats['dropped']}, abandoned {stats['abandoned']}",
        )
    )

    return results


if __name__ == "__main__":
    main(run, _parser())
