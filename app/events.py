"""What the domain services need from the real-time layer, as one small interface.

Services store first, then call these; the real-time hub (python-socketio's room manager
behind it) turns them into envelopes for raw WebSocket and Socket.IO clients on every node.
`NoRealtime` is what a process without sockets (the CLI, storage-only tests) uses.
"""

from __future__ import annotations

from typing import Any, Protocol


class Realtime(Protocol):
    async def publish(self, room_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Send `{type, data, timestamp, room_id}` to every connection in the room."""

    async def notify_users(
        self, client_id: str, user_ids: list[str], data: dict[str, Any]
    ) -> tuple[int, int]:
        """Send a `notification` to every connection of these users, whatever room it is in.

        Returns (users reached, connections reached).
        """

    async def close_room(self, room_id: str, code: int, reason: str) -> None:
        """Close every connection in the room (room deleted or deactivated)."""

    async def revoke(self, client_id: str, credentials: tuple[str, ...], reason: str) -> None:
        """Close (4001) every connection of this client that authenticated with one of these
        credential kinds: "key" (the client API key), "tokens" (its user tokens)."""

    async def remove_member(self, client_id: str, room_id: str, user_id: str, reason: str
                            ) -> None:
        """Drop every connection of this user from the room (4003): no longer a participant."""

    async def online_users(self, room_id: str) -> list[str]:
        """User ids with at least one live connection to the room, on any node."""

    async def count_connections(self, room_id: str) -> int:
        """Live connections to the room on any node."""


class NoRealtime:
    """No sockets in this process: events go nowhere and nobody is online."""

    async def publish(self, room_id: str, event_type: str, data: dict[str, Any]) -> None:
        return None

    async def notify_users(
        self, client_id: str, user_ids: list[str], data: dict[str, Any]
    ) -> tuple[int, int]:
        return 0, 0

    async def close_room(self, room_id: str, code: int, reason: str) -> None:
        return None

    async def revoke(self, client_id: str, credentials: tuple[str, ...], reason: str) -> None:
        return None

    async def remove_member(self, client_id: str, room_id: str, user_id: str, reason: str
                            ) -> None:
        return None

    async def online_users(self, room_id: str) -> list[str]:
        return []

    async def count_connections(self, room_id: str) -> int:
        return 0
