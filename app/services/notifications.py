"""Notifications: stored, then pushed to a room or to users wherever they are connected."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from app import errors
from app.auth import Principal
from app.events import Realtime
from app.services.rooms import RoomService, require_client_key
from app.timeutil import now_ts
from storage import NotificationQuery, Storage

EVENT_FIELDS = ("id", "title", "content", "action_url", "priority", "icon", "meta", "room_id",
                "user_ids", "created_at")


def notification_event(notification: dict[str, Any]) -> dict[str, Any]:
    """The seed's `notification` data, plus meta, targets and created_at."""
    return {k: notification.get(k) for k in EVENT_FIELDS}


class NotificationService:
    def __init__(self, storage: Storage, realtime: Realtime, rooms: RoomService) -> None:
        self.storage = storage
        self.realtime = realtime
        self.rooms = rooms

    async def create(self, principal: Principal, fields: dict[str, Any]) -> dict[str, Any]:
        require_client_key(principal)
        room_id = fields.get("room_id")
        user_ids = fields.get("user_ids")
        if (room_id is None) == (not user_ids):
            raise errors.ValidationFailed(errors=[
                {"field": "room_id", "message": "Give exactly one of room_id or user_ids."}])
        if room_id is not None:
            await self.rooms.find(principal, room_id)
        record = {
            "id": str(uuid.uuid4()), "client_id": principal.client_id,
            "title": fields["title"], "content": fields["content"], "room_id": room_id,
            "user_ids": list(user_ids or []), "action_url": fields.get("action_url"),
            "priority": fields.get("priority") or "normal", "icon": fields.get("icon"),
            "meta": fields.get("meta") or {}, "status": "pending", "recipients_online": 0,
            "delivered_connections": 0, "created_at": now_ts(),
        }
        await self.storage.add_notification(record)
        users, connections = await self._push(principal.client_id, record)
        changes = {"status": "delivered" if connections else "undelivered",
                   "recipients_online": users, "delivered_connections": connections}
        return await self.storage.update_notification(record["id"], changes) or {
            **record, **changes}

    async def _push(self, client_id: str, record: dict[str, Any]) -> tuple[int, int]:
        event = notification_event(record)
        if record["room_id"] is not None:
            room_id = record["room_id"]
            online = await self.realtime.online_users(room_id)
            connections = await self.realtime.count_connections(room_id)
            await self.realtime.publish(room_id, "notification", event)
            return len(online), connections
        return await self.realtime.notify_users(client_id, record["user_ids"], event)

    async def get(self, principal: Principal, notification_id: str) -> dict[str, Any]:
        notification = await self.storage.get_notification(principal.client_id, notification_id)
        if notification is None:
            raise errors.NotificationNotFound()
        if principal.is_user and not await self._addressed_to(principal, notification):
            raise errors.NotificationNotFound()
        return notification

    async def _addressed_to(self, principal: Principal, notification: dict[str, Any]) -> bool:
        """A user token sees only notifications sent to its user or to a room it may enter."""
        if principal.user_id in (notification.get("user_ids") or []):
            return True
        if notification.get("room_id") is None:
            return False
        try:
            await self.rooms.access(principal, notification["room_id"])
        except (errors.RoomNotFound, errors.RoomAccessDenied):
            return False
        return True

    async def list(self, principal: Principal, query: NotificationQuery
                   ) -> tuple[list[dict[str, Any]], int]:
        if principal.is_user:
            query = replace(query, user_id=principal.user_id)
        return await self.storage.list_notifications(principal.client_id, query)
