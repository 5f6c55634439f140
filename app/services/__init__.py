"""Domain services: the rules of ChatAPI, independent of REST, raw WebSocket or Socket.IO."""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from app.events import NoRealtime, Realtime
from app.services.clients import ClientService
from app.services.messages import MessageService
from app.services.notifications import NotificationService
from app.services.rooms import RoomService
from storage import Storage


@dataclass
class Services:
    """Every service, wired to one storage and one real-time hub."""

    clients: ClientService
    rooms: RoomService
    messages: MessageService
    notifications: NotificationService

    @classmethod
    def build(cls, storage: Storage, settings: Settings, realtime: Realtime | None = None
              ) -> Services:
        hub = realtime or NoRealtime()
        rooms = RoomService(storage, hub)
        return cls(
            clients=ClientService(storage, settings, hub),
            rooms=rooms,
            messages=MessageService(storage, hub, rooms, settings),
            notifications=NotificationService(storage, hub, rooms),
        )

    def attach_realtime(self, realtime: Realtime) -> None:
        """Point every service at the real-time hub once it exists."""
        for service in (self.clients, self.rooms, self.messages, self.notifications):
            service.realtime = realtime
