"""Where batches land.

A sink knows SQL, not retries: it writes one batch in one transaction, or raises
one of the two errors below so that the writer can decide what to do next.

- ``TransientError``: the batch may succeed later as it is (the connection was
  lost, the server is restarting, a deadlock, a lock wait timeout, a missing
  table that a migration will create). The writer retries with backoff.
- ``RejectedError``: the server refused a row of the batch for good (a value it
  will never accept). The writer splits the batch to find that row.

A batch whose outcome is unknown (the connection dropped during COMMIT) is simply
written again: every event row has a unique event id and every session counter is
recomputed from the rows, so a repeated batch changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..events import Event

__all__ = ["RejectedError", "Sink", "SinkError", "TransientError"]


class SinkError(Exception):
    """A batch could not be written. The message holds no secrets or row data."""


class TransientError(SinkError):
    """Writing may succeed later; retry the same batch."""


class RejectedError(SinkError):
    """The server refused a value in the batch for good; retrying will not help."""


class Sink(Protocol):
    """The interface the writer uses. Implementations: MySQLSink, SQLiteSink."""

    @property
    def name(self) -> str:
        """A short description without secrets, such as ``mysql://u:***@h:3306/db``."""
        ...

    async def write(self, batch: Sequence[Event]) -> None:
        """Write every event of ``batch`` in one transaction, or none of them.

        Raises TransientError or RejectedError; any other exception is a bug that
        the writer logs and treats as transient.
        """
        ...

    async def ping(self) -> bool:
        """Whether the database answers now. Never raises."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...
