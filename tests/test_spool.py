"""The disk spool on its own: framing, damage, bounds, the folder lock."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest

from mbasic_tracking.events import (
    EVENT_ID,
    FIELDS,
    Event,
    feature_use,
    page_visit,
    program_run,
    session_activity,
    session_end,
    session_start,
)
from mbasic_tracking.spool import _V1_FIELDS, Spool, SpoolError, encode

BIG_ID = (0xFEDC_BA98_7654_3210 << 64) + 1

EVERY_KIND: list[Event] = [
    session_start(BIG_ID, 1_700_000_000.123, "s-1", "Mozilla/5.0 ü", "192.0.2.0"),
    session_activity(BIG_ID + 1, 1_700_000_001.5, "s-1"),
    program_run(BIG_ID + 2, 1_700_000_002.0, "s-1", 10, 0, 2**63 - 1, True, None),
    program_run(BIG_ID + 3, 1_700_000_002.25, "s-1", None, 7, None, None, "SN 'x'\n"),
    feature_use(BIG_ID + 4, 1_700_000_003.0, "s-1", "save", '{"a": [1, "\\u00e9"]}'),
    page_visit(BIG_ID + 5, 1_700_000_004.0, "/ide", None, None, None, None),
    session_end(BIG_ID + 6, 1_700_000_005.999, "s-1"),
]


def _runs(count: int, first: int = 1) -> list[Event]:
    return [
        program_run(BIG_ID + n, 1_700_000_000.0 + n, "s", n, 1, n, True, None)
        for n in range(first, first + count)
    ]


def test_payload_version_1_matches_the_event_layout() -> None:
    """The frozen spool format still names every field of every event kind."""
    assert _V1_FIELDS == FIELDS


async def _read_all(spool: Spool) -> list[Event]:
    events: list[Event] = []
    while (batch := await spool.read(100)) is not None:
        events += batch.events
        await spool.ack(batch)
    return events


async def test_every_event_kind_survives_a_reopen_unchanged(tmp_path: Path) -> None:
    """Events read back by a new Spool on the same folder equal those appended."""
    first = Spool(tmp_path, 1 << 20)
    await first.open()
    assert first.append(EVERY_KIND) == len(EVERY_KIND)
    await first.sync()
    await first.close()

    second = Spool(tmp_path, 1 << 20)
    await second.open()
    assert second.disk_bytes > 0

    replay = await second.read(100)
    assert replay is not None
    assert replay.inherited is True
    assert replay.events == EVERY_KIND
    assert [type(e) for e in replay.events] == [type(e) for e in EVERY_KIND]

    await second.ack(replay)
    assert (second.disk_bytes, second.pending, second.corrupt) == (0, False, 0)
    assert list(tmp_path.glob("*.spool")) == []
    await second.close()


async def test_an_unacknowledged_batch_is_read_again(tmp_path: Path) -> None:
    """Until acknowledged, a batch stays first: a replay cut short repeats it."""
    spool = Spool(tmp_path, 1 << 20)
    await spool.open()
    spool.append(_runs(5))

    first = await spool.read(3)
    again = await spool.read(3)
    assert first is not None and again is not None
    assert first.events == again.events == _runs(3)
    assert first.inherited is False

    await spool.ack(first)
    rest = await spool.read(10)
    assert rest is not None and rest.last
    assert rest.events == _runs(2, first=4)
    await spool.close()


async def test_a_flipped_byte_skips_one_record_and_counts_it(tmp_path: Path) -> None:
    """A record whose bytes changed fails its CRC: skipped, counted, rest kept."""
    spool = Spool(tmp_path, 1 << 20)
    await spool.open()
    spool.append(_runs(10))
    await spool.close()

    (segment,) = tmp_path.glob("*.spool")
    data = bytearray(segment.read_bytes())
    record = len(encode(_runs(1)[0]))
    data[4 * record + 20] ^= 0x01  # inside the fifth record's payload
    segment.write_bytes(bytes(data))

    reopened = Spool(tmp_path, 1 << 20)
    await reopened.open()
    events = await _read_all(reopened)
    assert reopened.corrupt == 1
    assert [e[EVENT_ID] - BIG_ID for e in events] == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    await reopened.close()


async def test_a_truncated_tail_and_garbage_are_skipped(tmp_path: Path) -> None:
    """A crash mid-write (a cut record) and junk between records never raise."""
    spool = Spool(tmp_path, 1 << 20)
    await spool.open()
    spool.append(_runs(3))
    await spool.close()

    (segment,) = tmp_path.glob("*.spool")
    data = segment.read_bytes()
    record = len(encode(_runs(1)[0]))
    tail = encode(_runs(1, first=4)[0])[:-7]
    segment.write_bytes(data[:record] + b"\x00junk\xff\x01" + data[record:] + tail)

    reopened = Spool(tmp_path, 1 << 20)
    await reopened.open()
    events = await _read_all(reopened)
    assert reopened.corrupt == 2
    assert [e[EVENT_ID] - BIG_ID for e in events] == [1, 2, 3]
    await reopened.close()


async def test_an_unknown_payload_version_is_skipped_and_counted(
    tmp_path: Path,
) -> None:
    """A record from a newer format, intact but not understood, is skipped."""
    payload = json.dumps([99, "P", 1, 2.0]).encode()
    foreign = struct.pack(">2sII", b"\xff\x01", len(payload), zlib.crc32(payload))
    (tmp_path / "000000000001.spool").write_bytes(
        encode(_runs(1)[0]) + foreign + payload + encode(_runs(1, first=2)[0])
    )

    spool = Spool(tmp_path, 1 << 20)
    await spool.open()
    events = await _read_all(spool)
    assert spool.corrupt == 1
    assert [e[EVENT_ID] - BIG_ID for e in events] == [1, 2]
    await spool.close()


async def test_appends_stop_at_max_bytes(tmp_path: Path) -> None:
    """The spool never holds more than max_bytes; append says how many fit."""
    ten = sum(len(encode(event)) for event in _runs(10))
    spool = Spool(tmp_path, ten + 5)
    await spool.open()

    assert spool.append(_runs(7)) == 7
    assert spool.append(_runs(7, first=8)) == 3
    assert spool.append(_runs(1, first=15)) == 0
    assert spool.disk_bytes == ten
    assert spool.spooled == 10
    await spool.close()


async def test_segments_roll_over_and_replay_in_order(tmp_path: Path) -> None:
    """Several segment files replay oldest first and are deleted once done."""
    record = len(encode(_runs(1)[0]))
    spool = Spool(tmp_path, 1 << 20, segment_bytes=record * 4)
    await spool.open()
    for first in range(1, 40, 3):
        spool.append(_runs(3, first=first))
    assert len(list(tmp_path.glob("*.spool"))) > 5

    events = await _read_all(spool)
    assert [e[EVENT_ID] - BIG_ID for e in events] == list(range(1, 40))
    assert list(tmp_path.glob("*.spool")) == []
    await spool.close()


async def test_a_second_spool_on_the_same_folder_is_refused(tmp_path: Path) -> None:
    """Two trackers never share a folder: the second one gets SpoolError."""
    first = Spool(tmp_path, 1 << 20)
    await first.open()

    with pytest.raises(SpoolError, match="in use"):
        await Spool(tmp_path, 1 << 20).open()

    await first.close()
    second = Spool(tmp_path, 1 << 20)
    await second.open()
    assert second.is_open
    await second.close()
