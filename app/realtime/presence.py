"""Who is connected where, behind a small async interface (in-process now, Redis later).

Keys are node-agnostic: a room id (or a per-user pseudo-room), a user id and a connection id
unique across nodes. Every method is async so a networked backend fits without changes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Protocol


class Presence(Protocol):
    async def join(self, room_id: str, user_id: str, conn_id: str, user_name: str = "") -> bool:
        """Record a live connection; True if it is the user's first in the room. The name is
        what a shared backend announces in `user_left` should this node die."""

    async def leave(self, room_id: str, user_id: str, conn_id: str) -> bool:
        """Forget a connection; True if it was the user's last in the room."""

    async def online_users(self, room_id: str) -> list[str]:
        """Users with at least one live connection to the room, in arrival order."""

    async def count_connections(self, room_id: str) -> int:
        """Live connections to the room."""

    async def start_typing(self, room_id: str, user_id: str, throttle: float) -> bool:
        """Mark the user typing; True if an `is_typing: true` should be relayed now."""

    async def stop_typing(self, room_id: str, user_id: str) -> bool:
        """Clear the typing mark; True if the user was typing (relay `false`)."""


class MemoryPresence:
    """In-process presence. With it you can only run a single ChatAPI node."""

    def __init__(self) -> None:
        self._rooms: dict[str, dict[str, set[str]]] = defaultdict(dict)
        self._typing = TypingMarks()

    async def join(self, room_id: str, user_id: str, conn_id: str, user_name: str = "") -> bool:
        users = self._rooms[room_id]
        conns = users.setdefault(user_id, set())
        conns.add(conn_id)
        return len(conns) == 1

    async def leave(self, room_id: str, user_id: str, conn_id: str) -> bool:
        users = self._rooms.get(room_id)
        conns = users.get(user_id) if users else None
        if not conns or conn_id not in conns:
            return False
        conns.discard(conn_id)
        if conns:
            return False
        del users[user_id]
        if not users:
            del self._rooms[room_id]
        return True

    async def online_users(self, room_id: str) -> list[str]:
        return list(self._rooms.get(room_id, {}))

    async def count_connections(self, room_id: str) -> int:
        return sum(len(c) for c in self._rooms.get(room_id, {}).values())

    async def start_typing(self, room_id: str, user_id: str, throttle: float) -> bool:
        return self._typing.start(room_id, user_id, throttle)

    async def stop_typing(self, room_id: str, user_id: str) -> bool:
        return self._typing.stop(room_id, user_id)


class TypingMarks:
    """When `is_typing: true` was last relayed for each (room, user): the typing throttle,
    in this process (the in-memory presence, and Redis presence's local fallback)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], float] = {}

    def start(self, room_id: str, user_id: str, throttle: float) -> bool:
        """Mark the user typing; True if the last relay is older than `throttle` seconds."""
        now = time.monotonic()
        last = self._last.get((room_id, user_id))
        if last is not None and now - last < throttle:
            return False
        self._last[room_id, user_id] = now
        return True

    def stop(self, room_id: str, user_id: str) -> bool:
        """Clear the mark; True if the user was marked typing."""
        return self._last.pop((room_id, user_id), None) is not None
