"""Messages: send (idempotent), history, edit, soft delete, restore, read marks."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from app import errors
from app.auth import Principal
from app.config import Settings
from app.events import Realtime
from app.metrics import MESSAGES_STORED
from app.services.ordering import Turn
from app.services.rooms import RoomService, require_same_user, room_still_exists
from app.timeutil import now_ts
from storage import MessageQuery, Storage


def updated_event(message: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "room_id", "seq", "content", "meta", "edited_at", "edit_reason")
    return {k: message.get(k) for k in keys}


def deleted_event(message: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "room_id", "seq", "deleted_by", "deleted_at")
    return {k: message.get(k) for k in keys}


class MessageService:
    def __init__(self, storage: Storage, realtime: Realtime, rooms: RoomService,
                 settings: Settings) -> None:
        self.storage = storage
        self.realtime = realtime
        self.rooms = rooms
        self.max_content_length = settings.max_content_length

    def check_content(self, content: str) -> None:
        if len(content) > self.max_content_length:
            raise errors.ContentTooLong(
                f"Content is longer than {self.max_content_length} characters",
                details={"max_length": self.max_content_length, "current_length": len(content)},
            )

    async def send(self, principal: Principal, room_id: str, fields: dict[str, Any],
                   turn: Turn | None = None) -> tuple[dict[str, Any], bool]:
        """Store then broadcast. Returns (message, created); a retry by client_msg_id is not new.

        With a `turn` (one connection's messages, `app.services.ordering`) the seq is taken
        only once every earlier message of that connection has one; the turn is released
        here as soon as this one is stored, before the fan-out. The caller still releases it
        on every path (release is idempotent)."""
        sender_id = fields.get("sender_id") or principal.user_id
        require_same_user(principal, sender_id)
        if not sender_id:
            raise errors.ValidationFailed(
                errors=[{"field": "sender_id", "message": "Missing data for required field."}])
        self.check_content(fields["content"])
        room = await self.rooms.access(principal, room_id)
        if not room["is_active"]:
            raise errors.RoomInactive()
        now = now_ts()
        sender_name = fields.get("sender_name") or (
            principal.user_name if principal.is_user else None) or sender_id
        if turn is not None:
            await turn.wait()
        with room_still_exists():
            message, created = await self.storage.add_message({
                "id": str(uuid.uuid4()), "room_id": room_id, "client_id": room["client_id"],
                "sender_id": sender_id, "sender_name": sender_name,
                "content": fields["content"], "message_type": fields.get("message_type") or "text",
                "meta": fields.get("meta") or {}, "client_msg_id": fields.get("client_msg_id"),
                "created_at": now, "updated_at": now, "edited_at": None, "edit_reason": None,
                "is_deleted": False, "deleted_at": None, "deleted_by": None,
            })
        if turn is not None and turn.release():
            await asyncio.sleep(0)  # the next message's write starts before this fan-out
        if created:
            MESSAGES_STORED.inc()
            await self.realtime.publish(room_id, "message", message)
        return message, created

    async def history(self, principal: Principal, room_id: str, query: MessageQuery
                      ) -> tuple[list[dict[str, Any]], int]:
        await self.rooms.access(principal, room_id)
        return await self.storage.list_messages(room_id, query)

    async def missed(self, room_id: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        """Recovery: messages after `after_seq`, oldest first, up to `limit`."""
        items, _ = await self.storage.list_messages(
            room_id, MessageQuery(after_seq=after_seq, limit=limit, ascending=True))
        return items

    async def get(self, principal: Principal, message_id: str) -> dict[str, Any]:
        message = await self.storage.get_message(principal.client_id, message_id)
        if message is None:
            raise errors.MessageNotFound()
        try:
            await self.rooms.access(principal, message["room_id"])
        except errors.RoomNotFound:
            raise errors.MessageNotFound() from None
        return message

    async def _own(self, principal: Principal, message_id: str) -> dict[str, Any]:
        message = await self.get(principal, message_id)
        if principal.is_user and message["sender_id"] != principal.user_id:
            raise errors.UnauthorizedEdit()
        return message

    async def edit(self, principal: Principal, message_id: str, fields: dict[str, Any]
                   ) -> dict[str, Any]:
        message = await self._own(principal, message_id)
        if message["is_deleted"]:
            raise errors.MessageNotFound("Message is deleted; restore it first")
        if "content" in fields:
            self.check_content(fields["content"])
        now = now_ts()
        changes = {k: fields[k] for k in ("content", "meta", "edit_reason") if k in fields}
        changes.update(edited_at=now, updated_at=now)
        # checked again as it is written: a delete may have landed since `_own` read it
        updated = await self.storage.edit_live_message(message_id, changes)
        if updated is None:
            if await self.storage.get_message(principal.client_id, message_id) is None:
                raise errors.MessageNotFound()
            raise errors.MessageNotFound("Message is deleted; restore it first")
        await self.realtime.publish(updated["room_id"], "message_updated", updated_event(updated))
        return updated

    async def delete(self, principal: Principal, message_id: str, acting_user: str | None = None
                     ) -> dict[str, Any]:
        """Soft delete. `acting_user` names who deleted when a client key acts for a user."""
        require_same_user(principal, acting_user)
        message = await self._own(principal, message_id)
        if message["is_deleted"]:
            return message
        deleted_by = principal.user_id or acting_user or "client"
        updated = await self.storage.set_message_deleted(message_id, True, deleted_by, now_ts())
        if updated is None:
            raise errors.MessageNotFound()
        await self.realtime.publish(updated["room_id"], "message_deleted", deleted_event(updated))
        return updated

    async def restore(self, principal: Principal, message_id: str) -> dict[str, Any]:
        message = await self._own(principal, message_id)
        if not message["is_deleted"]:
            return message
        updated = await self.storage.set_message_deleted(message_id, False, None, now_ts())
        if updated is None:
            raise errors.MessageNotFound()
        await self.realtime.publish(updated["room_id"], "message_restored", updated)
        return updated

    async def mark_read(self, room_id: str, user_id: str, seq: int) -> dict[str, Any]:
        """Raise the user's read mark and tell the room."""
        participant = await self.storage.set_last_read_seq(room_id, user_id, seq)
        if participant is None:
            raise errors.NotInRoom()
        receipt = {"user_id": user_id, "seq": participant["last_read_seq"], "read_at": now_ts()}
        await self.realtime.publish(room_id, "read_receipt", receipt)
        return receipt
