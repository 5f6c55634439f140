"""One connection's messages take their seqs in the order they were received.

A connection takes a `Turn` per message, synchronously, as the message arrives. Lookups
before storing (room, access) may overlap and finish in any order; `Turn.wait` then holds
the message until every earlier one of the connection has been stored or refused, so the
storage call that assigns the seq happens in receive order whatever order the storage
answers in (a MongoDB pool does not answer in FIFO order). `release` hands the turn on; it
must run on every path, early failures included, and may run more than once.

Nothing is allocated while a connection's messages do not overlap: a future exists only
for a message that actually has to wait.
"""

from __future__ import annotations

import asyncio


class Turn:
    __slots__ = ("_go", "_mine", "_next", "_released")

    def __init__(self, mine: bool) -> None:
        self._mine = mine  # every earlier message has been stored or refused
        self._released = False
        self._go: asyncio.Future[None] | None = None
        self._next: Turn | None = None

    async def wait(self) -> None:
        """Return once it is this message's turn to be stored."""
        if not self._mine:
            self._go = asyncio.get_running_loop().create_future()
            await self._go

    def release(self) -> bool:
        """Done storing (or refused): pass the turn on. True if a waiting message was woken."""
        if self._released:
            return False
        self._released = True
        return self._mine and self._pass()

    def _pass(self) -> bool:
        turn = self._next
        while turn is not None:
            turn._mine = True
            if not turn._released:  # a message released early passes the turn straight on
                go = turn._go
                if go is not None and not go.done():
                    go.set_result(None)
                    return True
                return False
            turn = turn._next
        return False


class SendOrder:
    """One connection's queue of `Turn`s."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: Turn | None = None

    def turn(self) -> Turn:
        last = self._last
        free = last is None or (last._released and last._mine)
        turn = Turn(free)
        if not free:
            last._next = turn  # type: ignore[union-attr]
        self._last = turn
        return turn
