"""Rooms, who may see them, and who is in them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from app import errors
from app.auth import CLIENT_KEY, Principal
from app.events import Realtime
from app.timeutil import now_ts
from storage import RecordNotFound, RoomQuery, Storage

CLOSE_ROOM_NOT_FOUND = 4002
CLOSE_ROOM_ACCESS_DENIED = 4003


def require_client_key(principal: Principal) -> None:
    """Tenant administration (rooms, tokens, notifications) needs the client's API key."""
    principal.require(CLIENT_KEY)


def require_same_user(principal: Principal, user_id: str | None) -> None:
    """A user token acts only as its own user."""
    if principal.is_user and user_id is not None and user_id != principal.user_id:
        raise errors.InsufficientPermissions("A user token can only act as its own user")


@contextmanager
def room_still_exists() -> Iterator[None]:
    """A room deleted between the access check and the write is a 404, not a server error."""
    try:
        yield
    except RecordNotFound:
        raise errors.RoomNotFound() from None


def acting_user_id(principal: Principal, user_id: str | None) -> str:
    """The user an action is for: a user token's own, or the one a client key names."""
    require_same_user(principal, user_id)
    resolved = user_id or principal.user_id
    if not resolved:
        raise errors.ValidationFailed(
            errors=[{"field": "user_id", "message": "Missing data for required field."}])
    return resolved


class RoomService:
    def __init__(self, storage: Storage, realtime: Realtime) -> None:
        self.storage = storage
        self.realtime = realtime

    async def find(self, principal: Principal, room_id: str) -> dict[str, Any]:
        """The room in the caller's tenant, or ROOM_NOT_FOUND (never forbidden: isolation)."""
        room = await self.storage.get_room(principal.client_id, room_id)
        if room is None:
            raise errors.RoomNotFound()
        return room

    async def access(self, principal: Principal, room_id: str) -> dict[str, Any]:
        """The room if the caller may read and write in it, else 404 / ROOM_ACCESS_DENIED."""
        room = await self.find(principal, room_id)
        if not principal.is_user:
            return room
        if principal.rooms is not None and room_id not in principal.rooms:
            raise errors.RoomAccessDenied("This token is limited to other rooms")
        if room["is_private"] and principal.user_id is not None:
            if await self.storage.get_participant(room_id, principal.user_id) is None:
                raise errors.RoomAccessDenied("Private room: not a participant")
        return room

    async def create(self, principal: Principal, fields: dict[str, Any]) -> dict[str, Any]:
        require_client_key(principal)
        now = now_ts()
        room = {
            "id": str(uuid.uuid4()), "client_id": principal.client_id,
            "name": fields["name"], "description": fields.get("description"),
            "is_active": True, "is_private": bool(fields.get("is_private", False)),
            "meta": fields.get("meta") or {}, "created_at": now, "updated_at": now,
        }
        return await self.storage.create_room(room)

    async def list(self, principal: Principal, query: RoomQuery) -> tuple[list[dict], int]:
        if principal.is_user:
            query = replace(query, visible_to=principal.user_id, ids=principal.rooms)
        return await self.storage.list_rooms(principal.client_id, query)

    async def update(self, principal: Principal, room_id: str, changes: dict[str, Any]
                     ) -> dict[str, Any]:
        require_client_key(principal)
        before = await self.find(principal, room_id)
        updated = await self.storage.update_room(
            principal.client_id, room_id, {**changes, "updated_at": now_ts()})
        if updated is None:
            raise errors.RoomNotFound()
        if updated["is_private"] and not before["is_private"]:
            await self._drop_outsiders(principal.client_id, room_id)
        return updated

    async def _drop_outsiders(self, client_id: str, room_id: str) -> None:
        """A room made private keeps only its participants' connections."""
        for user_id in await self.realtime.online_users(room_id):
            if await self.storage.get_participant(room_id, user_id) is None:
                await self.realtime.remove_member(client_id, room_id, user_id,
                                                  "Room access denied: the room is private now")

    async def delete(self, principal: Principal, room_id: str) -> None:
        require_client_key(principal)
        if not await self.storage.delete_room(principal.client_id, room_id):
            raise errors.RoomNotFound()
        await self.realtime.close_room(room_id, CLOSE_ROOM_NOT_FOUND, "Room not found")

    async def set_active(self, principal: Principal, room_id: str, active: bool
                         ) -> dict[str, Any]:
        room = await self.update(principal, room_id, {"is_active": active})
        if not active:
            await self.realtime.close_room(room_id, CLOSE_ROOM_ACCESS_DENIED, "Room deactivated")
        return room

    async def join(self, principal: Principal, room_id: str, fields: dict[str, Any]
                   ) -> dict[str, Any]:
        user_id = acting_user_id(principal, fields.get("user_id"))
        room = await self.find(principal, room_id)
        if principal.is_user:
            if room["is_private"]:
                raise errors.RoomAccessDenied("A user token cannot join a private room")
            if principal.rooms is not None and room_id not in principal.rooms:
                raise errors.RoomAccessDenied("This token is limited to other rooms")
        participant = {
            "room_id": room_id, "user_id": user_id,
            "user_name": fields.get("user_name") or (
                principal.user_name if principal.is_user else None) or user_id,
            "joined_at": now_ts(), "meta": fields.get("meta") or {}, "last_read_seq": 0,
        }
        with room_still_exists():
            added = await self.storage.add_participant(participant)
        if not added:
            raise errors.AlreadyInRoom()
        return participant

    async def ensure_participant(self, room_id: str, user_id: str, user_name: str | None
                                 ) -> tuple[dict[str, Any], bool]:
        """Make a connecting user a participant of a public room if not already one: the
        participant record, and whether this call added it."""
        existing = await self.storage.get_participant(room_id, user_id)
        if existing is not None:
            return existing, False
        participant = {"room_id": room_id, "user_id": user_id, "user_name": user_name or user_id,
                       "joined_at": now_ts(), "meta": {}, "last_read_seq": 0}
        with room_still_exists():
            if await self.storage.add_participant(participant):
                return participant, True
        return await self.storage.get_participant(room_id, user_id) or participant, False

    async def leave(self, principal: Principal, room_id: str, user_id: str | None) -> None:
        user_id = acting_user_id(principal, user_id)
        room = await self.find(principal, room_id)
        if not await self.storage.remove_participant(room_id, user_id):
            raise errors.NotInRoom()
        if room["is_private"]:  # a public room lets the same sockets straight back in
            await self.realtime.remove_member(principal.client_id, room_id, user_id,
                                              "Room access denied: removed from the room")

    async def participants(self, principal: Principal, room_id: str, skip: int, limit: int
                           ) -> tuple[list[dict], int]:
        await self.access(principal, room_id)
        return await self.storage.list_participants(room_id, skip, limit)

    async def online(self, principal: Principal, room_id: str) -> dict[str, Any]:
        await self.access(principal, room_id)
        users = await self.realtime.online_users(room_id)
        return {"online_users": users, "total_online": len(users)}
