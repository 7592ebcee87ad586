"""A batch of events turned into the rows each table receives.

Shared by the SQL sinks, so that MySQL and SQLite agree on what a batch means:

- ``sessions``: one row per session the batch touches, merged. A session that
  the batch reports runs or features for, but whose start the database may not
  have seen, gets a row too (its start is its earliest event), so that nothing
  reported for it is lost. Upserting these rows is idempotent: start times take
  the earliest, activity and end the latest, user agent and address the first
  known.
- ``programs``, ``features``, ``visits``: one row per event, keyed by event id.
- ``counted_sessions``: sessions whose ``programs_run`` and ``lines_executed``
  must be recomputed from ``program_executions``. Recomputing, rather than
  adding, is what makes a repeated batch harmless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..events import (
    Event,
    FeatureUse,
    PageVisit,
    ProgramRun,
    SessionEnd,
    SessionStart,
    event_id_bytes,
    format_time,
)

__all__ = ["BatchRows", "SessionRow", "plan_rows"]


@dataclass(slots=True)
class SessionRow:
    """The merged effect of a batch on one ``ide_sessions`` row."""

    session_id: str
    start: float
    last_activity: float
    end: float | None = None
    user_agent: str | None = None
    ip_address: str | None = None

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
    programs: list[tuple[object, ...]] = field(default_factory=list)
    features: list[tuple[object, ...]] = field(default_factory=list)
    visits: list[tuple[object, ...]] = field(default_factory=list)
    counted_sessions: list[str] = field(default_factory=list)


def plan_rows(batch: Sequence[Event]) -> BatchRows:
    """Split ``batch`` into rows per table; pure, no I/O."""
    rows = BatchRows()
    sessions: dict[str, SessionRow] = {}
    counted: dict[str, None] = {}

    for event in batch:
        if isinstance(event, PageVisit):
            rows.visits.append(
                (
                    event_id_bytes(event.event_id),
                    format_time(event.at),
                    event.page_path,
                    event.referrer,
                    event.user_agent,
                    event.ip_address,
                    event.session_id,
                )
            )
            continue

        sid = event.session_id
        session = sessions.get(sid)
        if session is None:
            session = sessions[sid] = SessionRow(sid, event.at, event.at)
        else:
            session.start = min(session.start, event.at)
            session.last_activity = max(session.last_activity, event.at)

        if isinstance(event, SessionStart):
            session.user_agent = session.user_agent or event.user_agent
            session.ip_address = session.ip_address or event.ip_address
        elif isinstance(event, SessionEnd):
            session.end = (
                event.at if session.end is None else max(session.end, event.at)
            )
        elif isinstance(event, ProgramRun):
            counted[sid] = None
            rows.programs.append(
                (
                    event_id_bytes(event.event_id),
                    sid,
                    format_time(event.at),
                    event.program_lines,
                    event.execution_time_ms,
                    event.lines_executed,
                    event.success,
                    event.error_message,
                )
            )
        elif isinstance(event, FeatureUse):
            rows.features.append(
                (
                    event_id_bytes(event.event_id),
                    sid,
                    format_time(event.at),
                    event.feature_name,
                    event.feature_data,
                )
            )

    rows.sessions = list(sessions.values())
    rows.counted_sessions = list(counted)

    return rows
