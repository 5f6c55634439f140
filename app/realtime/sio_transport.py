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
import time
import types
import weakref
from typing import Any

import socketio
from aiohttp import WSMsgType, web
from engineio import exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket

from app.realtime.envelope import binary_frame, pong_frame, text_frame
from app.realtime.raw import FrameSink, Outbox
from app.realtime.raw_socket import Detached, RawSocket, take_over

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

    def write_packet(self, pkt: eio_packet.Packet) -> None:
        encoded = pkt.encode()
        self.queue_frame(binary_frame(encoded) if isinstance(encoded, bytes)
                         else text_frame(encoded.encode()))

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
    if isinstance(direct, LeanSocket):  # no engine.io writer at all: everything is direct
        if await socket.check_ping_timeout():
            direct.write_packet(pkt)
        return
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
    lean: set[LeanSocket] = set()
    outbox: Outbox | None = None
    queue_bound = 4096
    write_cap = 4 << 20

    async def __call__(self, environ: dict[str, Any]) -> web.StreamResponse:
        request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size,
                                           compress=self.compress)
        await self._sock.prepare(request)
        socket = getattr(self.handler, "__self__", None)
        if socket is not None and not self.compress and not socket.connected:
            sock = take_over(request, self._sock)  # a direct WebSocket: no upgrade to watch
            if sock is None:
                return self._sock
            environ.pop("aiohttp.request", None)
            LeanSocket(socket, sock, self.outbox or Outbox(), self.queue_bound, self.write_cap,
                       self.lean).start()
            return Detached()
        self.environ = environ
        self.open.add(self)
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
                     {"compress": compress, "open": weakref.WeakSet(), "lean": set(),
                      "outbox": Outbox(),
                      "queue_bound": max(256, cap // 1024), "write_cap": cap})
    sio.eio._async = {**sio.eio._async, "websocket": transport}
    Pinger(sio.eio).install()
    return transport


class Pinger:
    """engine.io's heartbeat PINGs for every socket of one server, from ONE task.

    engine.io keeps a task per socket asleep for the ping interval (`_send_ping`), about
    1.5 KB per idle connection. Here that schedule is a dict entry, and one task sends
    the PINGs that are due: straight to a lean socket's transport, through engine.io's
    queue otherwise (a polling request or engine.io's writer picks them up). Timeouts stay
    engine.io's (`check_ping_timeout`, its service task)."""

    def __init__(self, eio: Any) -> None:
        self.eio = eio
        self.due: dict[AsyncSocket, float] = {}
        self.task: asyncio.Task[None] | None = None
        self._start_background_task = eio.start_background_task

    def install(self) -> None:
        self.eio.start_background_task = self._background_task

    def _background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(target, "__func__", None) is AsyncSocket._send_ping:
            self.schedule(target.__self__)
            return None
        return self._start_background_task(target, *args, **kwargs)

    def schedule(self, socket: AsyncSocket) -> None:
        self.due[socket] = asyncio.get_running_loop().time() + self.eio.ping_interval
        if self.task is None:
            self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = max(0.05, min(self.eio.ping_interval, self.eio.ping_timeout) / 4)
        try:
            while self.due:
                await asyncio.sleep(tick)
                now = loop.time()
                for socket, at in list(self.due.items()):
                    if socket.closing or socket.closed:
                        del self.due[socket]
                    elif at <= now:
                        del self.due[socket]
                        self._ping(socket)
        finally:
            self.task = None

    @staticmethod
    def _ping(socket: AsyncSocket) -> None:
        socket.last_ping = time.time()
        pkt = eio_packet.Packet(eio_packet.PING)
        direct = getattr(socket, DIRECT, None)
        if isinstance(direct, LeanSocket):
            direct.write_packet(pkt)
        else:
            socket.queue.put_nowait(pkt)


async def close_all(transport: type[TrackedWebSocket], grace: float) -> None:
    sockets: list[Any] = [*transport.open, *transport.lean]
    if sockets:
        await asyncio.wait_for(
            asyncio.gather(*(s.going_away() for s in sockets), return_exceptions=True), grace)


class LeanSocket(DirectWriter):
    """A Socket.IO connection that opened on WebSocket, run without engine.io's tasks.

    engine.io runs a WebSocket with a reader loop in the request's handler, a writer task
    and a task per read. Here the transport belongs to a `RawSocket` (as raw sockets do):
    every packet is written directly, frames are read by a task that exists only while
    frames are waiting, and each is handed to engine.io's `receive` in order. Closing the
    engine.io socket (any side, any reason) closes the transport."""

    __slots__ = ("registry", "sock", "socket")

    def __init__(self, socket: AsyncSocket, sock: RawSocket, outbox: Outbox, queue_bound: int,
                 write_cap: int, registry: set[LeanSocket]) -> None:
        super().__init__(socket.sid, sock.transport, outbox, queue_bound, write_cap)
        self.socket = socket
        self.sock = sock
        self.registry = registry
        self.live = True

    def start(self) -> None:
        socket = self.socket
        socket.connected = True
        socket.upgraded = True
        setattr(socket, DIRECT, self)
        socket.send = types.MethodType(_send, socket)
        socket.close = types.MethodType(_lean_close, socket)
        self.registry.add(self)
        while not socket.queue.empty():  # OPEN (and anything else) queued before we took over
            pkt = socket.queue.get_nowait()
            socket.queue.task_done()
            if pkt is not None:
                self.write_packet(pkt)
        self.sock.serve(self._on_frame, self._on_end, _spawn)

    async def _on_frame(self, msg: Any) -> bool:
        """One frame for engine.io; False when the connection is over."""
        if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
            if len(msg.data) > self.socket.server.max_http_buffer_size:
                return False
            try:
                await self.socket.receive(eio_packet.Packet(encoded_packet=msg.data))
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                return False
            return not self.socket.closed
        if msg.type is WSMsgType.PING:
            self.transport.write(pong_frame(msg.data))
            return True
        if msg.type is WSMsgType.CLOSE:
            self.sock.answer_close(msg.data)
            return False
        return True

    async def _on_end(self, code: int | None, reason: str) -> None:
        """The transport is gone or done: engine.io's socket closes (`disconnect` runs)."""
        if code is not None:
            await self.sock.close(code, "", 1.0)
        socket = self.socket
        await AsyncSocket.close(socket, wait=False, abort=True,
                                reason=socket.server.reason.TRANSPORT_CLOSE)
        self.release()

    def release(self) -> None:
        """Flush what engine.io wrote last (its CLOSE packet) and close the WebSocket."""
        self.sock.stop_reading()
        self.registry.discard(self)
        self.socket.server.sockets.pop(self.socket.sid, None)
        self.send_out()
        if not self.sock.lost and not self.sock.close_sent:
            _spawn(self.sock.close(1000, "", 2.0))

    async def going_away(self) -> None:
        self.sock.stop_reading()
        self.registry.discard(self)
        self.send_out()
        await self.sock.close(1001, "Server shutting down", 2.0)


async def _lean_close(socket: Any, wait: bool = True, abort: bool = False,
                      reason: Any = None) -> None:
    """engine.io's `close` for a lean socket: then the WebSocket closes too."""
    await AsyncSocket.close(socket, wait=False, abort=abort, reason=reason)
    lean = getattr(socket, DIRECT, None)
    if isinstance(lean, LeanSocket):
        lean.release()


def _spawn(coro: Any) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(coro)
    _CUTTING.add(task)
    task.add_done_callback(_CUTTING.discard)
    return task
