"""The seed's raw WebSocket protocol: `GET /ws/{room_id}?token=…&user_id=…&user_name=…`.

Accept first, then refuse with the seed's close codes so browsers can read them. After the
handshake the socket leaves aiohttp's request machinery (`raw_socket.take_over`); its frames
are read in order by a task that runs only while frames wait (`RawSocket.serve`), and
`Reader` detaches it from the hub exactly once. Every write goes through the connection's
single write path. Fan-out reaches this socket through the room manager
(`app.realtime.emitter`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from aiohttp import WSMessage, WSMsgType, web

from app import errors, metrics, schemas
from app.clientip import request_ip
from app.config import Settings
from app.keys import HUB, LIMITER, SERVICES, SETTINGS
from app.realtime import actions, validation
from app.realtime.admission import (
    RATE_LIMITED,
    Admitted,
    Identity,
    Refusal,
    admit,
    charge,
    identify_limited,
    replay_cost,
)
from app.realtime.envelope import pong_frame
from app.realtime.hub import Hub
from app.realtime.limits import TokenBucket
from app.realtime.raw import RawConnection
from app.realtime.raw_socket import SERVER_ERROR, Detached, RawSocket, reader_limit, take_over
from app.services.ordering import SendOrder, Turn
from storage import StorageError

log = logging.getLogger("chatapi.ws")

CLOSE_TIMEOUT_SECONDS = 5.0
UNSUPPORTED_DATA = 1003
GOING_AWAY = 1001
PIPELINE_DEPTH = 8  # `message` events of one socket stored concurrently, replies in order


def setup(app: web.Application) -> None:
    app.router.add_get("/ws/{room_id}", handle)
    app.router.add_get("/ws/{room_id}/", handle)


async def handle(request: web.Request) -> web.StreamResponse:
    """Upgrade, hand the connection over (`raw_socket.take_over`), admit, attach, return.

    The handler ends once the socket is attached: from then on the connection lives in its
    protocol's callbacks and a reading task that exists only while frames are waiting."""
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(autoping=False, compress=settings.ws_compression,
                               max_msg_size=reader_limit(settings.ws_max_frame_bytes,
                                                         settings.ws_compression),
                               timeout=CLOSE_TIMEOUT_SECONDS)
    await ws.prepare(request)
    sock = take_over(request, ws)
    if sock is None:
        return ws
    hub = request.app[HUB]
    try:
        conn, identity, last_seq, admitted = await _admit(request, sock, ws, hub)
    except Refusal as refusal:
        await _refuse(sock, refusal.code, refusal.reason)
        return Detached()
    except Exception:
        log.exception("raw WebSocket admission failed")
        await _refuse(sock, SERVER_ERROR, "Server error")
        return Detached()
    try:
        await hub.attach_raw(conn, identity, last_seq, admitted)
    except Exception:
        log.exception("raw WebSocket %s failed", conn.sid)
        conn.cut(SERVER_ERROR, "Server error")
    Reader(hub, conn, identity).start()
    return Detached()


async def _admit(request: web.Request, sock: RawSocket, ws: web.WebSocketResponse, hub: Hub
                 ) -> tuple[RawConnection, Identity, int | None, Admitted]:
    """The connection, who it is, where it resumes from and what admission read."""
    if hub.shutting_down:
        raise Refusal(GOING_AWAY, "Server shutting down")
    app, query = request.app, request.query
    settings = app[SETTINGS]
    identity = await identify_limited(app[LIMITER], settings, hub.storage,
                                      request_ip(request, settings.trusted_proxy_networks),
                                      query.get("token"), query.get("user_id"),
                                      query.get("user_name"))
    admitted = await admit(app[SERVICES], identity, request.match_info["room_id"])
    hub.check_quota(identity)
    try:
        last_seq = validation.last_seq(query.get("last_seq"))
    except errors.ApiError:
        last_seq = None
    await charge(app[LIMITER], settings, identity, replay_cost(settings, admitted.room, last_seq))
    conn = RawConnection(
        "ws_" + secrets.token_urlsafe(12), sock, principal=identity.principal,
        user_id=identity.user_id, user_name=identity.user_name, room_id=admitted.room["id"],
        limits=hub.send_limits, outbox=hub.outbox,
        bucket=TokenBucket(settings.ws_events_per_second, settings.ws_events_burst),
        ws=ws if ws.compress else None)
    return conn, identity, last_seq, admitted


