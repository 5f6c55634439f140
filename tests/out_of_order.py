"""A storage that answers out of order, as a connection pool may: `hold(method, n)` parks
the next `n` calls of `method` and, once all `n` are waiting, lets them through last-asked
first. Everything else goes straight to the wrapped storage."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from storage import Storage

TIMEOUT = 5.0


class OutOfOrder:
    def __init__(self, inner: Storage) -> None:
        self._inner = inner
        self._method: str | None = None
        self._count = 0
        self._gates: list[asyncio.Future[None]] = []
        self.order: list[int] = []  # which parked call (by arrival) went through, in turn

    def hold(self, method: str, count: int) -> None:
        self._method, self._count, self._gates, self.order = method, count, [], []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr
        return functools.partial(self._parked, attr)

    async def _parked(self, method: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        if len(self._gates) >= self._count:
            return await method(*args)
        gate = asyncio.get_running_loop().create_future()
        arrival = len(self._gates)
        self._gates.append(gate)
        if len(self._gates) == self._count:  # the last asked goes first, then the others
            self.order.append(arrival)
            answer = method(*args)
            for earlier in reversed(self._gates[:-1]):
                earlier.set_result(None)
            return await answer
        await asyncio.wait_for(gate, TIMEOUT)  # a future, not a task: woken in set order
        self.order.append(arrival)
        return await method(*args)
