"""engine.io's aiohttp WebSocket transport, tracked, lean, and without permessage-deflate
by default.

python-engineio opens `WebSocketResponse()` with aiohttp's defaults (deflate accepted),
keeps no handle on it, and runs every WebSocket with a reader loop in the request's
handler, a writer task, a task per read and a ping task. Here a WebSocket (opened directly,
or a polling client's upgrade) is run by `LeanSocket` instead: the transport belongs to a
`RawSocket` as raw sockets' do, every packet is written straight to it,
joined with the other frames of this loop iteration (`raw.Outbox`), and one `Pinger` per
server sends every socket's PINGs. Fan-out writes the shared, pre-encoded frame (`deliver`).
Polling clients, and WebSockets when compression is on, keep engine.io's own queue and loop;
every open transport is recorded so shutdown can close them with 1001 within the drain.
A queue past its bound, or a transport buffer past the hard cap, means a slow consumer:
its transport is aborted and engine.io's disconnect runs as for any lost client.
"""

from __future__ import annotations

import asyncio
import logging
import time
import types
import weakref
from collections.abc import Callable
from typing import Any

import engineio
import socketio
from aiohttp import WSMsgType, web
from engineio import exceptions
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket

from app import errors
from app.clientip import Network, request_ip
from app.config import Settings
from app.realtime.admission import RATE_LIMITED
from app.realtime.envelope import binary_frame, pong_frame, text_frame
from app.realtime.limits import TokenBucket
from app.realtime.raw import Beat, FrameSink, Outbox, in_background
from app.realtime.raw_socket import Detached, RawSocket, reader_limit, take_over
from compat.http import error_response

log = logging.getLogger("chatapi.socketio")

DIRECT = "chatapi_direct"  # attribute of an engine.io socket run lean: its `LeanSocket`
PROBE, UPGRADE = "probe", "upgrade"  # the steps of a polling client's upgrade


def deliver(socket: Any, pkt: eio_packet.Packet, frame: bytes) -> None:
    """One pre-encoded event to one engine.io socket: its frame, written directly to a lean
    socket; the packet, queued, for one that engine.io runs."""
    lean: LeanSocket | None = getattr(socket, DIRECT, None)
    if lean is not None:
        lean.queue_frame(frame)
        return
    queue = socket.queue
    queue.put_nowait(pkt)
    if queue.qsize() > _QUEUE_BOUND:
        _cut(socket)


def deliver_packet(socket: Any, pkt: eio_packet.Packet) -> None:
    """`deliver` for a packet built elsewhere (events held while a join replays)."""
    deliver(socket, pkt, text_frame(pkt.encode().encode()))


async def _send(socket: Any, pkt: eio_packet.Packet) -> None:
    """engine.io's `socket.send` for a lean socket: the packet is written directly."""
    if await socket.check_ping_timeout():
        getattr(socket, DIRECT).write_packet(pkt)


# packets: a client that long-polls this rarely, or an engine.io-run WebSocket this far
# behind, is gone or too slow
_QUEUE_BOUND = 4096


def _cut(socket: Any) -> None:
    if socket.closing:
        return
    log.info("cutting slow Socket.IO consumer %s", socket.sid)
    in_background(socket.close(wait=False, abort=True,
                               reason=socket.server.reason.TRANSPORT_CLOSE))


class TrackedWebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    compress = False
    open: weakref.WeakSet[TrackedWebSocket] = weakref.WeakSet()
    lean: set[LeanSocket] = set()
    outbox: Outbox | None = None
    write_cap = 4 << 20

    async def __call__(self, environ: dict[str, Any]) -> web.StreamResponse:
        request = environ["aiohttp.request"]
        limit = reader_limit(self.server.max_http_buffer_size, self.compress)
        self._sock = web.WebSocketResponse(max_msg_size=limit,
                                           compress=self.compress)
        await self._sock.prepare(request)
        socket = getattr(self.handler, "__self__", None)
        if (socket is not None and not self.compress and not socket.upgraded
                and not socket.upgrading):
            sock = take_over(request, self._sock)
            if sock is None:
                return self._sock
            environ.pop("aiohttp.request", None)
            lean = LeanSocket(socket, sock, self.outbox or Outbox(), self.write_cap,
                              self.lean)
            lean.start(upgrade=socket.connected)  # connected: over polling until now
            return Detached()
        self.environ = environ
        self.open.add(self)
        try:
            await self.handler(self)
        finally:
            self.open.discard(self)
        return self._sock

    async def going_away(self) -> None:
        if self._sock is not None and not self._sock.closed:
            await self._sock.close(code=1001, message=b"Server shutting down")


