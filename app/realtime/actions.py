"""Client → server events, shared by the raw adapter and the Socket.IO handlers.

Each returns the reply data or raises `ApiError`; the adapters turn that into an event
(raw) or an ack (Socket.IO). Messages and read marks go through the same domain services as
REST, so a WebSocket send behaves exactly like a REST send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.realtime import validation
from app.realtime.admission import Identity
from app.realtime.hub import Hub
from app.services.ordering import Turn
from app.timeutil import now_ts

ACK_FIELDS = ("client_msg_id", "id", "seq", "created_at")


@dataclass(frozen=True)
class Member:
    """One connection's presence in one room."""

    identity: Identity
    room_id: str
    conn_id: str


async def typing(hub: Hub, member: Member, data: dict[str, Any]) -> bool:
    """Relay (throttled) typing to the others in the room; returns the new state."""
    is_typing = validation.is_typing(data)
    identity = member.identity
    await hub.typists.update(member.room_id, identity.user_id, identity.user_name, is_typing)
    return is_typing


async def message(hub: Hub, member: Member, data: dict[str, Any], turn: Turn
                  ) -> dict[str, Any]:
    """Store and broadcast exactly like `POST /rooms/{id}/messages`; returns the message.

    `turn` is this message's place in its connection's receive order; released here on
    every path, so a refused message never holds up the ones after it."""
    try:
        identity = member.identity
        fields = validation.message(data, hub.settings, identity.user_id)
        fields.update(sender_id=identity.user_id, sender_name=identity.user_name)
        stored, _created = await hub.services.messages.send(identity.principal,
                                                            member.room_id, fields, turn)
    finally:
        turn.release()
    return stored


def ack(stored: dict[str, Any]) -> dict[str, Any]:
    return {k: stored.get(k) for k in ACK_FIELDS}


async def mark_read(hub: Hub, member: Member, data: dict[str, Any]) -> dict[str, Any]:
    seq = validation.read_seq(data)
    return await hub.services.messages.mark_read(member.room_id, member.identity.user_id, seq)


async def status(hub: Hub, member: Member) -> dict[str, Any]:
    return await hub.status(member.identity, member.room_id, member.conn_id)


def pong() -> dict[str, Any]:
    return {"server_time": now_ts()}
