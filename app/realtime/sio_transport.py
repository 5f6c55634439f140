"""engine.io's aiohttp WebSocket transport, tracked and without permessage-deflate by default.

python-engineio opens `WebSocketResponse()` with aiohttp's defaults (deflate accepted) and
keeps no handle on it. This subclass declines deflate unless compression is configured, and
records every open transport so shutdown can close them with 1001 within the drain time.

It also gives fan-out a direct path (`deliver`): engine.io queues every packet per socket
and a writer task per socket sends them one by one. The first time that writer is seen idle
(its queue empty, waiting on it) nothing of engine.io's is in flight, and the socket goes
"live": from then on room events (the shared, pre-encoded WebSocket frame) and engine.io's
own packets (acks, CONNECT, CLOSE; `_send`) are written straight to the transport, joined
with the other frames of this loop iteration (`raw.Outbox`), in the order they are sent;
only PINGs still take the queue. Polling, upgrading and not-yet-live sockets use the queue
as before.
A queue past its bound, or a transport buffer past the hard cap, means a slow consumer:
its transport is aborted and engine.io's disconnect runs as for any lost client.
"""

from __future__ import annotations

import asyncio
import logging
import types
import weakref
from typing import Any

import socketio
from aiohttp import web
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket

from app.realtime.envelope import text_frame
from app.realtime.raw import FrameSink, Outbox

log = logging.getLogger("chatapi.socketio")

DIRECT = "chatapi_direct"  # attribute of an engine.io socket: its `DirectWriter`


class DirectWriter(FrameSink):
    """The transport of one engine.io WebSocket, for frames written beside its writer task."""

    __slots__ = ("live", "queue_bound", "write_cap")

    def __init__(self, sid: str, transport: asyncio.Transport, outbox: Outbox,
                 queue_bound: int, write_cap: int) -> None:
        super().__init__(sid, transport, outbox)
        self.queue_bound = queue_bound
        self.write_cap = write_cap
        self.live = False  # engine.io's queue and writer bypassed for good (`_go_live`)

    def write(self, frame: bytes) -> None:
        self.queue_frame(frame)

    def send_out(self) -> None:
        if self.write_out() > self.write_cap:
            log.info("cutting slow Socket.IO consumer %s", self.sid)
            self.transport.abort()


def deliver(socket: Any, pkt: eio_packet.Packet, frame: bytes) -> None:
    """One pre-encoded event to one engine.io socket, directly once its writer is bypassed."""
    direct: DirectWriter | None = getattr(socket, DIRECT, None)
    if direct is not None and (direct.live or _go_live(socket, direct)):
        direct.write(frame)
        return
    queue = socket.queue
    queue.put_nowait(pkt)
    if queue.qsize() > (_POLLING_BOUND if direct is None else direct.queue_bound):
        _cut(socket, direct)


def _go_live(socket: Any, direct: DirectWriter) -> bool:
    """Switch this socket to direct writes for good, if nothing of engine.io's is pending.

    An empty queue with a waiting getter means the writer sits in `queue.get()` holding no
    packet; from then on engine.io's own packets go direct too (`_send`) and only PINGs are
    queued, so no later frame can overtake an earlier event, ack or CONNECT."""
    queue = socket.queue
    if queue._queue or not queue._getters or not socket.upgraded or socket.upgrading:
        return False
    direct.live = True
    return True


def deliver_packet(socket: Any, pkt: eio_packet.Packet) -> None:
    """`deliver` for a packet built elsewhere (events held while a join replays)."""
    deliver(socket, pkt, text_frame(pkt.encode().encode()))


async def _send(socket: Any, pkt: eio_packet.Packet) -> None:
    """engine.io's `socket.send` for a WebSocket socket: direct once live, else its queue."""
    direct: DirectWriter | None = getattr(socket, DIRECT, None)
    # PINGs keep going through the queue: they keep engine.io's writer from timing out in
    # `poll()` (which would close the socket), and a ping has no order to keep.
    if (direct is None or pkt.binary or pkt.packet_type == eio_packet.PING
            or not (direct.live or _go_live(socket, direct))):
        await AsyncSocket.send(socket, pkt)
        return
    if await socket.check_ping_timeout():
        direct.write(text_frame(pkt.encode().encode()))


def _cut(socket: Any, direct: DirectWriter | None) -> None:
    if direct is not None:
        log.info("cutting slow Socket.IO consumer %s", direct.sid)
        direct.transport.abort()
    elif not socket.closing:
        _cut_polling(socket)


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
            socket.send = types.MethodType(_send, socket)
        try:
            await self.handler(self)
        finally:
            self.open.discard(self)
            if socket is not None:
                setattr(socket, DIRECT, None)
                socket.__dict__.pop("send", None)
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
