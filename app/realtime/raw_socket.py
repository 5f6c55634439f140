"""A raw WebSocket's transport after the handshake, without aiohttp's request machinery.

aiohttp answers the upgrade (`WebSocketResponse.prepare`), then `take_over` moves the
transport to a `RawSocket`: the request, its handler task, the request parser and aiohttp's
per-connection handler are released, which is most of an idle connection's memory. Frames
are still parsed by aiohttp's own WebSocket reader (C) into its message queue, picked up
from where aiohttp left them, so nothing that arrived during the handshake is lost. Reading
is callback-driven (`serve`): a task runs only while frames are waiting or the connection
has ended, so an idle connection holds no task.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import EofStream, WebSocketError, WSMessage, WSMsgType, web

from app.realtime.envelope import close_frame

log = logging.getLogger("chatapi.ws")

SERVER_ERROR = 1011
PROTOCOL_ERROR = 1002
MAX_CLOSE_CODE = 4999  # RFC 6455 7.4: codes above are invalid (below 3000 aiohttp checks)

FrameHandler = Callable[[WSMessage], Awaitable[bool]]
EndHandler = Callable[[int | None, str], Awaitable[None]]
Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


def reader_limit(max_frame_bytes: int, compress: bool) -> int:
    """aiohttp's `max_msg_size` that lets through a message of exactly `max_frame_bytes`:
    its reader refuses an uncompressed frame of `max_msg_size` bytes or more, but only a
    decompressed message of more than `max_msg_size`."""
    return max_frame_bytes if compress else max_frame_bytes + 1


class RawSocket(asyncio.Protocol):
    """The protocol of one upgraded connection: frames in, close handshake, nothing else."""

    __slots__ = ("_closed", "_head", "_on_end", "_on_frame", "_reading_paused", "_skip",
                 "_spawn", "_task", "close_sent", "last_seen", "lost", "queue", "reader",
                 "reading", "transport")

    def __init__(self, transport: asyncio.Transport, reader: Any, queue: Any,
                 reading_paused: bool) -> None:
        self.transport = transport
        self.reader = reader  # aiohttp's WebSocketReader, feeding `queue`
        self.queue = queue  # aiohttp's WebSocketDataQueue of parsed messages
        self._reading_paused = reading_paused
        self.reading = False  # between `serve` and the end of the session
        self._task: asyncio.Task[None] | None = None
        self.close_sent = False
        self.lost = False
        self.last_seen = asyncio.get_running_loop().time()
        self._closed: asyncio.Future[None] | None = None  # set once the peer's close arrived
        # frame boundaries, for the mask check: payload bytes of the current frame still to
        # come, and the start of a header split across reads
        self._skip = 0
        self._head = b""

    # -- asyncio.Protocol ------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.last_seen = asyncio.get_running_loop().time()
        if not self._masked(data):
            self.transport.pause_reading()  # nothing after it is read
            self.queue.set_exception(WebSocketError(PROTOCOL_ERROR, "Unmasked frame"))
            self._wake()
            return
        self.reader.feed_data(data)  # a protocol error is set on the queue, read as such
        if self._closed is not None:
            self._look_for_close()
        elif self.queue._buffer or self.queue.is_eof():
            self._wake()

    def _masked(self, data: bytes) -> bool:
        """False if a frame starting in `data` is unmasked (RFC 6455 5.1: the server closes
        with 1002; aiohttp's reader does not check). Only the headers are looked at: one
        step per frame. Tracking starts at take-over, on a frame boundary: clients send no
        frame before the 101."""
        pos, size = self._skip, len(data)
        if self._head:
            data, pos = self._head + data, 0
            size = len(data)
            self._head = b""
        while pos < size:
            left = size - pos
            if left < 2:
                break
            second = data[pos + 1]
            if not second & 0x80:
                return False
            length = second & 0x7F
            if length < 126:
                pos += 6 + length
            elif length == 126:
                if left < 4:
                    break
                pos += 8 + int.from_bytes(data[pos + 2:pos + 4], "big")
            else:
                if left < 10:
                    break
                pos += 14 + int.from_bytes(data[pos + 2:pos + 10], "big")
        else:
            self._skip = pos - size
            return True
        self._head = data[pos:]
        self._skip = 0
        return True

    def eof_received(self) -> bool:
        return False  # half-closed by the peer: close our side too

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self.queue.feed_eof()
        self.peer_closed()
        self._wake()

    def pause_writing(self) -> None:
        pass  # slow consumers are watched through the transport's buffer size

    def resume_writing(self) -> None:
        pass

    # -- what aiohttp's message queue calls for flow control -------------------------------
    def pause_reading(self) -> None:
        self._reading_paused = True
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self._reading_paused = False
        if not self.transport.is_closing():
            self.transport.resume_reading()

    # -- reading ---------------------------------------------------------------------------
    def serve(self, on_frame: FrameHandler, on_end: EndHandler, spawn: Spawn) -> None:
        """Read the frames in order: `on_frame` for each (False ends the session), then
        `on_end` once, with the close code to send when the session ended on a protocol
        error or a failure (None when it ended by itself or the peer is gone)."""
        self._on_frame, self._on_end, self._spawn = on_frame, on_end, spawn
        self.reading = True
        self._wake()  # frames that came during admission, or a connection already gone

    def stop_reading(self) -> None:
        """The session ended elsewhere: later frames are not handed on, `on_end` not run."""
        self.reading = False

    def _wake(self) -> None:
        if self._task is None and self.reading:
            self._task = self._spawn(self._read())

    async def _read(self) -> None:
        queue = self.queue
        try:
            while self.reading and (queue._buffer or queue.is_eof()):
                try:
                    msg = await queue.read()
                except EofStream:
                    await self._end(None, "")
                except WebSocketError as exc:
                    await self._end(exc.code, str(exc)[:120] or "Protocol error")
                else:
                    if not await self._on_frame(msg):
                        await self._end(None, "")
        except Exception:
            log.exception("reading a WebSocket failed")
            await self._end(SERVER_ERROR, "Server error")
        finally:
            self._task = None

    async def _end(self, code: int | None, reason: str) -> None:
        if self.reading:
            self.reading = False
            await self._on_end(None if self.lost else code, reason)

    # -- closing ---------------------------------------------------------------------------
    def _look_for_close(self) -> None:
        """While we wait for the peer's close frame nothing else it sends matters: what it
        sent is dropped at once (the queue stays paused once full, as before)."""
        buffer = self.queue._buffer
        for msg, _size in buffer:
            if msg.type is WSMsgType.CLOSE:
                self.peer_closed()
                break
        else:
            if self.queue.is_eof():
                self.peer_closed()
        buffer.clear()

    def peer_closed(self) -> None:
        """The peer's close frame arrived (or the connection is gone)."""
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def answer_close(self, code: int) -> None:
        """The peer closed first: echo its code (1002 for an invalid one), then close the
        transport."""
        if not self.close_sent and not self.transport.is_closing():
            self.close_sent = True
            if code > MAX_CLOSE_CODE:
                code = PROTOCOL_ERROR
            self.transport.write(close_frame(code if code else 1000, ""))
        self.transport.close()

    async def close(self, code: int, reason: str, grace: float) -> None:
        """Send a close frame, wait (at most `grace`) for the peer's, then close; a peer that
        has not read its backlog by then is aborted."""
        transport = self.transport
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if not self.close_sent and not transport.is_closing():
            self.close_sent = True
            transport.write(close_frame(code, reason))
            if not self.lost:
                self._closed = loop.create_future()
                self._look_for_close()  # it may be here already, behind frames now dropped
                try:
                    await asyncio.wait_for(self._closed, grace)
                except TimeoutError:
                    pass
        if not transport.is_closing():
            transport.close()
        if transport.get_write_buffer_size():
            # the close frame waits behind unread data: the peer has until the deadline
            loop.call_at(max(deadline, loop.time()), _abort_if_stuck, transport)


def _abort_if_stuck(transport: asyncio.Transport) -> None:
    if transport.get_write_buffer_size():
        transport.abort()


class Detached(web.StreamResponse):
    """What the handler returns once the connection is no longer aiohttp's: nothing to send."""

    async def prepare(self, request: web.BaseRequest) -> None:  # type: ignore[override]
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def take_over(request: web.Request, ws: web.WebSocketResponse) -> RawSocket | None:
    """Move a prepared WebSocket's transport from aiohttp to a `RawSocket`.

    Relies on aiohttp internals (3.9-3.14): the request handler's parser slot and transport,
    the response's message queue. `tests/test_ws_lifecycle.py` and the hostile-session table
    exercise every path through here."""
    handler = request.protocol
    transport = request.transport
    queue = ws._reader
    reader = handler._payload_parser
    if transport is None or queue is None or reader is None or transport.is_closing():
        return None  # the client went away during the handshake
    sock = RawSocket(transport, reader, queue, handler._reading_paused)
    queue._protocol = sock
    handler._payload_parser = None  # else releasing the handler would end our queue
    handler.transport = None  # else it would close the transport
    handler._task_handler = None  # else a server with handler_cancellation would cancel us
    transport.set_protocol(sock)
    handler.connection_lost(None)  # release the handler: server bookkeeping, timers, parser
    return sock
