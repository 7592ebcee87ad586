"""A batch of events turned into the rows each table receives.

Shared by the SQL sinks, so that MySQL and SQLite agree on what a batch means:

- ``sessions``: one row per session the batch touches, merged. A session that
  the batch reports runs or features for, but whose start the database may not
  have seen, gets a row too (its start is its earliest event), so that nothing
  reported for it is lost. Upserting these rows is idempotent: start times take
  the earliest, activity and end the latest, user agent and address the first
  known.
- ``programs``, ``features``, ``visits``: one row per event, keyed by event id.
- ``counted_sessions``: sessions that ran programs in this batch. Each
  SessionRow carries the batch's own ``runs`` and ``lines`` for its session:
  a sink adds them to the counters only when every program row of the batch
  was new, and otherwise recomputes those sessions' counters from
  ``program_executions``. Either way a repeated batch counts nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from ..events import (
    FEATURE_USE,
    PAGE_VISIT,
    PROGRAM_RUN,
    SESSION_END,
    SESSION_START,
    Event,
    format_time,
)

__all__ = ["BatchRows", "ProgramRow", "RowPlanner", "SessionRow", "plan_rows"]


#: (event_id, session_id, timestamp, program_lines, execution_time_ms,
#: lines_executed, success, error_message), as ``program_executions`` stores them.
ProgramRow: TypeAlias = tuple[
    bytes, str, str, int | None, int | None, int | None, bool | None, str | None
]


@dataclass(slots=True)
class SessionRow:
    """The merged effect of a batch on one ``ide_sessions`` row."""

    session_id: str
    start: float
    last_activity: float
    end: float | None = None
    user_agent: str | None = None
    ip_address: str | None = None
    runs: int = 0
    lines: int = 0

    def values(self) -> tuple[object, ...]:
        """(session_id, start_time, last_activity, end_time, duration_seconds,
        user_agent, ip_address) as stored."""
        duration = None if self.end is None else max(0, int(self.end - self.start))
        return (
            self.session_id,
            format_time(self.start),
            format_time(self.last_activity),
            None if self.end is None else format_time(self.end),
            duration,
            self.user_agent,
            self.ip_address,
        )


@dataclass(slots=True)
class BatchRows:
    """Rows per table for one batch, in the order they must be written."""

    sessions: list[SessionRow] = field(default_factory=list)
    programs: list[ProgramRow] = field(default_factory=list)
    features: list[tuple[object, ...]] = field(default_factory=list)
    visits: list[tuple[object, ...]] = field(default_factory=list)
    counted_sessions: list[str] = field(default_factory=list)


class RowPlanner:
    """Builds the BatchRows of a batch a slice at a time.

    A sink that shares the event loop with an application plans a large batch
    in slices and yields to the loop between them; ``plan_rows`` does it in one
    go. The result is the same either way.
    """

    __slots__ = ("_counted", "_rows", "_sessions")

    def __init__(self) -> None:
        self._rows = BatchRows()
        self._sessions: dict[str, SessionRow] = {}
        self._counted: dict[str, None] = {}

    def add(
        self, events: Iterable[Event]
    ) -> tuple[list[ProgramRow], list[tuple[object, ...]], list[tuple[object, ...]]]:
        """Fold ``events`` (the next slice of the batch, in order) into the rows.

        Returns the event rows this slice added: (programs, features, visits).
        Session rows are merged over the whole batch and come from ``finish``.
        """
        rows = self._rows
        marks = len(rows.programs), len(rows.features), len(rows.visits)
        sessions = self._sessions
        programs = rows.programs.append
        features = rows.features.append

        for event in events:
            kind = event[0]
            at = event[2]
            key = event[1].to_bytes(16, "big")

            if kind is PAGE_VISIT:
                rows.visits.append((key, format_time(at), *event[3:]))
                continue

            sid: str = event[3]
            session = sessions.get(sid)
            if session is None:
                session = sessions[sid] = SessionRow(sid, at, at)
            elif at < session.start:
                session.start = at
            elif at > session.last_activity:
                session.last_activity = at

            if kind is PROGRAM_RUN:
                # (..., program_lines, execution_time_ms, lines_executed, ...)
                self._counted[sid] = None
                session.runs += 1
                session.lines += event[6] or 0
                programs((key, sid, format_time(at), *event[4:]))
            elif kind is FEATURE_USE:
                features((key, sid, format_time(at), *event[4:]))
            elif kind is SESSION_START:
                session.user_agent = session.user_agent or event[4]
                session.ip_address = session.ip_address or event[5]
            elif kind is SESSION_END:
                session.end = at if session.end is None else max(session.end, at)

        return (
            rows.programs[marks[0] :],
            rows.features[marks[1] :],
            rows.visits[marks[2] :],
        )

    def finish(self) -> BatchRows:
        """The rows of everything added."""
        rows = self._rows
        rows.sessions = list(self._sessions.values())
        rows.counted_sessions = list(self._counted)

        return rows


def plan_rows(batch: Sequence[Event]) -> BatchRows:
    """Split ``batch`` into rows per table; pure, no I/O."""
    planner = RowPlanner()
    planner.add(batch)

    return planner.finish()
