"""The outbox's pacing: immediate when quiet, coalescing when its flushes take time."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.realtime import raw
from app.realtime.raw import Outbox

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage


class CountingWriter:
    """A writer whose `send_out` records when it ran and can take a while, like a slow send."""

    def __init__(self, sid: str, cost: float = 0.0) -> None:
        self.sid = sid
        self.cost = cost
        self.flushed_at: list[float] = []

    def send_out(self) -> None:
        self.flushed_at.append(asyncio.get_running_loop().time())
        if self.cost:
            time.sleep(self.cost)


async def _iterations(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_quiet_outbox_flushes_on_the_next_iteration() -> None:
    outbox, writer = Outbox(), CountingWriter("a")
    outbox.add(writer)
    await _iterations(2)
    assert len(writer.flushed_at) == 1
    await asyncio.sleep(0.01)  # longer than that flush took: no wait for the next one
    outbox.add(writer)
    await _iterations(2)
    assert len(writer.flushed_at) == 2


async def test_busy_outbox_waits_as_long_as_its_last_flush_took() -> None:
    outbox = Outbox()
    slow, other = CountingWriter("slow", cost=0.02), CountingWriter("other")
    outbox.add(slow)
    await _iterations(2)
    done = asyncio.get_running_loop().time()
    assert len(slow.flushed_at) == 1
    outbox.add(other)
    outbox.add(other)  # two frames for one socket in the window: one flush call covers both
    await _iterations(3)
    assert other.flushed_at == []  # the 20 ms flush earns a ~20 ms pause
    await asyncio.sleep(0.05)
    assert len(other.flushed_at) == 2  # registered twice by the test, flushed in one pass
    assert other.flushed_at[0] - done >= 0.015


async def test_the_pause_is_bounded() -> None:
    outbox, slow = Outbox(), CountingWriter("slow", cost=0.06)
    outbox.add(slow)
    await _iterations(2)
    done = asyncio.get_running_loop().time()
    slow.cost = 0.0
    outbox.add(slow)
    await asyncio.sleep(raw.MAX_FLUSH_WAIT + 0.02)
    assert len(slow.flushed_at) == 2
    assert slow.flushed_at[1] - done <= raw.MAX_FLUSH_WAIT + 0.015


async def test_a_failing_writer_does_not_cost_the_others_their_frames() -> None:
    class Broken(CountingWriter):
        def send_out(self) -> None:
            raise OSError("transport gone")

    outbox, good = Outbox(), CountingWriter("good")
    outbox.add(Broken("bad"))
    outbox.add(good)
    await _iterations(2)
    assert len(good.flushed_at) == 1
