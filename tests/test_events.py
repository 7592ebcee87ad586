"""Normalization of tracking arguments and client addresses, without a server."""

from __future__ import annotations

import json
import math
import uuid
from decimal import Decimal

import pytest

from mbasic_tracking import events as ev
from mbasic_tracking.privacy import make_ip_filter


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc-123", "abc-123"),
        (42, "42"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ("  padded  ", "  padded  "),
        ("nul\x00inside", "nul\ufffdinside"),
        ("x" * 64, "x" * 64),
        ("x" * 65, None),
        ("", None),
        ("   ", None),
        (None, None),
        (True, None),
        (1.5, None),
        (b"bytes", None),
        (object(), None),
    ],
)
def test_session_id(value: object, expected: str | None) -> None:
    """Session ids are accepted, converted or refused, never cut."""
    assert ev.session_id(value) == expected


def test_text_is_cut_to_the_column_in_characters() -> None:
    """Long text is cut by characters, so multi-byte text fits the column too."""
    assert ev.text("é" * 600, 512) == "é" * 512
    assert ev.text("😀" * 600, 100) == "😀" * 100


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("a\x00b", "a\ufffdb"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        (b"caf\xc3\xa9 \xff", "café \ufffd"),
        (12, "12"),
        (None, None),
        ("'; DROP TABLE ide_sessions; --", "'; DROP TABLE ide_sessions; --"),
    ],
)
def test_text_values(value: object, expected: str | None) -> None:
    """Text loses NUL and lone surrogates; other types become their text."""
    assert ev.text(value, 100) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, 5),
        (-5, 0),
        (10**30, ev.INT_MAX),
        (3.6, 4),
        (math.inf, ev.INT_MAX),
        (-math.inf, 0),
        (math.nan, None),
        ("17", 17),
        ("1e3", 1000),
        ("many", None),
        (True, 1),
        (None, None),
        ([1], None),
        (Decimal("2.5"), None),
    ],
)
def test_count(value: object, expected: int | None) -> None:
    """Counts are clamped to the column's range; non-numbers become NULL."""
    assert ev.count(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (0, False), (2, True), ("yes", True), ("False", False), ("?", None)],
)
def test_flag(value: object, expected: bool | None) -> None:
    """Booleans come from bools, numbers and common words."""
    assert ev.flag(value) == expected


def test_json_holds_what_json_cannot() -> None:
    """Sets, objects, non-finite floats, non-string keys and cycles are stored."""
    cyclic: list[object] = [1]
    cyclic.append(cyclic)
    value = {
        "set": {1},
        "nan": math.nan,
        (1, 2): "tuple key",
        "obj": object,
        "cycle": cyclic,
        "nul": "a\x00b",
        "surrogate": "\udc80",
    }

    decoded = json.loads(ev.json_text(value) or "")

    assert decoded["set"] == "{1}"
    assert decoded["nan"] == "nan"
    assert decoded["(1, 2)"] == "tuple key"
    assert decoded["cycle"] == [1, "<cycle>"]
    assert decoded["nul"] == "a\x00b"
    assert decoded["surrogate"] == "\ufffd"


def test_json_is_size_capped() -> None:
    """Oversized data becomes a small valid JSON object with a marker."""
    encoded = ev.json_text({"blob": "x" * 1_000_000}) or ""

    assert len(encoded) <= ev.FEATURE_DATA_MAX_CHARS + 100
    assert json.loads(encoded)["truncated"] is True


@pytest.mark.parametrize(
    ("mode", "address", "expected"),
    [
        ("truncate", "203.0.113.77", "203.0.113.0"),
        ("truncate", "2001:db8:1234:5678::1", "2001:db8:1234::"),
        ("truncate", "::ffff:198.51.100.9", "198.51.100.0"),
        ("raw", "203.0.113.77", "203.0.113.77"),
        ("none", "203.0.113.77", None),
        ("truncate", "not an ip", None),
        ("raw", "1.2.3.4'; DROP", None),
        ("truncate", None, None),
    ],
)
def test_ip_modes(mode: str, address: object, expected: str | None) -> None:
    """Each ip_mode stores what it promises; garbage becomes NULL."""
    assert make_ip_filter(mode, None)(address) == expected  # type: ignore[arg-type]


def test_ip_hash_is_keyed_and_fits_the_column() -> None:
    """Hashes differ by secret, are stable per secret, and fit VARCHAR(64)."""
    one = make_ip_filter("hash", b"secret-one-secret-one")
    two = make_ip_filter("hash", b"secret-two-secret-two")

    assert one("203.0.113.77") == one("203.0.113.77")
    assert one("203.0.113.77") != two("203.0.113.77")
    assert len(one("2001:db8::1") or "") <= ev.IP_WIDTH
    assert "203.0.113" not in (one("203.0.113.77") or "")


def test_hash_mode_needs_a_secret() -> None:
    """Hashing without a secret is refused."""
    with pytest.raises(ValueError, match="secret"):
        make_ip_filter("hash", None)


def test_format_time_keeps_milliseconds_in_utc() -> None:
    """Event times are stored as UTC with milliseconds."""
    assert ev.format_time(0.1239) == "1970-01-01 00:00:00.123"
