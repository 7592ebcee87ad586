"""A known stream of tracking calls, and the exact rows it must leave behind.

Fault tests emit a stream with ``Workload``, break things on the way, and then
compare the database with what the workload knows it sent: every row count and
every session's counters must match, neither short (a lost event) nor long (a
batch counted twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mbasic_tracking import MySQLSettings
from tests.conftest import query, scalar


class Tracking(Protocol):
    """The tracking calls the workload makes (a UsageTracker has them all)."""

    def start_ide_session(
        self, session_id: Any, user_agent: Any = None, ip_address: Any = None
    ) -> None: ...

    def track_program_execution(
        self,
        session_id: Any,
        program_lines: Any,
        execution_time_ms: Any,
        lines_executed: Any,
        success: Any,
        error_message: Any = None,
    ) -> None: ...

    def track_feature_usage(
        self, session_id: Any, feature_name: Any, feature_data: Any = None
    ) -> None: ...

    def track_page_visit(
        self,
        page_path: Any,
        referrer: Any = None,
        user_agent: Any = None,
        ip_address: Any = None,
        session_id: Any = None,
    ) -> None: ...


@dataclass
class Workload:
    """Emits calls that each make exactly one row, and remembers the totals.

    Sessions are started first; then runs, features and visits rotate over
    them. Every call is counted in ``calls``.
    """

    prefix: str
    sessions: int = 20
    calls: int = 0
    runs: dict[str, int] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    features: int = 0
    visits: int = 0

    def emit(self, tracker: Tracking, count: int) -> None:
        """Make ``count`` tracking calls, now, without awaiting."""
        for _ in range(count):
            self._one(tracker)

    async def stream(
        self,
        tracker: Tracking,
        count: int,
        *,
        per_second: float,
        on_tick: Callable[[int], None] | None = None,
    ) -> None:
        """Make ``count`` calls at a steady rate, in ticks of 10 ms."""
        tick = 0.01
        per_tick = max(1, round(per_second * tick))
        loop = asyncio.get_running_loop()
        started = loop.time()
        done = 0

        while done < count:
            step = min(per_tick, count - done)
            self.emit(tracker, step)
            done += step
            if on_tick is not None:
                on_tick(done)
            lag = started + done / per_second - loop.time()
            await asyncio.sleep(max(0.0, lag))

    @property
    def rows(self) -> int:
        """Rows the calls so far must leave in the event tables."""
        return sum(self.runs.values()) + self.features + self.visits

    def _one(self, tracker: Tracking) -> None:
        index = self.calls
        self.calls += 1
        session = f"{self.prefix}-{index % self.sessions}"

        if index < self.sessions:
            tracker.start_ide_session(session, "pytest", "192.0.2.7")
            self.runs.setdefault(session, 0)
            self.lines.setdefault(session, 0)
            return

        kind = index % 3
        if kind == 0:
            lines = index % 97 + 1
            tracker.track_program_execution(session, 10, 3, lines, index % 5 != 0)
            self.runs[session] += 1
            self.lines[session] += lines
        elif kind == 1:
            tracker.track_feature_usage(session, "run_button", {"n": index})
            self.features += 1
        else:
            tracker.track_page_visit("/ide", None, "pytest", None, session)
            self.visits += 1

    def assert_landed(self, settings: MySQLSettings) -> None:
        """The database holds exactly what the calls made: no more, no less."""
        like = f"{self.prefix}-%"
        sessions = {
            sid: (runs, lines)
            for sid, runs, lines in query(
                settings,
                "SELECT session_id, programs_run, lines_executed FROM ide_sessions"
                " WHERE session_id LIKE %s",
                like,
            )
        }
        expected = {sid: (self.runs[sid], self.lines[sid]) for sid in self.runs}

        assert sessions == expected
        assert scalar(
            settings,
            "SELECT COUNT(*) FROM program_executions WHERE session_id LIKE %s",
            like,
        ) == sum(self.runs.values())
        assert (
            scalar(
                settings,
                "SELECT COUNT(*) FROM feature_usage WHERE session_id LIKE %s",
                like,
            )
            == self.features
        )
        assert (
            scalar(
                settings,
                "SELECT COUNT(*) FROM page_visits WHERE session_id LIKE %s",
                like,
            )
            == self.visits
        )
