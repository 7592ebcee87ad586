"""The disk spool: where events wait while the database cannot take them.

The writer moves events here when the queue runs high (the database is down or
slower than the callers), and at ``stop()`` for what it could not write by the
deadline. It replays them, oldest first, as soon as the database answers, and at
the next start for what an earlier process left. Tracking calls never touch the
spool: only the writer task does, so the callers' path stays free of I/O.

On disk, ``spool_dir`` holds numbered segment files, appended to and never
rewritten, plus a ``lock`` file that keeps a second process out. A segment is
deleted once all its events are written. A record is framed as

    magic (2 bytes: 0xFF, framing version) | payload length (4) | CRC32 (4) | payload

and its payload is a JSON array: the payload format version, a one-letter event
type, then the event's fields. JSON rather than pickle or marshal: it outlives a
Python or library upgrade (fields are matched by name, so events may gain fields
with defaults), it runs no code when read, and a person can read it. It is ASCII
(``ensure_ascii``), so the 0xFF that opens every record never occurs inside one,
which lets a reader find the next record after a damaged one.

Durability: appends are written at once and fsynced in groups, one fsync per
chunk of events moved, so an event in the spool survives a crash of the process
once its group is synced. Events still in the memory queue do not. Replay is
idempotent (every row is keyed by its event id), so a crash in the middle of a
replay, or a batch spooled at stop whose commit may have landed, writes nothing
twice.

A damaged region (a crash mid-write, a flipped bit) is skipped up to the next
intact record and counted in ``corrupt``; reading never raises on bad data.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import struct
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .events import FIELDS, Event

__all__ = ["Spool", "SpoolBatch", "SpoolError"]

logger = logging.getLogger(__name__)

PAYLOAD_VERSION: Final = 1
_MAGIC: Final = b"\xff\x01"
_HEADER: Final = struct.Struct(">2sII")  # magic, payload length, CRC32 of payload
_MAX_PAYLOAD: Final = 1 << 20
_SUFFIX: Final = ".spool"
_SEGMENT_BYTES: Final = 4 * 1024 * 1024

# Payload version 1: each event kind's tag and field names. Frozen: a change
# to an event's fields in events.py needs a new payload version here (the tags
# happen to be the kinds' own values).
_V1_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "S": ("event_id", "at", "session_id", "user_agent", "ip_address"),
    "A": ("event_id", "at", "session_id"),
    "E": ("event_id", "at", "session_id"),
    "P": (
        "event_id",
        "at",
        "session_id",
        "program_lines",
        "execution_time_ms",
        "lines_executed",
        "success",
        "error_message",
    ),
    "F": ("event_id", "at", "session_id", "feature_name", "feature_data"),
    "V": (
        "event_id",
        "at",
        "page_path",
        "referrer",
        "user_agent",
        "ip_address",
        "session_id",
    ),
}


class SpoolError(Exception):
    """The spool folder cannot be used (not writable, or held by another process)."""


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """Events read from the spool, to be acknowledged once written.

    ``inherited`` is True for events an earlier process left; ``last`` is True
    when acknowledging this batch finishes its segment. Until a batch is
    acknowledged, the next ``read`` returns the same events again.
    """

    events: list[Event]
    inherited: bool
    last: bool
    segment: Path
    end: int


@dataclass(slots=True)
class _Segment:
    path: Path
    size: int
    inherited: bool


@dataclass(slots=True)
class _Reading:
    segment: _Segment
    data: bytes
    acked: int = 0


class Spool:
    """Append-only segment files in ``directory``, at most ``max_bytes`` in all.

    Used by one task at a time (the writer). ``append`` is synchronous and
    cheap (encoding and a write to the page cache); everything that may wait on
    the disk (opening, fsync, reading, deleting) is async and runs on a worker
    thread. Counters: ``spooled`` (events appended), ``dropped`` (events it had
    no room for, counted by the writer), ``corrupt`` (damaged records skipped).
    """

    def __init__(
        self, directory: str | Path, max_bytes: int, *, segment_bytes: int | None = None
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.spooled = 0
        self.dropped = 0
        self.corrupt = 0

        self._segment_bytes = segment_bytes or _SEGMENT_BYTES
        self._bytes = 0
        self._sealed: deque[_Segment] = deque()
        self._active: _Segment | None = None
        self._active_fd: int | None = None
        self._reading: _Reading | None = None
        self._next_number = 1
        self._lock_fd: int | None = None
        self._directory_changed = False

    def __repr__(self) -> str:
        return f"<Spool {self.directory} {self._bytes} bytes>"

    @property
    def is_open(self) -> bool:
        """Whether ``open()`` succeeded and ``close()`` was not called since."""
        return self._lock_fd is not None

    @property
    def disk_bytes(self) -> int:
        """Bytes on disk in segments not yet fully replayed."""
        return self._bytes

    @property
    def pending(self) -> bool:
        """Whether there are events to replay."""
        active = self._active
        return bool(self._sealed) or (active is not None and active.size > 0)

    async def open(self) -> None:
        """Create the folder, take its lock and find what an earlier process
        left. Idempotent. Raises SpoolError when the folder cannot be used."""
        if self.is_open:
            return
        await asyncio.to_thread(self._open)

    def append(self, events: Sequence[Event]) -> int:
        """Append events in order, as many as fit; returns how many were stored.

        Written at once, synced by the next ``sync()``. Never waits on the disk
        beyond a write to the page cache. Raises OSError when the write fails
        (then none of ``events`` count as stored).
        """
        if not self.is_open:
            return 0

        room = self.max_bytes - self._bytes
        records = []
        size = 0
        for event in events:
            record = encode(event)
            if size + len(record) > room:
                break
            records.append(record)
            size += len(record)

        if records:
            self._write(b"".join(records))
            self.spooled += len(records)

        return len(records)

    async def sync(self) -> None:
        """fsync what was appended (and the folder, after a new segment)."""
        fd = self._active_fd
        if fd is None and not self._directory_changed:
            return

        copy = os.dup(fd) if fd is not None else None
        folder, self._directory_changed = self._directory_changed, False
        await asyncio.to_thread(self._sync, copy, folder)

    async def read(self, limit: int) -> SpoolBatch | None:
        """Up to ``limit`` events, oldest first, or None when nothing waits.

        The batch may hold no events (its records were damaged); acknowledge it
        all the same.
        """
        reading = self._reading
        if reading is None:
            if not self._sealed and self.pending:
                self._seal()
            if not self._sealed:
                return None
            segment = self._sealed[0]
            data = await asyncio.to_thread(_read_file, segment.path)
            reading = self._reading = _Reading(segment, data)

        events, end, damaged = await asyncio.to_thread(
            decode_records, reading.data, reading.acked, limit
        )
        self.corrupt += damaged
        if damaged:
            logger.warning(
                "skipped %d damaged records in spool segment %s",
                damaged,
                reading.segment.path.name,
            )

        return SpoolBatch(
            events,
            reading.segment.inherited,
            end >= len(reading.data),
            reading.segment.path,
            end,
        )

    async def ack(self, batch: SpoolBatch) -> None:
        """Note that ``batch`` is written; deletes its segment when it was the last."""
        reading = self._reading
        if reading is None or reading.segment.path != batch.segment:
            return

        reading.acked = batch.end
        if not batch.last:
            return

        self._reading = None
        segment = self._sealed.popleft()
        await asyncio.to_thread(_unlink, segment.path)
        self._bytes -= segment.size
        self._directory_changed = True

    async def close(self) -> None:
        """Sync and close the files and release the lock. Idempotent."""
        if not self.is_open:
            return
        await self.sync()
        await asyncio.to_thread(self._close)

    # -- internals ------------------------------------------------------------

    def _open(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise SpoolError(f"cannot use {self.directory}: {error.strerror}") from None

        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock_fd)
            raise SpoolError(f"{self.directory} is in use by another tracker") from None

        for path in sorted(self.directory.glob("*" + _SUFFIX)):
            number = _segment_number(path)
            if number is None:
                continue
            self._next_number = max(self._next_number, number + 1)
            size = path.stat().st_size
            if size == 0:
                path.unlink()
                continue
            self._sealed.append(_Segment(path, size, inherited=True))
            self._bytes += size

        self._lock_fd = lock_fd
        if self._sealed:
            logger.info(
                "found %d bytes of events in the spool at %s; replaying them",
                self._bytes,
                self.directory,
            )

    def _write(self, data: bytes) -> None:
        if self._active is None or self._active_fd is None:
            path = self.directory / f"{self._next_number:012d}{_SUFFIX}"
            self._next_number += 1
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
            self._active_fd = os.open(path, flags, 0o600)
            self._active = _Segment(path, 0, inherited=False)
            self._directory_changed = True

        view = memoryview(data)
        while view:
            written = os.write(self._active_fd, view)
            self._active.size += written
            self._bytes += written
            view = view[written:]

        if self._active.size >= self._segment_bytes:
            self._seal()

    def _seal(self) -> None:
        active, fd = self._active, self._active_fd
        self._active, self._active_fd = None, None
        if fd is not None:
            os.close(fd)
        if active is not None and active.size > 0:
            self._sealed.append(active)

    def _sync(self, fd: int | None, folder: bool) -> None:
        if fd is not None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if folder:
            directory_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(directory_fd)
            finally:
                os.close(directory_fd)

    def _close(self) -> None:
        active = self._active
        self._seal()
        if active is not None and active.size == 0:
            _unlink(active.path)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


def encode(event: Event) -> bytes:
    """One framed record holding ``event``."""
    payload = json.dumps([PAYLOAD_VERSION, *event], separators=(",", ":"))
    body = payload.encode("ascii")

    return _HEADER.pack(_MAGIC, len(body), zlib.crc32(body)) + body


def decode_records(
    data: bytes, offset: int, limit: int
) -> tuple[list[Event], int, int]:
    """Events framed in ``data`` from ``offset``: (events, next offset, damaged).

    Stops after ``limit`` events or at the end. A damaged stretch (bad framing,
    bad CRC) counts once and is skipped to the next intact record; an intact
    record whose payload cannot be understood counts once and is skipped.
    """
    events: list[Event] = []
    damaged = 0
    in_damage = False
    end = len(data)

    while offset < end and len(events) < limit:
        payload = _framed_payload(data, offset)
        if payload is None:
            in_damage = True
            found = data.find(_MAGIC, offset + 1)
            offset = end if found < 0 else found
            continue

        if in_damage:
            damaged += 1
            in_damage = False
        offset += _HEADER.size + len(payload)

        event = decode_payload(payload)
        if event is None:
            damaged += 1
        else:
            events.append(event)

    if in_damage:
        damaged += 1

    return events, offset, damaged


def decode_payload(payload: bytes) -> Event | None:
    """The event in one record's payload, or None when it is not one we know."""
    try:
        fields = json.loads(payload)
    except ValueError:
        return None

    if not isinstance(fields, list) or len(fields) < 2 or fields[0] != PAYLOAD_VERSION:
        return None

    names = _V1_FIELDS.get(fields[1]) if isinstance(fields[1], str) else None
    if names is None:
        return None

    values = fields[2:]
    if len(values) != len(names) or not _plausible(values):
        return None

    # The kind as the interned constant of events.py: sinks compare with `is`.
    kind = next(known for known in FIELDS if known == fields[1])
    return (kind, *values)


def _plausible(values: list[Any]) -> bool:
    event_id, at = values[0], values[1]
    return (
        type(event_id) is int
        and 0 <= event_id < 1 << 128
        and type(at) in (int, float)
        and at >= 0
    )


def _framed_payload(data: bytes, offset: int) -> bytes | None:
    if len(data) - offset < _HEADER.size:
        return None

    magic, length, crc = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    if magic != _MAGIC or length > _MAX_PAYLOAD or start + length > len(data):
        return None

    payload = data[start : start + length]
    return payload if zlib.crc32(payload) == crc else None


def _segment_number(path: Path) -> int | None:
    stem = path.name[: -len(_SUFFIX)]
    return int(stem) if stem.isdigit() else None


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
