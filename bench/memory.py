"""What an event costs in memory while it waits in the queue.

Proves (issue 5): with the database unreachable (the tracker points at a closed
port), 100,000 events held in the queue take <= 300 bytes of resident memory
each. Events are the handlers' mix (program runs and feature uses, in turn, with
fresh numbers and a small ``feature_data``); session ids and feature names are
the caller's existing strings, as in the IDE.

Measured twice in one process: first the growth of the resident set
(/proc/self/statm) with tracemalloc off; then, with a new tracker, the growth of
the memory Python allocated as tracemalloc counts it. Both after ``gc.collect()``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import tracemalloc
from collections.abc import Callable

from mbasic_tracking import MySQLSettings, TrackingConfig, UsageTracker

from ._common import Result, emit, main, rss_bytes

_WARMUP = 1_000


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events held")
    return parser


def _closed_port() -> int:
    """A local port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _held(events: int, measure: Callable[[], int]) -> tuple[int, int]:
    """(growth of ``measure`` in bytes, events held) for ``events`` queued."""
    settings = MySQLSettings(host="127.0.0.1", port=_closed_port(), database="nowhere")
    tracker = UsageTracker(
        TrackingConfig(mysql=settings, queue_size=events + 2 * _WARMUP)
    )

    for index in range(_WARMUP):
        emit(tracker, index)
    await asyncio.sleep(0.3)  # the writer starts, fails to connect, backs off
    gc.collect()
    before = measure()

    for index in range(_WARMUP, _WARMUP + events):
        emit(tracker, index)
        if index % 1_000 == 0:
            await asyncio.sleep(0)
    gc.collect()
    grown = measure() - before
    held = tracker.stats()["queue_depth"] - _WARMUP

    await tracker.stop(timeout=0.1)

    return grown, held


def _traced() -> int:
    return tracemalloc.get_traced_memory()[0]


async def run(args: argparse.Namespace) -> list[Result]:
    """Resident growth first, then tracemalloc's count, per event held."""
    rss, held = await _held(args.events, rss_bytes)
    gc.collect()

    tracemalloc.start()
    traced, traced_held = await _held(args.events, _traced)
    tracemalloc.stop()

    return [
        Result(
            "memory",
            "resident memory per queued event",
            rss / held,
            "bytes",
            "<=",
            300.0,
            f"RSS +{rss / 2**20:.1f} MiB for {held:,} events (statm)",
        ),
        Result(
            "memory",
            "allocated per queued event",
            traced / traced_held,
            "bytes",
            "<=",
            300.0,
            f"tracemalloc +{traced / 2**20:.1f} MiB for {traced_held:,} events",
        ),
        Result("memory", "events held in the queue", held, "events", "==", args.events),
    ]


if __name__ == "__main__":
    main(run, _parser())
