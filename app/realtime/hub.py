"""The hub: one place that knows every local connection, raw or Socket.IO.

It implements `app.events.Realtime` for the domain services, keeps presence (first/last
connection per user per room), runs recovery, typing, the single liveness loop for raw
sockets, and the graceful shutdown. Every event leaves through ONE `sio.emit(...)`, which the
room manager turns into raw frames and Socket.IO packets (`app.realtime.emitter`).

Revocation: every connection is also in the manager room of its credential (`cred:…`) and
of its user (`user:…`). Rotating a key or token secret, deleting a client or removing a
participant is one control event to those rooms; each node acts on it for its own members
synchronously (`on_control`), so no later event reaches them. Token expiry is a heap the
liveness loop checks: no task per connection.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import socketio

from app import metrics
from app.config import Settings
from app.realtime import sio_transport
from app.realtime.admission import (
    ACCESS_DENIED,
    RATE_LIMITED,
    UNAUTHORIZED,
    Admitted,
    Identity,
    Refusal,
)
from app.realtime.emitter import CLOSE_ROOM, NAMESPACE, REMOVE_MEMBER, REVOKE, FastLocalEmit
from app.realtime.envelope import envelope
from app.realtime.limits import TokenBucket
from app.realtime.presence import Presence
from app.realtime.raw import CLOSE_GRACE_SECONDS, Beat, Outbox, RawConnection, SendLimits
from app.realtime.sio_transport import TrackedWebSocket
from app.realtime.typists import Typists
from app.services import Services
from app.services.ordering import SendOrder
from app.timeutil import now_ts

log = logging.getLogger("chatapi.realtime")

RAW = "websocket"
SIO = "socketio"
# How long a node remembers that a credential was revoked, for connections whose credential
# was checked before the revocation but that register after it (admission takes far less).
REVOCATION_MEMORY_SECONDS = 60.0


def user_room(client_id: str, user_id: str) -> str:
    """The manager room holding every connection of one user (notifications)."""
    return f"user:{client_id}:{user_id}"


def credential_room(client_id: str, kind: str) -> str:
    """The manager room holding every connection that authenticated with this client's API
    key (`kind` "key") or with one of its user tokens ("tokens"): revoking one closes them."""
    return f"cred:{client_id}:{kind}"


def credential_kind(identity: Identity) -> str:
    return "tokens" if identity.principal.is_user else "key"


@dataclass
class SioSession:
    identity: Identity
    bucket: TokenBucket
    rooms: set[str] = field(default_factory=set)
    typing: set[str] = field(default_factory=set)
    sends: SendOrder = field(default_factory=SendOrder)  # its `message` events' order


class Hub:
    def __init__(self, settings: Settings, services: Services, sio: socketio.AsyncServer,
                 presence: Presence) -> None:
        self.settings = settings
        self.services = services
        self.storage = services.rooms.storage
        self.sio = sio
        self.manager: FastLocalEmit = sio.manager
        self.manager.hub = self
        self.presence = presence
        self.raw: dict[str, RawConnection] = {}
        self.sio_sessions: dict[str, SioSession] = {}
        self.sio_users: dict[str, str] = {}
        self.sio_buffers: dict[tuple[str, str], list[tuple[str, int | None, Any]]] = {}
        self.per_credential: Counter[str] = Counter()
        self.local_rooms: Counter[str] = Counter()
        self.typists = Typists(presence, self._relay_typing, settings.typing_throttle_seconds,
                               settings.typing_timeout_seconds)
        self.send_limits = SendLimits(settings.send_queue_bytes, 4 * settings.send_queue_bytes,
                                      settings.slow_consumer_seconds)
        self.outbox = Outbox()
        self.shutting_down = False
        self.clock: Callable[[], float] = time.time  # what token expiry is checked against
        self.expiries: list[tuple[float, str]] = []  # heap: (token expiry, sid)
        self.revoked_at: dict[str, float] = {}  # credential room -> loop time of revocation
        self._liveness: asyncio.Task[None] | None = None
        self.pings = Beat(settings.heartbeat_seconds, self._ping_due)  # raw sockets' PINGs
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- Realtime (what the domain services call) -----------------------------------------
    async def publish(self, room_id: str, event_type: str, data: dict[str, Any]) -> None:
        await self.emit(event_type, envelope(event_type, data, room_id), room_id)

    async def notify_users(self, client_id: str, user_ids: list[str], data: dict[str, Any]
                           ) -> tuple[int, int]:
        rooms = [user_room(client_id, u) for u in dict.fromkeys(user_ids)]
        users = connections = 0
        for room in rooms:
            count = await self.presence.count_connections(room)
            users += 1 if count else 0
            connections += count
        await self.emit("notification", envelope("notification", data, None), rooms)
        return users, connections

    async def close_room(self, room_id: str, code: int, reason: str) -> None:
        await self.emit(CLOSE_ROOM, {"code": code, "reason": reason, "room_id": room_id},
                        room_id)

    async def revoke(self, client_id: str, credentials: tuple[str, ...], reason: str) -> None:
        rooms = [credential_room(client_id, kind) for kind in credentials]
        await self.emit(REVOKE, {"code": UNAUTHORIZED, "reason": reason}, rooms)

    async def remove_member(self, client_id: str, room_id: str, user_id: str, reason: str
                            ) -> None:
        data = {"code": ACCESS_DENIED, "reason": reason, "room_id": room_id}
        await self.emit(REMOVE_MEMBER, data, user_room(client_id, user_id))

    async def online_users(self, room_id: str) -> list[str]:
        return await self.presence.online_users(room_id)

    async def count_connections(self, room_id: str) -> int:
        return await self.presence.count_connections(room_id)

    async def emit(self, event: str, data: dict[str, Any], to: Any,
                   skip_sid: str | None = None) -> None:
        """The one broadcast path. Delivery is best effort: a failure is logged, not raised."""
        try:
            await self.sio.emit(event, data, to=to, skip_sid=skip_sid)
        except Exception:
            log.exception("emit of %s to %s failed", event, to)

    # -- membership, shared by both protocols ---------------------------------------------
    def check_quota(self, identity: Identity) -> None:
        limit = self.settings.max_connections_per_credential
        if self.per_credential[identity.principal.rate_key] >= limit:
            raise Refusal(RATE_LIMITED, "Rate limit exceeded: too many connections")

    def count_in(self, identity: Identity, protocol: str) -> None:
        self.per_credential[identity.principal.rate_key] += 1
        metrics.OPEN_CONNECTIONS.labels(protocol).inc()

    def count_out(self, identity: Identity, protocol: str) -> None:
        key = identity.principal.rate_key
        self.per_credential[key] -= 1
        if self.per_credential[key] <= 0:
            del self.per_credential[key]
        metrics.OPEN_CONNECTIONS.labels(protocol).dec()

    async def enter(self, sid: str, eio_sid: str, identity: Identity, room_id: str,
                    meta: dict[str, Any] | None = None) -> None:
        """Put a connection in a room; the user's first connection announces `user_joined`."""
        self.manager.basic_enter_room(sid, NAMESPACE, room_id, eio_sid=eio_sid)
        self._room_count(room_id, +1)
        if await self.presence.join(room_id, identity.user_id, sid, identity.user_name):
            joined = {"user_id": identity.user_id, "user_name": identity.user_name,
                      "joined_at": now_ts(), "meta": meta or {}}
            await self.emit("user_joined", envelope("user_joined", joined, room_id), room_id,
                            skip_sid=sid)

    async def exit(self, sid: str, identity: Identity, room_id: str, typing: bool) -> None:
        """Take a connection out of a room; the user's last connection announces `user_left`."""
        self.manager.basic_leave_room(sid, NAMESPACE, room_id)
        self._room_count(room_id, -1)
        if typing:
            await self.typists.stop(room_id, identity.user_id, identity.user_name)
        if await self.presence.leave(room_id, identity.user_id, sid):
            await self.announce_left(room_id, identity.user_id, identity.user_name)

    async def announce_left(self, room_id: str, user_id: str, user_name: str,
                            typing: bool = False) -> None:
        """`user_left` to the room; shared presence also calls it for users of a dead node,
        with `typing` when such a user was still marked typing (so `is_typing: false` first,
        as when a typist's connection closes here)."""
        if room_id.startswith("user:"):  # a notification pseudo-room has no audience
            return
        if typing:
            await self._relay_typing(room_id, user_id, user_name, False)
        left = {"user_id": user_id, "user_name": user_name, "left_at": now_ts()}
        await self.emit("user_left", envelope("user_left", left, room_id), room_id)

    def enter_credential_room(self, sid: str, eio_sid: str, identity: Identity) -> None:
        """Synchronous, so no revocation can pass between registering and entering; a user
        token's expiry is scheduled here too."""
        room = credential_room(identity.client_id, credential_kind(identity))
        self.manager.basic_enter_room(sid, NAMESPACE, room, eio_sid=eio_sid)
        if identity.expires_at is not None:
            heapq.heappush(self.expiries, (identity.expires_at, sid))

    def credential_revoked(self, identity: Identity) -> bool:
        """Revoked after this connection's credential was checked (while it was admitted)."""
        room = credential_room(identity.client_id, credential_kind(identity))
        revoked = self.revoked_at.get(room)
        return (revoked is not None and identity.checked_at is not None
                and revoked >= identity.checked_at)

    def exit_credential_room(self, sid: str, identity: Identity) -> None:
        room = credential_room(identity.client_id, credential_kind(identity))
        self.manager.basic_leave_room(sid, NAMESPACE, room)

    async def enter_user_room(self, sid: str, eio_sid: str, identity: Identity) -> None:
        room = user_room(identity.client_id, identity.user_id)
        self.manager.basic_enter_room(sid, NAMESPACE, room, eio_sid=eio_sid)
        await self.presence.join(room, identity.user_id, sid, identity.user_name)

    async def exit_user_room(self, sid: str, identity: Identity) -> None:
        room = user_room(identity.client_id, identity.user_id)
        self.manager.basic_leave_room(sid, NAMESPACE, room)
        await self.presence.leave(room, identity.user_id, sid)

    def _room_count(self, room_id: str, delta: int) -> None:
        self.local_rooms[room_id] += delta
        if self.local_rooms[room_id] <= 0:
            del self.local_rooms[room_id]
        metrics.ROOMS_WITH_LISTENERS.set(len(self.local_rooms))

    async def status(self, identity: Identity, room_id: str, conn_id: str, *,
                     room: dict[str, Any] | None = None, upto: int = 0,
                     recovered: bool = False, missed: int = 0) -> dict[str, Any]:
        """`connection_status` data: who is online now, and the room's counters as `room`
        holds them (read now if not given); `upto` is the last seq already replayed."""
        if room is None:
            room = await self.storage.get_room(identity.client_id, room_id) or {}
        return {
            "status": "connected", "user_id": identity.user_id, "room_id": room_id,
            "online_users": await self.presence.online_users(room_id),
            "total_participants": room.get("participant_count", 0),
            "connection_id": conn_id, "last_seq": max(room.get("last_seq", 0), upto),
            "recovered": recovered, "missed": missed,
        }

    async def missed(self, room_id: str, last_seq: int) -> tuple[list[dict[str, Any]], bool]:
        """Messages after `last_seq` (at most the recovery limit) and whether that was all."""
        limit = self.settings.recovery_limit
        items = await self.services.messages.missed(room_id, last_seq, limit + 1)
        return items[:limit], len(items) <= limit

    async def _relay_typing(self, room_id: str, user_id: str, user_name: str, typing: bool
                            ) -> None:
        data = {"user_id": user_id, "user_name": user_name, "is_typing": typing}
        await self.emit("typing", envelope("typing", data, room_id), room_id)

    # -- raw connections --------------------------------------------------------------------
    async def attach_raw(self, conn: RawConnection, identity: Identity, last_seq: int | None,
                         admitted: Admitted) -> None:
        """Register, replay what was missed, say `connection_status`, then go live."""
        conn.buffer = []
        self.raw[conn.sid] = conn
        # the first PING within a beat, spread: a crowd that connected at once is not
        # pinged all at once every beat
        self.pings.add(conn, self.pings.delay * (hash(conn.sid) % 1000 + 1) / 1000)
        self.enter_credential_room(conn.sid, conn.sid, identity)
        if self.credential_revoked(identity):  # attached as usual, so detached as usual
            self._cut_raw(conn, UNAUTHORIZED, "Unauthorized: credential revoked")
        self.count_in(identity, RAW)
        await self.enter_user_room(conn.sid, conn.sid, identity)
        await self.enter(conn.sid, conn.sid, identity, conn.room_id, admitted.meta)
        replayed, complete, upto = [], False, 0
        if last_seq is not None:
            replayed, complete = await self.missed(conn.room_id, last_seq)
            for message in replayed:
                conn.send_event("message", message, conn.room_id)
            upto = replayed[-1]["seq"] if replayed else last_seq
        status = await self.status(identity, conn.room_id, conn.sid, room=admitted.room,
                                   upto=upto, recovered=last_seq is not None and complete,
                                   missed=len(replayed))
        conn.send_event("connection_status", status, conn.room_id)
        conn.flush(upto)

    async def detach_raw(self, conn: RawConnection, identity: Identity) -> None:
        if self.raw.pop(conn.sid, None) is None:
            return
        conn.closing = True
        self.exit_credential_room(conn.sid, identity)
        self.count_out(identity, RAW)
        await self.exit_user_room(conn.sid, identity)
        await self.exit(conn.sid, identity, conn.room_id, conn.typing)

    # -- control events (every node acts on them for its own members) ----------------------
    def on_control(self, event: str, members: list[tuple[str, str]], room: Any,
                   data: dict[str, Any]) -> None:
        """Synchronous: once this returns, no later event of the room reaches these members."""
        code, reason = int(data.get("code", UNAUTHORIZED)), str(data.get("reason", ""))
        if event == CLOSE_ROOM:
            for sid, eio_sid in members:
                self._drop_from_room(sid, eio_sid, str(room), code, reason)
        elif event == REVOKE:
            now = asyncio.get_running_loop().time()
            for credential in room if isinstance(room, list) else [room]:
                self.revoked_at[credential] = now
            for sid, eio_sid in members:
                self._revoke(sid, eio_sid, code, reason)
        elif event == REMOVE_MEMBER:
            self._members_removed(members, str(data.get("room_id")), code, reason)

    def _members_removed(self, members: list[tuple[str, str]], room_id: str, code: int,
                         reason: str) -> None:
        """A user's connections (its user room) lose `room_id`; its other rooms stay."""
        for sid, eio_sid in members:
            conn = self.raw.get(eio_sid)
            if conn is None or conn.room_id == room_id:
                self._drop_from_room(sid, eio_sid, room_id, code, reason)

    def _drop_from_room(self, sid: str, eio_sid: str, room_id: str, code: int, reason: str
                        ) -> None:
        """A raw socket (one room) is closed; a Socket.IO one leaves the room, told why."""
        conn = self.raw.get(eio_sid)
        if conn is not None:
            self._cut_raw(conn, code, reason)
            return
        session = self.sio_sessions.get(sid)
        if session is not None and room_id in session.rooms:
            self.manager.basic_leave_room(sid, NAMESPACE, room_id)  # deaf to it from now
            self.spawn(self._sio_room_closed(sid, room_id, code, reason))

    async def _sio_room_closed(self, sid: str, room_id: str, code: int, reason: str) -> None:
        error = {"code": code, "message": reason, "room_id": room_id}
        await self.sio.emit("error", envelope("error", error, room_id), to=sid)
        await self.sio_leave(sid, room_id)

    def _revoke(self, sid: str, eio_sid: str, code: int, reason: str) -> None:
        """Close a connection whose credential no longer holds."""
        conn = self.raw.get(eio_sid)
        if conn is not None:
            self._cut_raw(conn, code, reason)
            return
        session = self.sio_sessions.pop(sid, None)  # its events are refused from now
        if session is None:
            return
        identity = session.identity
        for room in (*session.rooms, user_room(identity.client_id, identity.user_id),
                     credential_room(identity.client_id, credential_kind(identity))):
            self.manager.basic_leave_room(sid, NAMESPACE, room)  # deaf from now
        self.spawn(self._sio_revoked(sid, session, code, reason))

    async def _sio_revoked(self, sid: str, session: SioSession, code: int, reason: str
                           ) -> None:
        error = envelope("error", Refusal(code, reason).as_error(), None)
        await self.manager.emit("error", error, NAMESPACE, room=sid, ignore_queue=True)
        await self._release_sio(sid, session)
        await self.sio.disconnect(sid)

    @staticmethod
    def _cut_raw(conn: RawConnection, code: int, reason: str) -> None:
        if not conn.closing:
            metrics.REJECTED_CONNECTIONS.labels(str(code)).inc()
            conn.cut(code, reason, grace=CLOSE_GRACE_SECONDS)

    def expire_tokens(self) -> None:
        """Close the connections whose user token has expired; called by the liveness loop."""
        now, heap = self.clock(), self.expiries
        while heap and heap[0][0] <= now:
            _, sid = heapq.heappop(heap)
            self._revoke(sid, sid if sid in self.raw else self._eio_sid(sid), UNAUTHORIZED,
                         "Unauthorized: token expired")
        live = len(self.raw) + len(self.sio_sessions)
        if len(heap) > 2 * live + 1024:  # entries of connections closed before their expiry
            self.expiries = [e for e in heap if e[1] in self.raw or e[1] in self.sio_sessions]
            heapq.heapify(self.expiries)

    def _forget_revocations(self, now: float) -> None:
        if self.revoked_at:
            horizon = now - REVOCATION_MEMORY_SECONDS
            self.revoked_at = {r: t for r, t in self.revoked_at.items() if t > horizon}

    def _eio_sid(self, sid: str) -> str:
        return self.manager.eio_sid_from_sid(sid, NAMESPACE) or ""

    # -- Socket.IO connections ----------------------------------------------------------------
    async def sio_connect(self, sid: str, identity: Identity) -> None:
        if self.credential_revoked(identity):
            raise Refusal(UNAUTHORIZED, "Unauthorized: credential revoked")
        self.check_quota(identity)
        settings = self.settings
        self.sio_sessions[sid] = SioSession(
            identity, TokenBucket(settings.ws_events_per_second, settings.ws_events_burst))
        self.sio_users[sid] = identity.user_id
        self.count_in(identity, SIO)
        eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
        self.enter_credential_room(sid, eio_sid, identity)
        await self.enter_user_room(sid, eio_sid, identity)

    async def sio_join(self, sid: str, room_id: str, last_seq: int | None, admitted: Admitted
                       ) -> dict[str, Any]:
        session = self.sio_sessions.get(sid)
        if session is None:  # disconnected while the join was being admitted
            raise Refusal(4001, "Unauthorized")
        identity = session.identity
        key = (sid, room_id)
        if room_id in session.rooms or key in self.sio_buffers:  # joined, or joining
            return await self.status(identity, room_id, sid)
        self.sio_buffers[key] = []
        try:
            eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
            if self.sio_sessions.get(sid) is not session:  # disconnected meanwhile: no ghost
                raise Refusal(4001, "Unauthorized")
            session.rooms.add(room_id)  # with enter's first step, before any await
            await self.enter(sid, eio_sid, identity, room_id, admitted.meta)
            replayed, complete, upto = [], False, 0
            if last_seq is not None:
                replayed, complete = await self.missed(room_id, last_seq)
                for message in replayed:
                    await self.manager.emit("message", envelope("message", message, room_id),
                                            NAMESPACE, room=sid, ignore_queue=True)
                upto = replayed[-1]["seq"] if replayed else last_seq
            status = await self.status(identity, room_id, sid, room=admitted.room, upto=upto,
                                       recovered=last_seq is not None and complete,
                                       missed=len(replayed))
        except BaseException:
            self.sio_buffers.pop(key, None)
            raise
        # Live events held during the replay go out right after the ack.
        asyncio.get_running_loop().call_soon(self._flush_sio, sid, room_id, upto)
        return status

    def _flush_sio(self, sid: str, room_id: str, upto: int) -> None:
        held = self.sio_buffers.pop((sid, room_id), [])
        socket = self.sio.eio.sockets.get(self.manager.eio_sid_from_sid(sid, NAMESPACE) or "")
        if socket is None or socket.closed:
            return
        for event, seq, pkt in held:
            if event == "message" and seq is not None and seq <= upto:
                continue
            sio_transport.deliver_packet(socket, pkt)  # the fan-out's path: order kept

    async def sio_leave(self, sid: str, room_id: str) -> bool:
        session = self.sio_sessions.get(sid)
        if session is None:
            return False
        return await self._sio_exit(sid, session, room_id)

    async def _sio_exit(self, sid: str, session: SioSession, room_id: str) -> bool:
        if room_id not in session.rooms:
            return False
        session.rooms.discard(room_id)
        self.sio_buffers.pop((sid, room_id), None)
        typing = room_id in session.typing
        session.typing.discard(room_id)
        await self.exit(sid, session.identity, room_id, typing)
        return True

    async def sio_disconnect(self, sid: str) -> None:
        session = self.sio_sessions.pop(sid, None)
        if session is not None:
            await self._release_sio(sid, session)

    async def _release_sio(self, sid: str, session: SioSession) -> None:
        """Everything a Socket.IO session held, given back (its session is already gone)."""
        for room_id in list(session.rooms):
            await self._sio_exit(sid, session, room_id)
        self.exit_credential_room(sid, session.identity)
        await self.exit_user_room(sid, session.identity)
        self.sio_users.pop(sid, None)
        self.count_out(session.identity, SIO)

    # -- liveness and shutdown ------------------------------------------------------------------
    def start(self) -> None:
        if self._liveness is None:
            self._liveness = asyncio.ensure_future(self._liveness_loop())
        if not self.sio.manager_initialized:  # else python-socketio waits for a first client
            self.sio.manager_initialized = True
            self.manager.initialize()

    async def start_presence(self) -> None:
        """A shared presence backend (Redis) beats once, then keeps itself alive."""
        start = getattr(self.presence, "start", None)
        if start is not None:
            await start(self.announce_left)

    async def check(self) -> None:
        """For /readyz: raise unless the shared presence backend (Redis) answers."""
        check = getattr(self.presence, "check", None)
        if check is not None:
            await check()

    async def _liveness_loop(self) -> None:
        """ONE task for every raw socket: cuts slow consumers; and for every socket on a
        user token, closes it once the token has expired. (PINGs: `_ping_due`.)"""
        loop = asyncio.get_running_loop()
        beat = self.settings.heartbeat_seconds
        tick = max(0.05, min(beat, self.settings.slow_consumer_seconds) / 2)
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            try:
                for conn in list(self.raw.values()):
                    conn.check_slow(now)
                self.expire_tokens()
                self._forget_revocations(now)
            except Exception:
                log.exception("liveness pass failed")

    def _ping_due(self, conn: RawConnection, now: float) -> None:
        """A raw socket's heartbeat, within a beat of attaching and then every beat, on
        time (`Beat`: one timer for all): dropped if nothing came from it since the last
        PING, else pinged again. A peer that goes silent is dropped within two beats of
        its last bytes."""
        if conn.closing or self.raw.get(conn.sid) is not conn:
            return  # closed: forgotten
        if conn.buffer is None:  # a socket still replaying is pinged once it is live
            if conn.pinged_at and conn.last_seen < conn.pinged_at:
                log.info("dropping silent connection %s", conn.sid)
                conn.abort()
                return
            conn.ping()
            conn.pinged_at = now
        self.pings.add(conn)

    async def shutdown(self) -> None:
        """Close every raw socket with 1001 and disconnect Socket.IO clients, within the drain."""
        self.shutting_down = True
        if self._liveness is not None:
            self._liveness.cancel()
        self.pings.cancel()
        self.typists.cancel_all()
        grace = max(0.1, min(CLOSE_GRACE_SECONDS, self.settings.drain_seconds / 2))
        closes = [conn.close(1001, "Server shutting down", grace) for conn in self.raw.values()]
        closes += [self._sio_goodbye(sid) for sid in list(self.sio_sessions)]
        if closes:
            await asyncio.wait_for(asyncio.gather(*closes, return_exceptions=True), grace + 1)
        if self._tasks:  # raw sockets' readers announcing their departures
            await asyncio.wait(set(self._tasks), timeout=grace)
        transport = self.sio.eio._async["websocket"]
        if isinstance(transport, type) and issubclass(transport, TrackedWebSocket):
            await sio_transport.close_all(transport, grace + 1)  # engine.io sockets: 1001

    async def _sio_goodbye(self, sid: str) -> None:
        await self.sio.disconnect(sid)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        """Run `coro` in a task the hub keeps (and waits for at shutdown)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def stop(self) -> None:
        self.pings.cancel()
        if self._liveness is not None:
            self._liveness.cancel()
            await asyncio.gather(self._liveness, return_exceptions=True)
            self._liveness = None
        for backend in (self.presence, self.manager):
            close = getattr(backend, "stop", None) or getattr(backend, "close", None)
            if close is not None:
                await close()
