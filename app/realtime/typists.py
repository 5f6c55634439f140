"""Typing indicators: throttled `true`, automatic `false` after a timeout or on close.

State (who is typing, when `true` was last relayed) lives in presence; the expiry timer is
one `loop.call_later` handle per active typist on the node that saw the typing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from app.realtime.presence import Presence

Relay = Callable[[str, str, str, bool], Awaitable[None]]  # room, user_id, user_name, is_typing


class Typists:
    def __init__(self, presence: Presence, relay: Relay, throttle: float, timeout: float
                 ) -> None:
        self.presence = presence
        self.relay = relay
        self.throttle = throttle
        self.timeout = timeout
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def update(self, room_id: str, user_id: str, user_name: str, typing: bool) -> None:
        if typing:
            self._arm(room_id, user_id, user_name)
            if await self.presence.start_typing(room_id, user_id, self.throttle):
                await self.relay(room_id, user_id, user_name, True)
        else:
            await self.stop(room_id, user_id, user_name)

    async def stop(self, room_id: str, user_id: str, user_name: str) -> None:
        """Clear the typing mark and relay `false` if the user was typing."""
        timer = self._timers.pop((room_id, user_id), None)
        if timer is not None:
            timer.cancel()
        if await self.presence.stop_typing(room_id, user_id):
            await self.relay(room_id, user_id, user_name, False)

    def _arm(self, room_id: str, user_id: str, user_name: str) -> None:
        key = (room_id, user_id)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(self.timeout, self._expire, room_id, user_id,
                                            user_name)

    def _expire(self, room_id: str, user_id: str, user_name: str) -> None:
        self._timers.pop((room_id, user_id), None)
        task = asyncio.ensure_future(self.stop(room_id, user_id, user_name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