def install(sio: Server, settings: Settings) -> type[TrackedWebSocket]:
    """Make this server's engine.io use the tracked transport (one class per server), with
    the settings' polling bounds.

    Slow consumers: a lean socket's transport buffer over 4x `send_queue_bytes` (raw's hard
    cap), or an engine.io queue over `_QUEUE_BOUND` packets, cuts the connection."""
    cap = 4 * settings.send_queue_bytes
    transport = type("ServerWebSocket", (TrackedWebSocket,),
                     {"compress": settings.ws_compression, "open": weakref.WeakSet(),
                      "lean": set(), "outbox": Outbox(), "write_cap": cap})
    eio = sio.eio
    eio._async = {**eio._async, "websocket": transport}
    eio.per_ip_cap = settings.max_polling_sessions_per_ip
    eio.total_cap = settings.max_polling_sessions
    eio.body_timeout = settings.poll_body_timeout_seconds
    eio.trusted_proxies = settings.trusted_proxy_networks
    Pinger(sio.eio).install()
    return transport


class Pinger:
    """engine.io's heartbeat for every socket of one server, on time, without a task.

    engine.io keeps a task per socket asleep for the ping interval (`_send_ping`), about
    1.5 KB per idle connection, and finds a PONG overdue only when its service task comes
    round (a pass over every socket takes one ping timeout), so a dead peer went up to two
    timeouts after its last PING. Here both are `Beat` schedules, each ONE timer: PINGs
    one interval after the socket opened or its last PONG, written straight to a lean
    socket's transport (through engine.io's queue otherwise: a polling request or
    engine.io's writer picks them up), and a socket whose PING is unanswered one timeout
    later is closed then (engine.io's own checks stay as they are)."""

    def __init__(self, eio: Any) -> None:
        self.eio = eio
        self.pings = Beat(eio.ping_interval, self._ping_due)
        self.timeouts = Beat(eio.ping_timeout, self._pong_due)
        self._start_background_task = eio.start_background_task

    def install(self) -> None:
        self.eio.start_background_task = self._background_task

    def _background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(target, "__func__", None) is AsyncSocket._send_ping:
            self.pings.add(target.__self__)
            return None
        return self._start_background_task(target, *args, **kwargs)

    def _ping_due(self, socket: AsyncSocket, now: float) -> None:
        if socket.closing or socket.closed:
            return
        socket.last_ping = stamp = time.time()
        pkt = eio_packet.Packet(eio_packet.PING)
        lean: LeanSocket | None = getattr(socket, DIRECT, None)
        if lean is not None:
            lean.write_packet(pkt)
        else:
            socket.queue.put_nowait(pkt)
        self.timeouts.add((socket, stamp))

    @staticmethod
    def _pong_due(item: tuple[AsyncSocket, float], now: float) -> None:
        socket, stamp = item
        if socket.last_ping != stamp or socket.closing or socket.closed:
            return  # answered (a PONG clears `last_ping`), or gone
        log.info("%s: no PONG within the ping timeout, closing", socket.sid)
        in_background(socket.close(wait=False, abort=False,
                                   reason=socket.server.reason.PING_TIMEOUT))


async def close_all(transport: type[TrackedWebSocket], grace: float) -> None:
    sockets: list[Any] = [*transport.open, *transport.lean]
    if sockets:
        await asyncio.wait_for(
            asyncio.gather(*(s.going_away() for s in sockets), return_exceptions=True), grace)