async def _refuse(sock: RawSocket, code: int, reason: str) -> None:
    metrics.REJECTED_CONNECTIONS.labels(str(code)).inc()
    await sock.close(code, reason[:120], CLOSE_TIMEOUT_SECONDS)


class Reader:
    """What an attached socket's frames do (`RawSocket.serve` reads them in order), and its
    detachment from the hub, exactly once, when the session ends."""

    __slots__ = ("conn", "hub", "identity", "member", "sends")

    def __init__(self, hub: Hub, conn: RawConnection, identity: Identity) -> None:
        self.hub = hub
        self.conn = conn
        self.identity = identity
        self.member = actions.Member(identity, conn.room_id, conn.sid)
        self.sends = SendOrder()

    def start(self) -> None:
        self.conn.sock.serve(self._on_frame, self._on_end, self.hub.spawn)

    async def _on_frame(self, msg: WSMessage) -> bool:
        """One frame; False when the session is over."""
        conn = self.conn
        if conn.closing:  # the server closed it (revoked, room gone): later frames are void
            return False
        if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.PING:
            # a PING is an event too: within the event limit, its PONG behind the send bound
            if not conn.bucket.allow():
                await self._close(RATE_LIMITED, "Rate limit exceeded")
                return False
            if msg.type is WSMsgType.PING:
                if not conn.closing:
                    conn.queue_frame(pong_frame(msg.data))
            else:
                await _dispatch(self.hub, conn, self.member, msg.data, self.sends)
        elif msg.type is WSMsgType.CLOSE:
            conn.closing = True
            conn.sock.answer_close(msg.data)
            return False
        elif msg.type is WSMsgType.BINARY:
            await self._close(UNSUPPORTED_DATA, "Unsupported data")
            return False
        return True

    async def _close(self, code: int, reason: str) -> None:
        await _drain(self.conn.inflight)
        metrics.REJECTED_CONNECTIONS.labels(str(code)).inc()
        await self.conn.close(code, reason)

    async def _on_end(self, code: int | None, reason: str) -> None:
        if code is not None:
            await self._close(code, reason)
        await _drain(self.conn.inflight)
        await self.hub.detach_raw(self.conn, self.identity)


async def _drain(inflight: list[asyncio.Task[None]]) -> None:
    """Wait for this socket's pipelined messages (each waits for the one before it)."""
    if inflight:
        await asyncio.gather(*inflight, return_exceptions=True)
        inflight.clear()


def _parse(raw: str, settings: Settings) -> tuple[str, dict[str, Any]]:
    """`{"type": …, "data": {…}}` or an ApiError with the documented code."""
    frame = schemas.parse_json(raw, settings, "Frame")
    if not isinstance(frame, dict):
        raise errors.InvalidJson("Frame must be a JSON object")
    event = frame.get("type")
    if not isinstance(event, str) or (event not in HANDLERS and event != "message"):
        raise errors.UnknownType(f"Unknown event type: {str(event)[:64]!r}")
    data = frame.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise errors.ValidationFailed("data must be a JSON object",
                                      errors=[{"field": "data", "message": "Not an object."}])
    return event, data




