"""Malformed tracking arguments against the real server in strict SQL mode.

No exception reaches the caller, every call with a usable session lands as a row,
calls without one are counted as invalid, and nothing else of the batch is lost.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest

from mbasic_tracking import MySQLSettings, UsageTracker
from tests.conftest import query, scalar

pytestmark = pytest.mark.usefixtures("strict_mode")

INJECTION = "x'); DROP TABLE ide_sessions; -- \\' \" `"
MEGABYTE = "é" * 1_000_000

HOSTILE_TEXT: list[Any] = [
    INJECTION,
    "nul\x00byte",
    "lone \ud800 surrogate",
    MEGABYTE,
    b"\xff\xfe raw bytes",
    12345,
    3.5,
    None,
    ["a", "list"],
    {"a": "dict"},
    object(),
    "emoji 😀 and \u202e bidi",
    "%s %(name)s {0} %%",
]
HOSTILE_NUMBERS: list[Any] = [
    -1,
    10**40,
    -(10**40),
    math.nan,
    math.inf,
    "12",
    "twelve",
    None,
    True,
    Decimal("1e50"),
    [1, 2],
    2.5e18,
]
HOSTILE_DATA: list[Any] = [
    {"set": {1, 2}, "nan": math.nan, "inf": -math.inf},
    {(1, 2): "tuple key", 3: "int key"},
    {"nested": [[[[[[[["deep"]]]]]]]]},
    {"blob": MEGABYTE},
    object(),
    "just a string",
    b"bytes",
    {"nul": "a\x00b", "surrogate": "\udfff"},
    [math.nan],
]


async def test_hostile_values_land_and_nothing_raises(
    make_tracker: Any, database: MySQLSettings
) -> None:
    """Every call with a usable session id lands as a row, whatever else it holds."""
    tracker: UsageTracker = make_tracker()
    sid = "session-hostile"
    tracker.start_ide_session(sid, MEGABYTE, INJECTION)

    for text in HOSTILE_TEXT:
        tracker.start_ide_session(sid, text, text)
        tracker.track_feature_usage(sid, text or "unnamed", text)
        tracker.track_page_visit(text or "/", text, text, text, sid)
        tracker.track_program_execution(sid, 1, 1, 1, text, text)
    for number in HOSTILE_NUMBERS:
        tracker.track_program_execution(sid, number, number, number, number, None)
    for data in HOSTILE_DATA:
        tracker.track_feature_usage(sid, "data", data)
    tracker.end_ide_session(sid)

    assert await tracker.flush(timeout=30)
    stats = tracker.stats()
    assert (stats["failed"], stats["dropped"]) == (0, 0)
    assert stats["written"] == stats["enqueued"]

    programs = len(HOSTILE_TEXT) + len(HOSTILE_NUMBERS)
    features = len(HOSTILE_TEXT) + len(HOSTILE_DATA)
    assert scalar(database, "SELECT COUNT(*) FROM program_executions") == programs
    assert scalar(database, "SELECT COUNT(*) FROM feature_usage") == features
    assert scalar(database, "SELECT COUNT(*) FROM page_visits") == len(HOSTILE_TEXT)
    assert scalar(database, "SELECT programs_run FROM ide_sessions") == programs
    assert query(database, "SHOW TABLES LIKE 'ide_sessions'") == [("ide_sessions",)]


async def test_stored_values_are_normalized(
    make_tracker: Any, database: MySQLSettings
) -> None:
    """Stored values are cut, clamped and cleaned as documented."""
    tracker: UsageTracker = make_tracker()
    tracker.start_ide_session("s", "ua-" + "é" * 600, "203.0.113.200")
    tracker.track_program_execution("s", -3, 10**20, 10**30, "yes", "E" * 5000)
    tracker.track_feature_usage("s", "inject", {"q": INJECTION, "nul": "a\x00b"})
    assert await tracker.flush(timeout=10)

    user_agent, ip = query(database, "SELECT user_agent, ip_address FROM ide_sessions")[
        0
    ]
    assert user_agent == ("ua-" + "é" * 600)[:512]
    assert ip == "203.0.113.0"

    row = query(
        database,
        "SELECT program_lines, execution_time_ms, lines_executed, success,"
        " CHAR_LENGTH(error_message) FROM program_executions",
    )
    assert row == [(0, 4_294_967_295, 1_000_000_000_000, 1, 1024)]

    (data,) = query(database, "SELECT feature_data FROM feature_usage")[0]
    assert json.loads(data) == {"q": INJECTION, "nul": "a\x00b"}


@pytest.mark.parametrize(
    "bad_session", [None, "", "   ", "x" * 65, 1.5, b"id", object()]
)
async def test_calls_without_a_usable_session_are_counted_invalid(
    make_tracker: Any, database: MySQLSettings, bad_session: Any
) -> None:
    """A call without a usable session id is counted, not written, not raised."""
    tracker: UsageTracker = make_tracker()
    tracker.start_ide_session(bad_session)
    tracker.update_session_activity(bad_session)
    tracker.end_ide_session(bad_session)
    tracker.track_program_execution(bad_session, 1, 1, 1, True)
    tracker.track_feature_usage(bad_session, "f")
    tracker.track_feature_usage("good", None)
    tracker.track_page_visit(None)
    tracker.track_program_execution("good", 1, 1, 1, True)

    assert await tracker.flush(timeout=10)

    stats = tracker.stats()
    assert (stats["invalid"], stats["written"]) == (7, 1)
    assert scalar(database, "SELECT COUNT(*) FROM program_executions") == 1


async def test_wrong_arity_raises_like_any_python_call(make_tracker: Any) -> None:
    """Only a call with missing positional arguments fails, as Python itself decides."""
    tracker: UsageTracker = make_tracker()

    with pytest.raises(TypeError):
        tracker.track_program_execution("s")  # type: ignore[call-arg]