class LeanSocket(FrameSink):
    """A Socket.IO WebSocket run without engine.io's tasks.

    engine.io runs a WebSocket with a reader loop in the request's handler, a writer task
    and a task per read. Here the transport belongs to a `RawSocket` (as raw sockets do):
    every packet is written directly, frames are read by a task that exists only while
    frames are waiting, and each is handed to engine.io's `receive` in order. Closing the
    engine.io socket (any side, any reason) closes the transport.

    A polling client's upgrade goes through engine.io's handshake first, here: PING "probe"
    is answered with PONG "probe" and the pending poll is ended; once UPGRADE arrives the
    socket's queued packets move to this WebSocket, which carries everything from then on.
    Until then events take engine.io's queue (polls get NOOPs while upgrading) and nothing
    but the PONG is written here, as the client expects."""

    __slots__ = ("bucket", "registry", "sock", "socket", "upgrade", "write_cap")

    def __init__(self, socket: AsyncSocket, sock: RawSocket, outbox: Outbox, write_cap: int,
                 registry: set[LeanSocket]) -> None:
        super().__init__(socket.sid, sock.transport, outbox)
        self.socket = socket
        self.sock = sock
        self.registry = registry
        self.write_cap = write_cap  # transport buffer bytes past which it is cut
        self.upgrade: str | None = None  # the next upgrade step expected (PROBE, UPGRADE)
        self.bucket: TokenBucket | None = None  # the event limit, found at the first PING

    def write_packet(self, pkt: eio_packet.Packet) -> None:
        encoded = pkt.encode()
        self.queue_frame(binary_frame(encoded) if isinstance(encoded, bytes)
                         else text_frame(encoded.encode()))

    def send_out(self) -> None:
        if self.write_out() > self.write_cap:
            log.info("cutting slow Socket.IO consumer %s", self.sid)
            self.transport.abort()

    def start(self, upgrade: bool = False) -> None:
        """Run this WebSocket: as the socket's transport, or first its upgrade handshake."""
        self.registry.add(self)
        if upgrade:
            self.upgrade = PROBE
            self.socket.upgrading = True
            # Real clients finish in milliseconds. Half engine.io's PONG patience: a PING
            # queued meanwhile (polls get NOOPs) still reaches the client in time.
            asyncio.get_running_loop().call_later(self.socket.server.ping_timeout / 2,
                                                  self._upgrade_overdue)
        else:
            self.socket.connected = True
            self._carry()
        self.sock.serve(self._on_frame, self._on_end, in_background)

    def _carry(self) -> None:
        """From now on this WebSocket carries the socket's packets, queued ones first."""
        socket = self.socket
        socket.upgraded = True
        socket.server.polling_ended(socket.sid)
        setattr(socket, DIRECT, self)
        socket.send = types.MethodType(_send, socket)
        socket.close = types.MethodType(_lean_close, socket)
        while not socket.queue.empty():  # OPEN (and anything else) queued before we took over
            pkt = socket.queue.get_nowait()
            socket.queue.task_done()
            if pkt is not None:
                self.write_packet(pkt)

    def _upgrade_step(self, data: str | bytes) -> bool | None:
        """One frame of the upgrade handshake; False if it is not the one expected, None if
        it is not an engine.io packet at all."""
        socket = self.socket
        if socket.closing or socket.closed:
            return False
        try:
            pkt = eio_packet.Packet(encoded_packet=data)
        except _MALFORMED:
            return None
        if not _known(pkt):
            return None
        if self.upgrade == PROBE and pkt.packet_type == eio_packet.PING and pkt.data == "probe":
            self.write_packet(eio_packet.Packet(eio_packet.PONG, data="probe"))
            socket.queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))  # ends the poll
            self.upgrade = UPGRADE
            return True
        if self.upgrade == UPGRADE and pkt.packet_type == eio_packet.UPGRADE:
            self.upgrade = None
            socket.upgrading = False
            self._carry()
            return True
        return False

    def _upgrade_overdue(self) -> None:
        if self.upgrade is not None and self.sock.reading:
            log.info("%s: WebSocket upgrade not completed in time", self.sid)
            in_background(self._abandon_upgrade(1000))

    async def _abandon_upgrade(self, code: int | None) -> None:
        """The upgrade did not happen: the polling session goes on, this WebSocket closes."""
        self.upgrade = None
        self.socket.upgrading = False
        self._let_go()
        if not self.sock.lost:
            await self.sock.close(code or 1000, "", 1.0)

    async def _on_frame(self, msg: Any) -> bool:
        """One frame for engine.io; False when the connection is over."""
        if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
            if len(msg.data) > self.socket.server.max_http_buffer_size:
                return False
            if self.upgrade is not None:
                step = self._upgrade_step(msg.data)
                if step is None:
                    log.info("%s: malformed engine.io packet during the upgrade", self.sid)
                    await self._abandon_upgrade(PROTOCOL_ERROR)
                    return False
                return step
            return await self._receive(msg.data)
        if msg.type is WSMsgType.PING:
            # answered like any event: within the event limit, behind the send bound
            if not self._allow():
                await self.sock.close(RATE_LIMITED, "Rate limit exceeded", 1.0)
                return False
            self.queue_frame(pong_frame(msg.data))
            return True
        if msg.type is WSMsgType.CLOSE:
            self.sock.answer_close(msg.data)
            return False
        return True

    async def _receive(self, data: str | bytes) -> bool:
        try:
            pkt = eio_packet.Packet(encoded_packet=data)
        except _MALFORMED:
            pkt = None
        if pkt is None or not _known(pkt):
            log.info("%s: malformed engine.io packet", self.sid)
            await self.sock.close(PROTOCOL_ERROR, "Malformed packet", 1.0)
            return False
        try:
            await self.socket.receive(pkt)
        except exceptions.UnknownPacketError:
            pass  # a type the server does not take from clients (PING, OPEN): ignored
        except exceptions.SocketIsClosedError:
            return False
        return not self.socket.closed

    def _allow(self) -> bool:
        bucket = self.bucket
        if bucket is None:
            bucket = self.bucket = self.socket.server.bucket_for(self.socket.sid)
        return bucket.allow()

    def refuse(self, code: int, reason: str) -> None:
        """Close for a protocol violation found outside the reader (Socket.IO's handler)."""
        if self.sock.reading:
            self.sock.stop_reading()
            in_background(self._on_end(code, reason))

    async def _on_end(self, code: int | None, reason: str) -> None:
        """The transport is gone or done: engine.io's socket closes (`disconnect` runs)."""
        if self.upgrade is not None:
            await self._abandon_upgrade(code)
            return
        if code is not None:
            await self.sock.close(code, reason[:120], 1.0)
        socket = self.socket
        await AsyncSocket.close(socket, wait=False, abort=True,
                                reason=socket.server.reason.TRANSPORT_CLOSE)
        self.release()

    def release(self) -> None:
        """Flush what engine.io wrote last (its CLOSE packet) and close the WebSocket."""
        self.socket.server.sockets.pop(self.socket.sid, None)
        self._let_go()
        if not self.sock.lost and not self.sock.close_sent:
            in_background(self.sock.close(1000, "", 2.0))

    async def going_away(self) -> None:
        self._let_go()
        await self.sock.close(1001, "Server shutting down", 2.0)

    def _let_go(self) -> None:
        """Read no more, leave the registry, write what is queued: the close comes next."""
        self.sock.stop_reading()
        self.registry.discard(self)
        self.send_out()


