"""Usage history for the operations tests, written through the real MySQL sink.

Events carry times the test chooses (days in the past), which the tracker's
public API cannot do: it stamps every call with the current time. The rows
still land through ``MySQLSink.write``, the writer's own path, so sessions,
counters and durations are what production would store.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from mbasic_tracking import MySQLSettings
from mbasic_tracking.events import (
    Event,
    feature_use,
    page_visit,
    program_run,
    session_activity,
    session_end,
    session_start,
)
from mbasic_tracking.sinks.mysql import MySQLSink

_ids = itertools.count(1)


def utc_today() -> date:
    """Today's UTC date."""
    return datetime.now(UTC).date()


def day(offset: int) -> date:
    """The UTC date ``offset`` days from today (negative: in the past)."""
    return utc_today() + timedelta(days=offset)


def at(offset: int, clock: str = "12:00:00") -> float:
    """Epoch seconds of ``clock`` (HH:MM:SS[.fff]) on day ``offset``, UTC."""
    moment = datetime.combine(day(offset), time.fromisoformat(clock), UTC)
    return moment.timestamp()


def start(when: float, session: str, ip: str | None = "198.51.100.0") -> Event:
    """A session start."""
    return session_start(next(_ids), when, session, "pytest-agent", ip)


def activity(when: float, session: str) -> Event:
    """Activity in a session."""
    return session_activity(next(_ids), when, session)


def end(when: float, session: str) -> Event:
    """A session end."""
    return session_end(next(_ids), when, session)


def run(
    when: float,
    session: str,
    lines: int | None = 10,
    success: bool | None = True,
    error: str | None = None,
) -> Event:
    """A program run of a 20-line program."""
    return program_run(next(_ids), when, session, 20, 5, lines, success, error)


def feature(when: float, session: str, name: str) -> Event:
    """A feature use without data."""
    return feature_use(next(_ids), when, session, name, None)


def visit(when: float, path: str = "/", ip: str | None = "198.51.100.0") -> Event:
    """A page visit without a session."""
    return page_visit(next(_ids), when, path, None, "pytest-agent", ip, None)


async def write(settings: MySQLSettings, events: Sequence[Event]) -> None:
    """Write ``events`` as one batch through the MySQL sink."""
    sink = MySQLSink(settings)
    try:
        await sink.write(events)
    finally:
        await sink.close()


def database_url(settings: MySQLSettings) -> str:
    """A ``mysql://`` URL for ``settings`` (the test server's root has no
    password; others are passed as given)."""
    secret = f":{settings.password}" if settings.password else ""
    return (
        f"mysql://{settings.user}{secret}@{settings.host}:{settings.port}/"
        f"{settings.database}"
    )
