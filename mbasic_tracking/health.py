"""The tracker's part of an app's health check.

An analytics outage must not take the IDE down: a liveness or readiness probe
that failed whenever the tracking database did would have Kubernetes restart
healthy pods. So the report says ``"degraded"`` when tracking cannot write, and
the HTTP status stays 200 for as long as the app itself can serve users. Events
keep queueing meanwhile, up to the queue's bound.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .tracker import UsageTracker

__all__ = ["health_report"]

_DEFAULT_PING_TIMEOUT: Final = 2.0


async def health_report(
    tracker: UsageTracker | None, *, ping_timeout: float = _DEFAULT_PING_TIMEOUT
) -> dict[str, Any]:
    """A JSON-ready report on ``tracker``, for a health route.

    ``status`` is ``"ok"``, or ``"degraded"`` when the tracking database does
    not answer within ``ping_timeout`` seconds or the writer is not running.
    ``tracking`` holds the tracker's stats (no secrets), ``database`` (``"up"``
    or ``"down"``) and ``last_write_age_seconds`` (None before the first write).
    With no tracker, or a disabled one, the status is ``"ok"``. Never raises.
    """
    if tracker is None or not tracker.enabled:
        return {"status": "ok", "tracking": {"enabled": False}}

    try:
        async with asyncio.timeout(ping_timeout):
            database_up = await tracker.ping()
    except TimeoutError:
        database_up = False

    stats = tracker.stats()
    problems = []
    if not database_up:
        problems.append("the tracking database does not answer")
    if not stats["running"]:
        problems.append("the tracking writer is not running")

    return {
        "status": "degraded" if problems else "ok",
        "problems": problems,
        "tracking": {
            **stats,
            "database": "up" if database_up else "down",
            "last_write_age_seconds": _age(stats["last_flush_at"]),
        },
    }


def _age(moment: str | None) -> float | None:
    if moment is None:
        return None

    return round(max(0.0, time.time() - datetime.fromisoformat(moment).timestamp()), 3)
