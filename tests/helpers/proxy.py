"""A TCP proxy between the tracker and the server, whose faults the tests choose.

The proxy runs its own asyncio loop on its own thread. A test drives it with
plain method calls from any thread, and the proxy keeps forwarding while the
test's loop is busy or blocked in a synchronous query: nothing is shared with
the loop under test, so a fault is never delayed by the code it is aimed at.
asyncio streams, rather than raw threads per socket, give buffering, orderly
shutdown and timers for the slow link without hand-written select loops.

Faults, each made on real TCP sockets:

- ``reset_all()``: every open connection is reset now (RST, SO_LINGER 0).
- ``cut_after(n)``: the connection that carries the ``n``-th byte sent towards
  the server from now on is reset right after that byte; one shot.
- ``lose_reply_after(marker)``: the next client packet containing ``marker``
  (``b"COMMIT"``) reaches the server, the client's side is reset before any
  reply, and the server's side is closed later: the outcome is unknown to the
  client although the server acted on it; one shot.
- ``black_hole()``: bytes are read and thrown away in both directions; new
  connections are accepted and never answered. ``restore()`` resets the
  connections held that way and forwards again.
- ``latency``: seconds added before each chunk is forwarded (a slow link).
- ``refuse()``: new connections are accepted and reset at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_CHUNK = 65_536
_LINGER_ZERO = struct.pack("ii", 1, 0)


class _Link:
    """One client connection and its upstream connection."""

    def __init__(
        self, client: asyncio.StreamWriter, server: asyncio.StreamWriter | None
    ) -> None:
        self.client = client
        self.server = server
        self.dead = False
        self.mute_replies = False


class FaultProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to ``target``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.latency = 0.0
        self.connections = 0
        self.resets = 0
        self.lost_replies = 0
        self.bytes_to_server = 0

        self._black_hole = False
        self._refuse = False
        self._cut_at: int | None = None
        self._reply_marker: bytes | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        self._server = self._call(self._listen())
        self.port: int = self._server.sockets[0].getsockname()[1]

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- controls -------------------------------------------------------------

    def pass_through(self) -> None:
        """Forward everything again; held black-holed connections are reset."""
        self.restore()
        self.latency = 0.0
        self._refuse = False
        self._cut_at = None
        self._reply_marker = None

    def reset_all(self) -> None:
        """Reset every open connection now, both sides, with RST."""
        self._call(self._reset_links(list(self._links)))

    def cut_after(self, nbytes: int) -> None:
        """Reset the connection that carries the next ``nbytes``-th byte to the
        server, right after forwarding it. One shot."""
        self._cut_at = self.bytes_to_server + nbytes

    @property
    def cut_pending(self) -> bool:
        """Whether a ``cut_after`` has not happened yet."""
        return self._cut_at is not None

    def lose_reply_after(self, marker: bytes) -> None:
        """Deliver the next client packet holding ``marker``, then reset the
        client's side before any reply; the server's side closes 1 s later."""
        self._reply_marker = marker

    def black_hole(self) -> None:
        """Stop forwarding in both directions; accept new connections silently."""
        self._black_hole = True

    def restore(self) -> None:
        """End a black hole: reset what it held and forward new connections."""
        if not self._black_hole:
            return
        self._black_hole = False
        self.reset_all()

    def refuse(self, refusing: bool = True) -> None:
        """Reset new connections as soon as they are accepted (or stop doing so)."""
        self._refuse = refusing

    def close(self) -> None:
        """Reset every connection, stop listening and end the proxy's thread."""
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # -- the proxy's loop -----------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(
            timeout=10
        )

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._reset_links(list(self._links))
        for handler in self._handlers:
            handler.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5)
        # Let the transports' scheduled closes run before the loop stops.
        for _ in range(3):
            await asyncio.sleep(0)

    async def _accept(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)

        if self._refuse:
            _reset(client)
            self.resets += 1
            return

        if self._black_hole:
            link = _Link(client, None)
            self._links.add(link)
            try:
                await _discard(client_reader)
            except asyncio.CancelledError:
                pass  # the proxy is closing
            finally:
                self._links.discard(link)
                _reset(client)
            return

        try:
            server_reader, server = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(client)
            return

        link = _Link(client, server)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pump_to_server(client_reader, link, server),
                self._pump_to_client(server_reader, link),
            )
        except asyncio.CancelledError:
            pass  # the proxy is closing
        finally:
            self._links.discard(link)
            for writer in (client, server):
                _reset(writer)

    async def _pump_to_server(
        self, reader: asyncio.StreamReader, link: _Link, server: asyncio.StreamWriter
    ) -> None:
        while not link.dead:
            data = await _read(reader)
            if not data:
                break
            if self._black_hole:
                continue
            await self._delay()

            cut_at = self._cut_at
            if cut_at is not None and self.bytes_to_server + len(data) >= cut_at:
                self._cut_at = None
                head = data[: cut_at - self.bytes_to_server]
                self.bytes_to_server += len(head)
                server.write(head)
                await _drain(server)
                await self._reset_links([link])
                return

            self.bytes_to_server += len(data)
            server.write(data)
            await _drain(server)

            marker = self._reply_marker
            if marker is not None and marker in data:
                self._reply_marker = None
                await self._lose_reply(link)
                return

        # One side left: the other goes too, so that the server never keeps a
        # session (and its locks) for a client that is gone.
        await self._reset_links([link])

    async def _pump_to_client(self, reader: asyncio.StreamReader, link: _Link) -> None:
        while not link.dead:
            data = await _read(reader)
            if not data:
                break
            if self._black_hole or link.mute_replies:
                continue
            await self._delay()
            link.client.write(data)
            await _drain(link.client)

        await self._reset_links([link])

    async def _lose_reply(self, link: _Link) -> None:
        link.mute_replies = True
        _reset(link.client)
        self.lost_replies += 1
        self.resets += 1
        # Give the server time to act on what it received before it sees the
        # connection go; a reset at once could race the statement.
        await asyncio.sleep(1.0)
        link.dead = True
        if link.server is not None:
            link.server.close()

    async def _reset_links(self, links: list[_Link]) -> None:
        for link in links:
            if not link.dead:
                self.resets += 1
            link.dead = True
            _reset(link.client)
            if link.server is not None:
                _reset(link.server)

    async def _delay(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)


async def _read(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.read(_CHUNK)
    except OSError:
        return b""


async def _drain(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        await writer.drain()


async def _discard(reader: asyncio.StreamReader) -> None:
    while await _read(reader):
        pass


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN, as a dropped link or a crashed peer does."""
    if writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    writer.transport.abort()
