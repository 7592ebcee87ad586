"""How late the tracker makes the other work on its event loop.

Proves (issue 5): with handlers producing 10,000 events per second (program runs
and feature uses, in turn) on the loop, the tracker adds <= 3 ms to the p99
lateness of a 1 ms timer on the same loop and <= 10 ms to its worst lateness,
against the same handlers with tracking disabled, in the same run; and every
event produced with tracking on is written.

Phases with tracking off and on alternate (off, on, off, on, ...) so that a noisy
neighbour hurts both sides alike. After each phase with tracking on, the tracker
is flushed outside the measured window, so each phase starts with an empty
queue. A timer's lateness is how much longer than 1 ms an ``asyncio.sleep(0.001)``
took. The handlers run on a 1 ms tick, 10 events per tick; a tick that falls
behind is caught up, so the rate holds.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Final

from mbasic_tracking import TrackingConfig, UsageTracker

from ._common import Result, emit, main, percentile, scalar, scratch_database

_TICK: Final = 0.001
_EVENTS_PER_TICK: Final = 10


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs")
    parser.add_argument("--seconds", type=float, default=5.0, help="per phase")
    return parser


async def _timer(until: float, lateness: list[float]) -> None:
    """Sleep 1 ms again and again; record each wake-up's lateness in ms."""
    clock = time.perf_counter
    while clock() < until:
        began = clock()
        await asyncio.sleep(_TICK)
        lateness.append((clock() - began - _TICK) * 1e3)


async def _handlers(tracker: UsageTracker, until: float, first: int) -> int:
    """Make 10 events per 1 ms tick until ``until``; returns the next index."""
    clock = time.perf_counter
    index = first
    tick = clock()

    while tick < until:
        for _ in range(_EVENTS_PER_TICK):
            emit(tracker, index)
            index += 1
        tick += _TICK
        await asyncio.sleep(max(0.0, tick - clock()))

    return index


async def _phase(
    tracker: UsageTracker, seconds: float, first: int
) -> tuple[list[float], int]:
    """One measured phase: (lateness samples in ms, next event index)."""
    lateness: list[float] = []
    until = time.perf_counter() + seconds
    _, after = await asyncio.gather(
        _timer(until, lateness), _handlers(tracker, until, first)
    )

    return lateness, after


async def run(args: argparse.Namespace) -> list[Result]:
    """Alternate phases without and with tracking; compare the timer."""
    off: list[float] = []
    on: list[float] = []
    produced = 0

    async with scratch_database() as settings:
        disabled = UsageTracker(TrackingConfig(enabled=False))
        tracker = UsageTracker(TrackingConfig(mysql=settings, queue_size=200_000))
        await tracker.start()

        for _ in range(args.rounds):
            samples, _ = await _phase(disabled, args.seconds, 0)
            off.extend(samples)

            samples, after = await _phase(tracker, args.seconds, produced)
            on.extend(samples)
            produced = after
            await tracker.flush(timeout=120)

        await tracker.stop(timeout=60)
        written = scalar(
            settings,
            "SELECT (SELECT COUNT(*) FROM program_executions)"
            " + (SELECT COUNT(*) FROM feature_usage)",
        )
        dropped = tracker.stats()["dropped"]

    return _results(args, sorted(off), sorted(on), produced, int(written), dropped)


def _results(
    args: argparse.Namespace,
    off: list[float],
    on: list[float],
    produced: int,
    written: int,
    dropped: int,
) -> list[Result]:
    p99_off, p99_on = percentile(off, 0.99), percentile(on, 0.99)
    rate = produced / (args.rounds * args.seconds)

    return [
        Result("loop lag", "timer p99, tracking off", p99_off, "ms"),
        Result("loop lag", "timer p99, tracking on", p99_on, "ms"),
        Result("loop lag", "added to p99", p99_on - p99_off, "ms", "<=", 3.0),
        Result("loop lag", "timer worst, tracking off", off[-1], "ms"),
        Result("loop lag", "timer worst, tracking on", on[-1], "ms"),
        Result("loop lag", "added to worst", on[-1] - off[-1], "ms", "<=", 10.0),
        Result(
            "loop lag",
            "events produced with tracking on",
            rate,
            "events/s",
            ">=",
            9_500.0,
            f"{produced:,} events, {args.rounds} x {args.seconds:g} s",
        ),
        Result(
            "loop lag",
            "events written",
            written,
            "rows",
            "==",
            produced,
            f"dropped {dropped}",
        ),
    ]


if __name__ == "__main__":
    main(run, _parser())
