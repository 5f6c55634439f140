"""Native Socket.IO (SPEC §5): the AsyncServer at `/socket.io/` and its event handlers.

Every handler answers through its ack: `{status: "ok", data}` or
`{status: "error", error: {code, message}}`. Events to clients come from the hub's emit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from aiohttp import web

from app import errors
from app.clientip import request_ip
from app.config import Settings
from app.ratelimit import RateLimiter
from app.realtime import actions, sio_transport, validation
from app.realtime.admission import (
    RATE_LIMITED,
    Refusal,
    admit,
    charge,
    identify_limited,
    replay_cost,
)
from app.realtime.hub import Hub
from app.realtime.limits import TokenBucket
from storage import StorageError

log = logging.getLogger("chatapi.socketio")

Handler = Callable[[Hub, str, dict[str, Any]], Awaitable[Any]]


_SCALARS = frozenset({str, int, float, bool, type(None)})


class Packet(socketio.packet.Packet):  # type: ignore[misc]
    """python-socketio's packet, encoded the same, with a cheaper check for binary data.

    The stock check makes a call per item of every list: a join's ack lists the room's
    online users, up to thousands of ids per join. Here a list or dict of scalars is
    cleared in one pass without calls; anything else is checked as before."""

    json = validation.PacketJson

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        if isinstance(data, bytes | bytearray):
            return True
        if isinstance(data, dict):
            items: Any = data.values()
        elif isinstance(data, list):
            items = data
        else:
            return False
        if _SCALARS.issuperset(map(type, items)):
            return False
        return any(cls.data_is_binary(item) for item in items if type(item) not in _SCALARS)


def create_server(settings: Settings, manager: socketio.AsyncManager) -> socketio.AsyncServer:
    origins = settings.cors_origin_list
    # engine.io tells clients int(ping_interval) seconds: under 1 s that would be 0, and
    # clients would give up on a healthy connection between two pings
    beat = max(1.0, settings.heartbeat_seconds)
    sio = sio_transport.Server(
        async_mode="aiohttp", client_manager=manager, serializer=Packet,
        cors_allowed_origins="*" if "*" in origins else origins,
        ping_interval=beat, ping_timeout=beat,
        max_http_buffer_size=settings.ws_max_frame_bytes, logger=False, engineio_logger=False,
    )
    sio_transport.install(sio, settings)
    return sio


def ok(data: Any = None) -> dict[str, Any]:
    return {"status": "ok", "data": data}


def fail(code: int | str, message: str) -> dict[str, Any]:
    return {"status": "error", "error": {"code": code, "message": message}}


def register(sio: socketio.AsyncServer, hub: Hub, limiter: RateLimiter) -> None:
    """Wire the connect/disconnect handlers and one handler per client event."""
    translate = sio.eio._async["translate_request"]

    def translate_request(request: web.Request) -> dict[str, Any]:
        environ = translate(request)  # engine.io's says every peer is 127.0.0.1
        environ["REMOTE_ADDR"] = request_ip(request, hub.settings.trusted_proxy_networks)
        return environ

    sio.eio._async = {**sio.eio._async, "translate_request": translate_request}
    hub.limiter = limiter  # type: ignore[attr-defined]

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        await _connect(hub, sid, auth, limiter, environ.get("REMOTE_ADDR"))

    async def disconnect(sid: str, reason: Any = None) -> None:
        await hub.sio_disconnect(sid)

    sio.eio.bucket_for = lambda eio_sid: _bucket(hub, eio_sid)
    async def unknown(event: Any, sid: str, *_: Any) -> dict[str, Any]:
        return await _guarded(hub, _unknown_event(event))(sid, {})

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    for name, handler in HANDLERS.items():
        sio.on(name, _guarded(hub, handler))
    sio.on("*", unknown)  # an event of no handler is still answered, and counted


def _unknown_event(event: Any) -> Handler:
    async def unknown_event(hub: Hub, sid: str, data: dict[str, Any]) -> dict[str, Any]:
        raise errors.UnknownType(f"Unknown event type: {str(event)[:64]!r}")

    return unknown_event


def _bucket(hub: Hub, eio_sid: str) -> TokenBucket:
    """The event limit a socket's control frames count against: its session's, or (before
    CONNECT) one of its own."""
    sid = hub.sio.manager.sid_from_eio_sid(eio_sid, "/")
    session = hub.sio_sessions.get(sid) if sid is not None else None
    if session is not None:
        return session.bucket
    settings = hub.settings
    return TokenBucket(settings.ws_events_per_second, settings.ws_events_burst)


async def _connect(hub: Hub, sid: str, auth: Any, limiter: RateLimiter, ip: str | None
                   ) -> None:
    auth = auth if isinstance(auth, dict) else {}
    settings = hub.settings
    try:
        if hub.shutting_down:
            raise Refusal(1001, "Server shutting down")
        identity = await identify_limited(limiter, settings, hub.storage, ip,
                                          auth.get("token"), auth.get("user_id"),
                                          auth.get("user_name"))
        await hub.sio_connect(sid, identity)
    except Refusal as refusal:
        # socket.io-client reads CONNECT_ERROR `{message, data}` as `err.message`, `err.data`;
        # the error's own keys stay at the top too, for clients that read them there
        error = refusal.as_error()
        exc = socketio.exceptions.ConnectionRefusedError(error["message"], error)
        exc.error_args = {**error, **exc.error_args}
        raise exc from None


def _guarded(hub: Hub, handler: Handler) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Rate limit, shape-check, run, and turn every failure into an error ack."""

    async def event(sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        session = hub.sio_sessions.get(sid)
        if session is None:
            return fail(4001, "Unauthorized")
        if not session.bucket.allow():
            hub.spawn(hub.sio.disconnect(sid))
            return fail(RATE_LIMITED, "Rate limit exceeded")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            return fail("VALIDATION_ERROR", "data must be an object")
        try:
            return ok(await handler(hub, sid, data))
        except Refusal as refusal:
            return fail(refusal.code, refusal.reason)
        except errors.ApiError as exc:
            return fail(exc.code, exc.detail)
        except StorageError:
            log.warning("storage failed for %s", sid, exc_info=True)
            return fail("SERVICE_UNAVAILABLE", "Service temporarily unavailable")
        except Exception:  # a bug: the client still gets its ack
            log.exception("Socket.IO %s failed", handler.__name__)
            return fail("INTERNAL_ERROR", "Internal server error")

    return event


def _member(hub: Hub, sid: str, data: dict[str, Any]) -> actions.Member:
    """The caller's membership in `data.room_id`; it must have joined it first."""
    room_id = validation.room_ref(data)
    session = hub.sio_sessions[sid]
    if room_id not in session.rooms:
        raise errors.NotInRoom("Join the room first")
    return actions.Member(session.identity, room_id, sid)


async def _join(hub: Hub, sid: str, data: dict[str, Any]) -> dict[str, Any]:
    session = hub.sio_sessions[sid]
    room_id = data.get("room_id")
    last_seq = validation.last_seq(data.get("last_seq"))
    admitted = await admit(hub.services, session.identity, room_id)
    await charge(hub.limiter, hub.settings, session.identity,  # type: ignore[attr-defined]
                 replay_cost(hub.settings, admitted.room, last_seq))
    return await hub.sio_join(sid, admitted.room["id"], last_seq, admitted)


async def _leave(hub: Hub, sid: str, data: dict[str, Any]) -> dict[str, Any]:
    room_id = validation.room_ref(data)
    if not await hub.sio_leave(sid, room_id):
        raise errors.NotInRoom()
    return {"room_id": room_id}


async def _typing(hub: Hub, sid: str, data: dict[str, Any]) -> dict[str, Any]:
    member = _member(hub, sid, data)
    typing = await actions.typing(hub, member, data)
    session = hub.sio_sessions[sid]
    (session.typing.add if typing else session.typing.discard)(member.room_id)
    return {"room_id": member.room_id, "is_typing": typing}


async def _online(hub: Hub, sid: str, data: dict[str, Any]) -> dict[str, Any]:
    return await actions.status(hub, _member(hub, sid, data))


async def _message(hub: Hub, sid: str, data: dict[str, Any]) -> dict[str, Any]:
    """python-socketio runs each event in its own task; the tasks start in receive order
    and nothing before this line awaits, so the turn taken here is the event's place in
    its session's receive order (seq order = send order, `app.services.ordering`)."""
    member = _member(hub, sid, data)
    turn = hub.sio_sessions[sid].sends.turn()
    return await actions.message(hub, member, data, turn)


async def _mark_read(hub: Hub, sid: str, data: dict[str, Any]) -> dict[str, Any]:
    """In the session's turn, held until the receipt is out: a pool may answer two raises of
    the mark in either order, and the room must not see the mark go back."""
    member = _member(hub, sid, data)
    turn = hub.sio_sessions[sid].sends.turn()
    try:
        await turn.wait()
        return await actions.mark_read(hub, member, data)
    finally:
        turn.release()


async def _ping(hub: Hub, sid: str, data: dict[str, Any]) -> dict[str, Any]:
    return actions.pong()


HANDLERS: dict[str, Handler] = {
    "join": _join,
    "leave": _leave,
    "typing": _typing,
    "get_online_users": _online,
    "message": _message,
    "mark_read": _mark_read,
    "ping": _ping,
}