async def _lean_close(socket: Any, wait: bool = True, abort: bool = False,
                      reason: Any = None) -> None:
    """engine.io's `close` for a lean socket: then the WebSocket closes too."""
    await AsyncSocket.close(socket, wait=False, abort=abort, reason=reason)
    lean: LeanSocket | None = getattr(socket, DIRECT, None)
    if lean is not None:
        lean.release()


# -- bounds on what a client can hold open or make the server hold ---------------------------

PROTOCOL_ERROR = 1002  # a malformed engine.io / Socket.IO packet
UNSUPPORTED_DATA = 1003  # binary Socket.IO packets: ChatAPI's events are JSON
_BINARY_PACKETS = ("5", "6")  # Socket.IO BINARY_EVENT, BINARY_ACK
# what decoding a malformed packet raises (RecursionError: JSON nested past the stack)
_MALFORMED = (ValueError, TypeError, IndexError, KeyError, AttributeError, RecursionError)

InvalidSession = type("InvalidSession", (errors.ApiError,), {
    "status": 400, "code": "INVALID_SESSION", "default_detail": "Unknown or closed session"})
InvalidPacket = type("InvalidPacket", (errors.ApiError,), {
    "status": 400, "code": "INVALID_PACKET", "default_detail": "Malformed engine.io payload"})
PollTimeout = type("PollTimeout", (errors.ApiError,), {
    "status": 408, "code": "REQUEST_TIMEOUT", "default_detail": "Request body not received"})