async def _dispatch(hub: Hub, conn: RawConnection, member: actions.Member, raw: str,
                    sends: SendOrder) -> None:
    inflight = conn.inflight
    data: Any = None
    try:
        event, data = _parse(raw, hub.settings)
        if event == "message":
            await _pipeline(hub, conn, member, data, inflight, sends)
            return
        await _drain(inflight)  # any other event is answered after the messages before it
        await HANDLERS[event](hub, conn, member, data)
    except errors.ApiError as exc:
        await _drain(inflight)
        _error(conn, exc.code, exc.detail, exc.details, _client_msg_id(data))
    except StorageError:
        log.warning("storage failed during %s", conn.sid, exc_info=True)
        _error(conn, "SERVICE_UNAVAILABLE", "Service temporarily unavailable",
               client_msg_id=_client_msg_id(data))


async def _pipeline(hub: Hub, conn: RawConnection, member: actions.Member, data: Any,
                    inflight: list[asyncio.Task[None]], sends: SendOrder) -> None:
    """Store this message while the reader goes on: a publisher's next messages are stored
    while this one fans out, so their fan-outs share loop iterations and one write per
    subscriber carries several (`raw.Outbox`). Their lookups overlap and may come back in
    any order (a storage pool); the turn taken here, in frame order, makes their seqs
    follow the frames (`app.services.ordering`). Each reply waits for the previous one, so
    acks stay in order too."""
    if len(inflight) >= PIPELINE_DEPTH:
        await _drain(inflight)
    prev = inflight[-1] if inflight else None
    turn = sends.turn()
    inflight.append(asyncio.ensure_future(
        _message_in_order(hub, conn, member, data, prev, turn)))


async def _message_in_order(hub: Hub, conn: RawConnection, member: actions.Member, data: Any,
                            prev: asyncio.Task[None] | None, turn: Turn) -> None:
    try:
        reply: tuple[str, dict[str, Any]] = (
            "message_ack", actions.ack(await actions.message(hub, member, data, turn)))
    except errors.ApiError as exc:
        reply = ("error", _error_data(exc.code, exc.detail, exc.details, _client_msg_id(data)))
    except StorageError:
        log.warning("storage failed during %s", conn.sid, exc_info=True)
        reply = ("error", _error_data("SERVICE_UNAVAILABLE", "Service temporarily unavailable",
                                      client_msg_id=_client_msg_id(data)))
    except Exception:
        log.exception("raw WebSocket %s failed", conn.sid)
        conn.cut(SERVER_ERROR, "Server error")
        return
    if prev is not None:
        await asyncio.wait([prev])
    conn.send_event(*reply, conn.room_id)


def _client_msg_id(data: Any) -> str | None:
    """The refused message's id, so an offline queue knows which entry the error is about."""
    value = data.get("client_msg_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _error_data(code: str, message: str, details: dict[str, Any] | None = None,
                client_msg_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"code": code, "message": message}
    if details:
        data["details"] = details
    if client_msg_id is not None:
        data["client_msg_id"] = client_msg_id
    return data


def _error(conn: RawConnection, code: str, message: str,
           details: dict[str, Any] | None = None, client_msg_id: str | None = None) -> None:
    conn.send_event("error", _error_data(code, message, details, client_msg_id), conn.room_id)


async def _on_ping(hub: Hub, conn: RawConnection, member: actions.Member, data: Any) -> None:
    conn.send_event("pong", actions.pong(), conn.room_id)


async def _on_online(hub: Hub, conn: RawConnection, member: actions.Member, data: Any) -> None:
    conn.send_event("connection_status", await actions.status(hub, member), conn.room_id)


async def _on_typing(hub: Hub, conn: RawConnection, member: actions.Member, data: Any) -> None:
    conn.typing = await actions.typing(hub, member, data)


async def _on_mark_read(hub: Hub, conn: RawConnection, member: actions.Member, data: Any
                        ) -> None:
    await actions.mark_read(hub, member, data)


HANDLERS = {
    "ping": _on_ping,
    "get_online_users": _on_online,
    "typing": _on_typing,
    "mark_read": _on_mark_read,
}
