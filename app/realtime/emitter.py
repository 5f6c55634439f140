"""python-socketio's room manager with our local fan-out behind its `emit`.

Rooms, membership and (with Redis) pub/sub stay python-socketio's. Only LOCAL delivery is
replaced: the envelope is encoded once as JSON text, then
- raw WebSocket members get one shared frame, written synchronously to each transport;
- Socket.IO members get one shared, pre-encoded engine.io packet in their send queue.
No task and no JSON encoding per recipient. With `AsyncRedisManager` the mixin sits between
`AsyncPubSubManager` and `AsyncManager`, so publishing stays python-socketio's and every node
runs this fan-out for its own members.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from engineio import packet as eio_packet
from socketio import AsyncManager

from app import metrics
from app.config import Settings
from app.realtime.envelope import dumps, text_frame
from app.realtime.raw import Encoded, FrameSink
from app.realtime.sio_transport import DIRECT
from app.realtime.sio_transport import deliver as sio_deliver

if TYPE_CHECKING:
    from app.realtime.hub import Hub

NAMESPACE = "/"
# Control events: not delivered, but acted on by every node for its own members of `room`
# (published through the manager's pub/sub like any event, so they reach every node).
CLOSE_ROOM = "chatapi:close_room"  # close every member of the room (deleted, deactivated)
REVOKE = "chatapi:revoke"  # close every member: its credential was revoked (credential rooms)
REMOVE_MEMBER = "chatapi:remove_member"  # a user's room: drop its members from `room_id`
CONTROL_EVENTS = frozenset({CLOSE_ROOM, REVOKE, REMOVE_MEMBER})
SKIP_SENDER_EVENTS = frozenset({"typing"})  # never echoed to the acting user's connections

_RAW_DELIVERED = metrics.EVENTS_DELIVERED.labels("websocket")
_SIO_DELIVERED = metrics.EVENTS_DELIVERED.labels("socketio")


class FastLocalEmit(AsyncManager):
    """Mixin: encode once, deliver to raw and Socket.IO members of this node."""

    hub: Hub | None = None

    async def emit(self, event: str, data: Any, namespace: str | None = None,
                   room: Any = None, skip_sid: Any = None, callback: Any = None,
                   to: Any = None, **kwargs: Any) -> None:
        room = to or room
        namespace = namespace or NAMESPACE
        hub = self.hub
        if hub is None or callback is not None or room is None or not isinstance(data, dict):
            return await super().emit(event, data, namespace, room=room, skip_sid=skip_sid,
                                      callback=callback, **kwargs)
        if event in CONTROL_EVENTS:  # even with no member here: the hub remembers it
            hub.on_control(event, list(self.get_participants(namespace, room)), room, data)
            return None
        if namespace not in self.rooms:
            return None
        started = time.perf_counter()
        members = self.get_participants(namespace, room)
        skip = _skip_set(skip_sid)
        raw_count, sio_count = self._fan_out(hub, event, data, members, skip, room)
        if raw_count:
            _RAW_DELIVERED.inc(raw_count)
        if sio_count:
            _SIO_DELIVERED.inc(sio_count)
        metrics.DELIVERY_LATENCY.observe(time.perf_counter() - started)
        return None

    def _fan_out(self, hub: Hub, event: str, data: dict[str, Any],
                 members: Iterable[tuple[str, str]], skip: set[str] | tuple[()], room: Any
                 ) -> tuple[int, int]:
        inner = data.get("data")
        inner = inner if isinstance(inner, dict) else {}
        seq = inner.get("seq") if event == "message" else None
        skip_user = inner.get("user_id") if event in SKIP_SENDER_EVENTS else None
        raw, sio_users, buffers = hub.raw, hub.sio_users, hub.sio_buffers
        sockets = self.server.eio.sockets
        addressed = data.get("room_id") is None  # user-addressed: each raw envelope names its room
        text: str | None = None
        item: Encoded | None = None
        per_room: dict[str, Encoded] = {}
        pkt: eio_packet.Packet | None = None
        frame = b""
        raw_count = sio_count = 0
        pending: list[FrameSink] = []  # sinks this fan-out gives a first frame
        for sid, eio_sid in members:
            if sid in skip:
                continue
            conn = raw.get(eio_sid)
            if conn is not None:
                if skip_user is not None and conn.user_id == skip_user:
                    continue
                raw_count += 1
                if addressed:
                    conn.deliver(_for_room(per_room, event, seq, data, conn.room_id))
                    continue
                if item is None:
                    text = text or dumps(data)
                    item = Encoded(event, seq, text, text_frame(text.encode()))
                if conn.buffer is not None or conn.closing or conn.ws is not None:
                    conn.deliver(item)  # recovering, closing or compressing
                    continue
                sink: FrameSink = conn
                out_frame = item.frame
            else:
                if skip_user is not None and sio_users.get(sid) == skip_user:
                    continue
                socket = sockets.get(eio_sid)
                if socket is None or socket.closed:
                    continue
                if pkt is None:
                    text = text or dumps(data)
                    pkt, frame = _sio_packet(event, text)
                sio_count += 1
                held = buffers.get((sid, room)) if buffers and isinstance(room, str) else None
                if held is not None:
                    held.append((event, seq, pkt))
                    continue
                lean = getattr(socket, DIRECT, None)
                if lean is None:
                    sio_deliver(socket, pkt, frame)  # engine.io's queue: polling, or deflate
                    continue
                sink, out_frame = lean, frame
            # `FrameSink.queue_frame` inlined: this runs once per delivery
            out = sink._out
            if out is None:
                sink._out = out_frame
                pending.append(sink)
            elif type(out) is list:
                out.append(out_frame)
            else:
                sink._out = [out, out_frame]
        hub.outbox.add_all(pending)
        return raw_count, sio_count


class FastManager(FastLocalEmit):
    """In-process manager: one node."""


def _skip_set(skip_sid: Any) -> set[str] | tuple[()]:
    if not skip_sid:
        return ()
    if isinstance(skip_sid, list | tuple | set):
        return {s for s in skip_sid if s}
    return {skip_sid}


def _for_room(cache: dict[str, Encoded], event: str, seq: int | None, data: dict[str, Any],
              room_id: str) -> Encoded:
    item = cache.get(room_id)
    if item is None:
        text = dumps({**data, "room_id": room_id})
        item = cache[room_id] = Encoded(event, seq, text, text_frame(text.encode()))
    return item


def _sio_packet(event: str, envelope_text: str) -> tuple[eio_packet.Packet, bytes]:
    """One engine.io MESSAGE carrying the socket.io EVENT, encoded now and reused by all: as
    a packet for engine.io's queues and as the WebSocket frame engine.io would send for it."""
    pkt = eio_packet.Packet(eio_packet.MESSAGE, "2[" + dumps(event) + "," + envelope_text + "]")
    return pkt, text_frame(pkt.encode().encode())


def create_manager(settings: Settings) -> AsyncManager:
    """The room manager: in-process, or python-socketio's Redis pub/sub when configured."""
    if settings.redis_url:
        from app.realtime.redis_manager import FastRedisManager

        return FastRedisManager(settings.redis_url, channel=f"{settings.redis_prefix}:socketio",
                                max_connections=settings.redis_max_connections)
    return FastManager()