class EngineIO(engineio.AsyncServer):  # type: ignore[misc]
    """engine.io's server with bounds on long-polling.

    The sessions a client can hold open cheaply, those on long-polling and those that have
    not sent a Socket.IO CONNECT yet (no credential checked), are capped per client IP and in
    total (429 / 503); a session stops counting once it is connected and off long-polling,
    or closed. A POST is read here, with a time
    limit and its size checked first: over `max_http_buffer_size` it gets 413 and the
    connection is closed unread (engine.io's own path hangs on the closing session's queue
    and never answers). A malformed payload gets 400 and ends the session; a POST or poll
    for a closed session 400; a second poll while one waits 400 (one pending GET each)."""

    per_ip_cap = 500
    total_cap = 10_000
    body_timeout = 10.0
    trusted_proxies: tuple[Network, ...] = ()
    bucket_for: Callable[[str], TokenBucket] | None = None  # set by `sio.register`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: dict[str, str] = {}  # sid of a counted session: its client IP
        self.held_ips: dict[str, int] = {}
        self.unconnected: set[str] = set()  # counted sids without a Socket.IO CONNECT
        self.on_polling: set[str] = set()  # counted sids still on long-polling
        self.polls: set[str] = set()  # sids with a GET poll waiting

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        sid = request.query.get("sid")
        if sid is None:
            if request.method == "GET":
                refusal = self._over_cap(request)
                if refusal is not None:
                    return refusal
            return await super().handle_request(request)
        if request.method == "POST":
            return await self._post(request, sid)
        if request.method == "GET" and "Upgrade" not in request.headers:
            return await self._poll(request, sid)
        return await super().handle_request(request)

    def _over_cap(self, request: web.Request) -> web.Response | None:
        if len(self.held) >= self.total_cap:
            log.debug("session refused: %d polling or unconnected", len(self.held))
            return self._error(request, errors.ServiceUnavailable("Too many open sessions"))
        if self.held_ips.get(self._ip(request), 0) >= self.per_ip_cap:
            log.debug("session refused for %s: per-IP cap", self._ip(request))
            return self._error(request, errors.RateLimitExceeded(
                "Too many open sessions from this address"))
        return None

    def _ip(self, request: web.Request) -> str:
        return request_ip(request, self.trusted_proxies)

    def session_opened(self, sid: str, environ: dict[str, Any]) -> None:
        request = environ.get("aiohttp.request")
        if request is None:
            return
        ip = self._ip(request)
        self.held[sid] = ip
        self.held_ips[ip] = self.held_ips.get(ip, 0) + 1
        self.unconnected.add(sid)
        if _polling(request):
            self.on_polling.add(sid)

    def connected(self, sid: str) -> None:
        self.unconnected.discard(sid)
        self._release_if_free(sid)

    def polling_ended(self, sid: str) -> None:
        self.on_polling.discard(sid)
        self._release_if_free(sid)

    def session_closed(self, sid: str) -> None:
        self.unconnected.discard(sid)
        self.on_polling.discard(sid)
        self._release_if_free(sid)

    def _release_if_free(self, sid: str) -> None:
        if sid in self.unconnected or sid in self.on_polling:
            return
        ip = self.held.pop(sid, None)
        if ip is not None:
            left = self.held_ips[ip] - 1
            if left:
                self.held_ips[ip] = left
            else:
                del self.held_ips[ip]

    async def _poll(self, request: web.Request, sid: str) -> web.StreamResponse:
        if sid in self.polls:
            return self._error(request, InvalidSession("A poll is already waiting"))
        self.polls.add(sid)
        try:
            return await super().handle_request(request)
        finally:
            self.polls.discard(sid)

    async def _post(self, request: web.Request, sid: str) -> web.StreamResponse:
        socket = self.sockets.get(sid)
        if socket is None or socket.closed or socket.closing:
            return self._error(request, InvalidSession())
        if not socket.connected or socket.upgraded:
            return self._error(request, InvalidSession("Not a polling session"))
        if (request.content_length or 0) > self.max_http_buffer_size:
            return await self._too_large(request, socket)
        try:
            body = await asyncio.wait_for(request.read(), self.body_timeout)
        except TimeoutError:
            return await _closing(request, self._error(request, PollTimeout()))
        except web.HTTPRequestEntityTooLarge:
            return await self._too_large(request, socket)
        if len(body) > self.max_http_buffer_size:
            return await self._too_large(request, socket)
        if not await _receive_payload(socket, body):
            drop(socket, PROTOCOL_ERROR, "Malformed packet")
            return self._error(request, InvalidPacket())
        environ = self._async["translate_request"](request)
        return await self._make_response(self._ok(), environ)

    async def _too_large(self, request: web.Request, socket: AsyncSocket) -> web.Response:
        drop(socket, PROTOCOL_ERROR, "Payload too large")
        return await _closing(request, self._error(request, errors.PayloadTooLarge(
            f"Payload over {self.max_http_buffer_size} bytes")))

    def _error(self, request: web.Request, exc: errors.ApiError) -> web.Response:
        response = error_response(exc)
        environ = self._async["translate_request"](request)
        for name, value in self._cors_headers(environ):
            response.headers[name] = value
        return response


