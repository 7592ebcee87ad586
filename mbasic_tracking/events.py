"""Event records and their normalization to the schema's column limits.

An event is normalized once, when the tracker makes it, so that every value it
carries is acceptable to a server in strict SQL mode: text is cut to its column's
width in characters with NUL and lone surrogates replaced, numbers are clamped to
their column's range, and values of the wrong type are converted or become NULL.
Everything downstream (the writer, the sinks, the spool) trusts these records.

Events are plain tuples tagged with their kind; see ``Event`` below for why.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias

__all__ = [
    "FEATURE_USE",
    "FIELDS",
    "PAGE_VISIT",
    "PROGRAM_RUN",
    "SESSION_ACTIVITY",
    "SESSION_END",
    "SESSION_START",
    "Event",
    "feature_use",
    "format_event_id",
    "format_time",
    "page_visit",
    "program_run",
    "session_activity",
    "session_end",
    "session_start",
]

# Column widths, in characters, as declared in schema/*/0001_core.sql.
SESSION_ID_WIDTH: Final = 64
USER_AGENT_WIDTH: Final = 512
IP_WIDTH: Final = 64
ERROR_WIDTH: Final = 1024
FEATURE_NAME_WIDTH: Final = 100
PAGE_PATH_WIDTH: Final = 512
REFERRER_WIDTH: Final = 1024
FEATURE_DATA_MAX_CHARS: Final = 16_384

# Numeric ranges. INT UNSIGNED columns take up to INT_MAX. Lines executed per
# run are capped far below the BIGINT range so that a session's sum of them
# stays a valid signed 64-bit integer (SQLite's INTEGER) for millions of runs.
INT_MAX: Final = 4_294_967_295
LINES_MAX: Final = 1_000_000_000_000

_REPLACEMENT: Final = "\ufffd"
_UNSAFE_CHARS: Final = re.compile("[\x00\ud800-\udfff]")


# An event is a plain tuple: its kind, its id, its UTC epoch time, then the
# fields of its kind, in the order FIELDS gives. Plain tuples rather than
# NamedTuples or slotted classes: the garbage collector stops tracking a plain
# tuple of strings and numbers at its first pass, so events waiting in a long
# queue add nothing to the application's full collections (instances of tuple
# subclasses stay tracked, and tens of thousands of them made the collector
# pause the event loop for tens of milliseconds).
Event: TypeAlias = tuple[Any, ...]

SESSION_START: Final = "S"
SESSION_ACTIVITY: Final = "A"
SESSION_END: Final = "E"
PROGRAM_RUN: Final = "P"
FEATURE_USE: Final = "F"
PAGE_VISIT: Final = "V"

#: The names of each kind's fields, after the kind itself.
FIELDS: Final[dict[str, tuple[str, ...]]] = {
    SESSION_START: ("event_id", "at", "session_id", "user_agent", "ip_address"),
    SESSION_ACTIVITY: ("event_id", "at", "session_id"),
    SESSION_END: ("event_id", "at", "session_id"),
    PROGRAM_RUN: (
        "event_id",
        "at",
        "session_id",
        "program_lines",
        "execution_time_ms",
        "lines_executed",
        "success",
        "error_message",
    ),
    FEATURE_USE: ("event_id", "at", "session_id", "feature_name", "feature_data"),
    PAGE_VISIT: (
        "event_id",
        "at",
        "page_path",
        "referrer",
        "user_agent",
        "ip_address",
        "session_id",
    ),
}
KIND_NAMES: Final = {
    SESSION_START: "session start",
    SESSION_ACTIVITY: "session activity",
    SESSION_END: "session end",
    PROGRAM_RUN: "program run",
    FEATURE_USE: "feature use",
    PAGE_VISIT: "page visit",
}

# Positions shared by every kind.
KIND: Final = 0
EVENT_ID: Final = 1
AT: Final = 2


def session_start(
    event_id: int, at: float, session_id: str, user_agent: str | None, ip: str | None
) -> Event:
    """An IDE session began."""
    return (SESSION_START, event_id, at, session_id, user_agent, ip)


def session_activity(event_id: int, at: float, session_id: str) -> Event:
    """A session showed activity; moves ``last_activity`` forward."""
    return (SESSION_ACTIVITY, event_id, at, session_id)


def session_end(event_id: int, at: float, session_id: str) -> Event:
    """An IDE session ended; sets ``end_time`` and ``duration_seconds``."""
    return (SESSION_END, event_id, at, session_id)


def program_run(
    event_id: int,
    at: float,
    session_id: str,
    program_lines: int | None,
    execution_time_ms: int | None,
    lines_executed: int | None,
    success: bool | None,
    error_message: str | None,
) -> Event:
    """A program ran in a session."""
    return (
        PROGRAM_RUN,
        event_id,
        at,
        session_id,
        program_lines,
        execution_time_ms,
        lines_executed,
        success,
        error_message,
    )


def feature_use(
    event_id: int, at: float, session_id: str, name: str, data: str | None
) -> Event:
    """An IDE feature was used; ``data`` is JSON text or None."""
    return (FEATURE_USE, event_id, at, session_id, name, data)


def page_visit(
    event_id: int,
    at: float,
    page_path: str,
    referrer: str | None,
    user_agent: str | None,
    ip_address: str | None,
    session_id: str | None,
) -> Event:
    """A page was visited; the session is optional."""
    return (
        PAGE_VISIT,
        event_id,
        at,
        page_path,
        referrer,
        user_agent,
        ip_address,
        session_id,
    )


def format_event_id(event_id: int) -> str:
    """The event id as 32 hex digits, as logs and ``HEX(event_id)`` show it."""
    return f"{event_id:032x}"


def format_time(at: float) -> str:
    """A UTC epoch time as ``YYYY-MM-DD HH:MM:SS.fff``, the DATETIME(3) text form.

    The same text as ``datetime.fromtimestamp(at, UTC)`` gives, at a fraction of
    its cost: the date and time of day are formatted once per second and
    remembered, and the milliseconds are rounded as ``fromtimestamp`` rounds
    them (to the nearest microsecond, halves to even, then cut).
    """
    if not 0.0 <= at <= _LAST_SECOND:
        return _format_time_slowly(at)

    second = int(at)
    micro = round((at - second) * 1e6)
    if micro >= 1_000_000:
        micro -= 1_000_000
        second += 1

    prefix = _SECOND_PREFIXES.get(second)
    if prefix is None:
        if len(_SECOND_PREFIXES) >= _SECOND_PREFIXES_KEPT:
            _SECOND_PREFIXES.clear()
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S.")
        _SECOND_PREFIXES[second] = prefix

    return prefix + _MILLISECONDS[micro // 1000]


def _format_time_slowly(at: float) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


_LAST_SECOND: Final = 253_402_300_799  # 9999-12-31 23:59:59 UTC
_SECOND_PREFIXES: dict[int, str] = {}
_SECOND_PREFIXES_KEPT: Final = 256
_MILLISECONDS: Final = tuple(f"{millis:03d}" for millis in range(1_000))


def session_id(value: object) -> str | None:
    """A usable session id, or None when the value cannot identify a session.

    Ids are opaque: kept as given, NUL and lone surrogates aside. Strings longer
    than the column are refused rather than cut, since two different sessions
    must never collapse into one id.
    """
    if (
        type(value) is str
        and 0 < len(value) <= SESSION_ID_WIDTH
        and value.isascii()
        and "\x00" not in value
        and not value.isspace()
    ):
        return value

    if value is None or isinstance(value, bool | float | bytes | bytearray):
        return None

    if isinstance(value, str):
        candidate = _clean(value)
    elif isinstance(value, int) or type(value).__name__ == "UUID":
        candidate = str(value)
    else:
        return None

    if not candidate.strip() or len(candidate) > SESSION_ID_WIDTH:
        return None

    return candidate


def text(value: object, width: int) -> str | None:
    """Text fit for a column of ``width`` characters; None stays None."""
    if (
        type(value) is str
        and len(value) <= width
        and value.isascii()
        and "\x00" not in value
    ):
        return value

    if value is None:
        return None

    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    elif not isinstance(value, str):
        try:
            value = str(value)
        except Exception:
            return None

    return _clean(value[: width * 2])[:width]


def count(value: object, maximum: int = INT_MAX) -> int | None:
    """A non-negative integer within ``maximum``; None when it is not a number."""
    if type(value) is int and 0 <= value <= maximum:
        return value

    if value is None:
        return None

    number: float | int
    if isinstance(value, bool):
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if math.isnan(value):
            return None
        number = value
    elif isinstance(value, str | bytes):
        try:
            number = float(value)
        except ValueError:
            return None
        if math.isnan(number):
            return None
    else:
        return None

    if number <= 0:
        return 0
    if number >= maximum:
        return maximum

    return round(number)


def flag(value: object) -> bool | None:
    """A boolean from a bool, a number or a word such as ``"true"``; else None."""
    if value is True or value is False:
        return value

    if isinstance(value, int | float) and not (
        isinstance(value, float) and math.isnan(value)
    ):
        return value != 0

    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "true", "yes", "y", "on", "ok", "success"):
            return True
        if word in ("0", "false", "no", "n", "off", "error", "failure"):
            return False

    return None


def json_text(value: object) -> str | None:
    """``value`` serialized as JSON that MySQL's JSON type accepts, size capped.

    Values JSON cannot hold (sets, objects, non-finite floats, non-string keys)
    are stored as their string form. A cycle is cut where it closes. Output over
    FEATURE_DATA_MAX_CHARS is replaced by an object holding a marker and a prefix.
    """
    if value is None:
        return None

    try:
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        encoded = json.dumps(_jsonable(value, 0, set()), ensure_ascii=False)

    # json.dumps escapes control characters but passes lone surrogates through.
    encoded = _clean(encoded)

    if len(encoded) > FEATURE_DATA_MAX_CHARS:
        preview = encoded[: FEATURE_DATA_MAX_CHARS // 2]
        encoded = json.dumps(
            {"truncated": True, "chars": len(encoded), "head": preview}
        )

    return encoded


def _jsonable(value: object, depth: int, seen: set[int]) -> Any:
    if depth > 32:
        return "..."

    if value is None or isinstance(value, bool | int | str):
        return value

    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)

    if id(value) in seen:
        return "<cycle>"

    if isinstance(value, Mapping):
        seen.add(id(value))
        result = {str(k): _jsonable(v, depth + 1, seen) for k, v in value.items()}
        seen.discard(id(value))
        return result

    if isinstance(value, list | tuple):
        seen.add(id(value))
        items = [_jsonable(v, depth + 1, seen) for v in value]
        seen.discard(id(value))
        return items

    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _clean(value: str) -> str:
    """Replace NUL and lone surrogates, which no utf8mb4 column accepts."""
    if value.isascii():
        return value.replace("\x00", _REPLACEMENT) if "\x00" in value else value

    return _UNSAFE_CHARS.sub(_REPLACEMENT, value)
