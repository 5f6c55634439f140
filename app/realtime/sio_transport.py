"""engine.io's aiohttp WebSocket transport, tracked and without permessage-deflate by default.

python-engineio opens `WebSocketResponse()` with aiohttp's defaults (deflate accepted) and
keeps no handle on it. This subclass declines deflate unless compression is configured, and
records every open transport so shutdown can close them with 1001 within the drain time.

It also gives fan-out a direct path (`deliver`): engine.io queues every packet per socket
and a writer task per socket sends them one by one. When that writer is idle (its queue is
empty and it waits on it), nothing of engine.io's is in flight, so the shared, pre-encoded
WebSocket frame can go straight to the socket's transport, joined with the other frames of
this loop iteration (`raw.Outbox`), and the order with pings and acks stays engine.io's.
Otherwise (polling, upgrading, writer busy) the packet goes through the queue as before.
A queue past its bound, or a transport buffer past the hard cap, means a slow consumer:
its transport is aborted and engine.io's disconnect runs as for any lost client.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import socketio
from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp

from app.realtime.raw import Outbox

log = logging.getLogger("chatapi.socketio")

DIRECT = "chatapi_direct"  # attribute of an engine.io socket: its `DirectWriter`


class DirectWriter:
    """The transport of one engine.io WebSocket, for frames written beside its writer task."""

    __slots__ = ("_out", "outbox", "queue_bound", "sid", "transport", "write_cap")

    def __init__(self, sid: str, transport: asyncio.Transport, outbox: Outbox,
                 queue_bound: int, write_cap: int) -> None:
        self.sid = sid
        self.transport = transport
        self.outbox = outbox
        self.queue_bound = queue_bound
        self.write_cap = write_cap
        self._out: bytes | list[bytes] | None = None

    def write(self, frame: bytes) -> None:
        out = self._out
        if out is None:
            self._out = frame  # the common case, one frame: no list
            self.outbox.add(self)
        elif type(out) is list:
            out.append(frame)
        else:
            self._out = [out, frame]

    def send_out(self) -> None:
        out, self._out = self._out, None
        transport = self.transport
        if out is None or transport.is_closing():
            return
        transport.write(out if type(out) is bytes else b"".join(out))
        if transport.get_write_buffer_size() > self.write_cap:
            log.info("cutting slow Socket.IO consumer %s", self.sid)
            transport.abort()


def deliver(socket: Any, pkt: eio_packet.Packet, frame: bytes) -> None:
    """One pre-encoded event to one engine.io socket, directly when its writer is idle."""
    queue = socket.queue
    direct: DirectWriter | None = getattr(socket, DIRECT, None)
    if direct is None:  # polling (or a compressed WebSocket): engine.io's queue, bounded
        queue.put_nowait(pkt)
        if queue.qsize() > _POLLING_BOUND and not socket.closing:
            _cut_polling(socket)
        return
    # `_getters` non-empty with an empty queue: the writer waits in `queue.get()` and holds
    # no packet, so a frame written now cannot overtake anything engine.io has queued.
    if not queue._queue and queue._getters and socket.upgraded and not socket.upgrading:
        direct.write(frame)
        return
    queue.put_nowait(pkt)
    if queue.qsize() > direct.queue_bound:
        log.info("cutting slow Socket.IO consumer %s", direct.sid)
        direct.transport.abort()


_POLLING_BOUND = 4096  # packets: a client that long-polls this rarely is gone or too slow
_CUTTING: set[asyncio.Task[Any]] = set()


def _cut_polling(socket: Any) -> None:
    log.info("cutting slow Socket.IO consumer %s", socket.sid)
    task = asyncio.ensure_future(socket.close(wait=False, abort=True,
                                              reason=socket.server.reason.TRANSPORT_CLOSE))
    _CUTTING.add(task)
    task.add_done_callback(_CUTTING.discard)


class TrackedWebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    compress = False
    open: weakref.WeakSet[TrackedWebSocket] = weakref.WeakSet()
    outbox: Outbox | None = None
    queue_bound = 4096
    write_cap = 4 << 20

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size,
                                           compress=self.compress)
        await self._sock.prepare(request)
        self.environ = environ
        self.open.add(self)
        socket = getattr(self.handler, "__self__", None)
        if socket is not None and not self.compress and request.transport is not None:
            setattr(socket, DIRECT, DirectWriter(socket.sid, request.transport,
                                                 self.outbox or Outbox(), self.queue_bound,
                                                 self.write_cap))
        try:
            await self.handler(self)
        finally:
            self.open.discard(self)
            if socket is not None:
                setattr(socket, DIRECT, None)
        return self._sock

    async def going_away(self) -> None:
        if self._sock is not None and not self._sock.closed:
            await self._sock.close(code=1001, message=b"Server shutting down")


def install(sio: socketio.AsyncServer, compress: bool, queue_bytes: int
            ) -> type[TrackedWebSocket]:
    """Make this server's engine.io use the tracked transport (one class per server).

    Slow consumers: a transport buffer over 4x `queue_bytes` (raw's hard cap), or an
    engine.io queue over one packet per KiB of that cap, cuts the connection."""
    cap = 4 * queue_bytes
    transport = type("ServerWebSocket", (TrackedWebSocket,),
                     {"compress": compress, "open": weakref.WeakSet(), "outbox": Outbox(),
                      "queue_bound": max(256, cap // 1024), "write_cap": cap})
    sio.eio._async = {**sio.eio._async, "websocket": transport}
    return transport


async def close_all(transport: type[TrackedWebSocket], grace: float) -> None:
    sockets = list(transport.open)
    if sockets:
        await asyncio.wait_for(
            asyncio.gather(*(s.going_away() for s in sockets), return_exceptions=True), grace)