async def _closing(request: web.Request, response: web.Response) -> web.Response:
    """Send `response`, then close the connection at once: the rest of the body is never
    read (aiohttp would otherwise linger up to 10 s reading and discarding it)."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    if request.protocol is not None:
        request.protocol.force_close()
    return response


def _polling(request: web.Request) -> bool:
    return request.query.get("transport", "polling") == "polling"  # engine.io's default


async def _receive_payload(socket: AsyncSocket, body: bytes) -> bool:
    """A polling POST's packets for engine.io; False if the payload is malformed."""
    try:
        packets = eio_payload.Payload(encoded_payload=body.decode("utf-8")).packets
    except (*_MALFORMED, UnicodeDecodeError):
        return False
    for pkt in packets:
        if not _known(pkt):
            return False
        try:
            await socket.receive(pkt)
        except exceptions.UnknownPacketError:
            pass  # a type the server does not take from clients (PING, OPEN): ignored
    return True


def _known(pkt: eio_packet.Packet) -> bool:
    return 0 <= pkt.packet_type < len(eio_packet.packet_names)


def drop(socket: AsyncSocket, code: int, reason: str) -> None:
    """End a session for a protocol violation: a lean WebSocket closes with `code`; a
    polling session is closed (its waiting poll gets CLOSE) and forgotten."""
    lean: LeanSocket | None = getattr(socket, DIRECT, None)
    if lean is not None:
        lean.refuse(code, reason)
    elif not socket.closed and not socket.closing:
        socket.server.sockets.pop(socket.sid, None)
        in_background(socket.close(wait=False, reason=socket.server.reason.TRANSPORT_ERROR))


class Server(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server on `EngineIO`, refusing what ChatAPI never uses and what no
    client may hold: sessions that never send CONNECT are closed after one heartbeat (ping
    interval + timeout); binary packets (attachments are never buffered) close with 1003;
    a packet that does not parse closes with 1002, logged at INFO, not as a traceback."""

    def _engineio_server_class(self) -> type[EngineIO]:
        return EngineIO

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        await super()._handle_eio_connect(eio_sid, environ)
        self.eio.session_opened(eio_sid, environ)
        beat = self.eio.ping_interval + self.eio.ping_timeout
        asyncio.get_running_loop().call_later(beat, self._connect_overdue, eio_sid)

    async def _handle_connect(self, eio_sid: str, namespace: str, data: Any) -> None:
        await super()._handle_connect(eio_sid, namespace, data)
        if self.manager.sid_from_eio_sid(eio_sid, namespace or "/") is not None:
            self.eio.connected(eio_sid)

    async def _handle_event(self, eio_sid: str, namespace: str, id: Any, data: Any) -> None:
        if not data or type(data[0]) is not str:  # an event's name comes first
            self._refuse(eio_sid, PROTOCOL_ERROR, "Malformed packet")
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    def _connect_overdue(self, eio_sid: str) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and self.manager.sid_from_eio_sid(eio_sid, "/") is None:
            log.debug("%s: no Socket.IO CONNECT within one heartbeat", eio_sid)
            drop(socket, 1008, "No CONNECT")

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if type(data) is bytes or (type(data) is str and data[:1] in _BINARY_PACKETS):
            self._refuse(eio_sid, UNSUPPORTED_DATA, "Binary packets are not supported")
            return
        if type(data) is not str:  # engine.io decoded the text as JSON: not Socket.IO
            log.info("%s: malformed Socket.IO packet (not a string)", eio_sid)
            self._refuse(eio_sid, PROTOCOL_ERROR, "Malformed packet")
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except _MALFORMED as exc:
            log.info("%s: malformed Socket.IO packet (%s)", eio_sid, exc)
            self._refuse(eio_sid, PROTOCOL_ERROR, "Malformed packet")

    async def _handle_disconnect(self, eio_sid: str, namespace: str, reason: Any = None
                                 ) -> None:
        await super()._handle_disconnect(eio_sid, namespace, reason)
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and not socket.closing and not socket.closed:
            # a namespace left, the session kept: it may hold on for one heartbeat more
            beat = self.eio.ping_interval + self.eio.ping_timeout
            asyncio.get_running_loop().call_later(beat, self._connect_overdue, eio_sid)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self.eio.session_closed(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)

    def _refuse(self, eio_sid: str, code: int, reason: str) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None:
            drop(socket, code, reason)
