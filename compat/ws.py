"""The seed's raw WebSocket protocol: `GET /ws/{room_id}?token=…&user_id=…&user_name=…`.

Accept first, then refuse with the seed's close codes so browsers can read them. One reader
per socket; every write goes through the connection's single write path; cleanup in
`finally`. Fan-out reaches this socket through the room manager (`app.realtime.emitter`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import Any

from aiohttp import WSMsgType, web

from app import errors, metrics
from app.keys import HUB, SERVICES, SETTINGS
from app.realtime import actions, validation
from app.realtime.admission import RATE_LIMITED, Identity, Refusal, admit, identify
from app.realtime.envelope import pong_frame
from app.realtime.hub import Hub
from app.realtime.limits import TokenBucket
from app.realtime.raw import RawConnection
from storage import StorageError

log = logging.getLogger("chatapi.ws")

CLOSE_TIMEOUT_SECONDS = 5.0
UNSUPPORTED_DATA = 1003
GOING_AWAY = 1001
SERVER_ERROR = 1011
PIPELINE_DEPTH = 8  # `message` events of one socket stored concurrently, replies in order


def setup(app: web.Application) -> None:
    app.router.add_get("/ws/{room_id}", handle)
    app.router.add_get("/ws/{room_id}/", handle)


async def handle(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    ws = web.WebSocketResponse(autoping=False, compress=settings.ws_compression,
                               max_msg_size=settings.ws_max_frame_bytes,
                               timeout=CLOSE_TIMEOUT_SECONDS)
    await ws.prepare(request)
    hub = request.app[HUB]
    try:
        conn, identity, last_seq, meta = await _admit(request, ws, hub)
    except Refusal as refusal:
        await _refuse(ws, refusal.code, refusal.reason)
        return ws
    except Exception:
        log.exception("raw WebSocket admission failed")
        await _refuse(ws, SERVER_ERROR, "Server error")
        return ws
    try:
        await hub.attach_raw(conn, identity, last_seq, meta)
        await _read(hub, conn, identity, ws)
    except Exception:
        log.exception("raw WebSocket %s failed", conn.sid)
        await conn.close(SERVER_ERROR, "Server error")
    finally:
        await hub.detach_raw(conn, identity)
    return ws


async def _admit(request: web.Request, ws: web.WebSocketResponse, hub: Hub
                 ) -> tuple[RawConnection, Identity, int | None, dict[str, Any] | None]:
    """The connection, who it is, where it resumes from and its participant meta."""
    if hub.shutting_down:
        raise Refusal(GOING_AWAY, "Server shutting down")
    app, query = request.app, request.query
    settings = app[SETTINGS]
    identity = await identify(hub.storage, settings.admin_key, query.get("token"),
                              query.get("user_id"), query.get("user_name"))
    room, participant = await admit(app[SERVICES], identity, request.match_info["room_id"])
    hub.check_quota(identity)
    try:
        last_seq = validation.last_seq(query.get("last_seq"))
    except errors.ApiError:
        last_seq = None
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("client went away during admission")
    conn = RawConnection(
        "ws_" + secrets.token_urlsafe(12), ws, transport, principal=identity.principal,
        user_id=identity.user_id, user_name=identity.user_name, room_id=room["id"],
        limits=hub.send_limits, outbox=hub.outbox,
        bucket=TokenBucket(settings.ws_events_per_second, settings.ws_events_burst))
    return conn, identity, last_seq, participant.get("meta")


async def _refuse(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    metrics.REJECTED_CONNECTIONS.labels(str(code)).inc()
    try:
        await asyncio.wait_for(ws.close(code=code, message=reason.encode()[:120]),
                               CLOSE_TIMEOUT_SECONDS + 1)
    except (TimeoutError, ConnectionError):
        pass


async def _read(hub: Hub, conn: RawConnection, identity: Identity,
                ws: web.WebSocketResponse) -> None:
    """The one reader of this socket."""
    loop = asyncio.get_running_loop()
    member = actions.Member(identity, conn.room_id, conn.sid)
    inflight: list[asyncio.Task[None]] = []  # this socket's `message` events being stored
    try:
        async for msg in ws:
            conn.last_seen = loop.time()
            if msg.type is WSMsgType.TEXT:
                if not conn.bucket.allow():
                    await _drain(inflight)
                    await _close(conn, RATE_LIMITED, "Rate limit exceeded")
                    return
                await _dispatch(hub, conn, member, msg.data, inflight)
            elif msg.type is WSMsgType.BINARY:
                await _drain(inflight)
                await _close(conn, UNSUPPORTED_DATA, "Unsupported data")
                return
            elif msg.type is WSMsgType.PING:
                conn.transport.write(pong_frame(msg.data))
            elif msg.type is WSMsgType.ERROR:
                code = ws.close_code or SERVER_ERROR
                metrics.REJECTED_CONNECTIONS.labels(str(code)).inc()
                return
    finally:
        await _drain(inflight)


async def _drain(inflight: list[asyncio.Task[None]]) -> None:
    """Wait for this socket's pipelined messages (each waits for the one before it)."""
    if inflight:
        await asyncio.gather(*inflight, return_exceptions=True)
        inflight.clear()


async def _close(conn: RawConnection, code: int, reason: str) -> None:
    metrics.REJECTED_CONNECTIONS.labels(str(code)).inc()
    await conn.close(code, reason)


def _parse(raw: str) -> tuple[str, dict[str, Any]]:
    """`{"type": …, "data": {…}}` or an ApiError with the documented code."""
    try:
        frame = json.loads(raw)
    except (ValueError, RecursionError):
        raise errors.InvalidJson("Frame is not valid JSON") from None
    if not isinstance(frame, dict):
        raise errors.InvalidJson("Frame must be a JSON object")
    event = frame.get("type")
    if not isinstance(event, str) or (event not in HANDLERS and event != "message"):
        raise UnknownType(f"Unknown event type: {str(event)[:64]!r}")
    data = frame.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise errors.ValidationFailed("data must be a JSON object",
                                      errors=[{"field": "data", "message": "Not an object."}])
    return event, data


UnknownType = type("UnknownType", (errors.ApiError,),
                   {"status": 400, "code": "UNKNOWN_TYPE", "default_detail": "Unknown type"})


async def _dispatch(hub: Hub, conn: RawConnection, member: actions.Member, raw: str,
                    inflight: list[asyncio.Task[None]]) -> None:
    data: Any = None
    try:
        event, data = _parse(raw)
        if event == "message":
            await _pipeline(hub, conn, member, data, inflight)
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
                    inflight: list[asyncio.Task[None]]) -> None:
    """Store this message while the reader goes on: a publisher's next messages are stored
    while this one fans out, so their fan-outs share loop iterations and one write per
    subscriber carries several (`raw.Outbox`). Storage keeps their order (one SQLite
    thread, FIFO); each reply waits for the previous one, so acks stay in order too."""
    if len(inflight) >= PIPELINE_DEPTH:
        await _drain(inflight)
    prev = inflight[-1] if inflight else None
    inflight.append(asyncio.ensure_future(_message_in_order(hub, conn, member, data, prev)))


async def _message_in_order(hub: Hub, conn: RawConnection, member: actions.Member, data: Any,
                            prev: asyncio.Task[None] | None) -> None:
    try:
        reply: tuple[str, dict[str, Any]] = (
            "message_ack", actions.ack(await actions.message(hub, member, data)))
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
