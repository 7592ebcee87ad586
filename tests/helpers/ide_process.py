"""A plain asyncio program that tracks usage the way the IDE does, for SIGTERM tests.

Run as ``python -m tests.helpers.ide_process HOST PORT DATABASE SPOOL_DIR PREFIX``
from the repository root. It makes its tracker with ``init_usage_tracker`` from
a config dict (as the IDE does, never calling ``start``), tracks a steady
stream of calls, and on SIGTERM stops producing and awaits ``tracker.stop()``.
It prints ``ready`` once tracking, and last one JSON line: what it sent (the
workload's totals) and the tracker's stats.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from mbasic_tracking import get_usage_tracker, init_usage_tracker
from tests.helpers.workload import Workload

RATE = 2_000  # calls per second
DRAIN_TIMEOUT = 1.0  # what stop() may take to write before spooling the rest


async def main(
    host: str, port: int, database: str, spool_dir: str, prefix: str
) -> None:
    init_usage_tracker(
        {
            "enabled": True,
            "mysql": {"host": host, "port": port, "user": "root", "database": database},
            "spool_dir": spool_dir,
            "queue_size": 5_000,
            "batch_size": 200,
            "flush_interval": 0.05,
            "connect_timeout": 0.3,
            "statement_timeout": 0.5,
            "retry_initial_wait": 0.01,
            "retry_max_wait": 0.2,
        },
        register_nicegui=False,
    )
    tracker = get_usage_tracker()
    if tracker is None:
        raise RuntimeError("init_usage_tracker made no tracker")

    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)

    workload = Workload(prefix)
    producer = asyncio.create_task(workload.stream(tracker, 10**9, per_second=RATE))
    print("ready", flush=True)

    await stopping.wait()
    producer.cancel()
    await asyncio.wait([producer])
    await tracker.stop(timeout=DRAIN_TIMEOUT)

    sent = {
        "calls": workload.calls,
        "runs": workload.runs,
        "lines": workload.lines,
        "features": workload.features,
        "visits": workload.visits,
    }
    print(json.dumps({"sent": sent, "stats": tracker.stats()}), flush=True)


if __name__ == "__main__":
    host, port, database, spool_dir, prefix = sys.argv[1:6]
    asyncio.run(main(host, int(port), database, spool_dir, prefix))
