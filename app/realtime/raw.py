"""One raw WebSocket connection's write side: frames go straight to its transport, in order.

Fan-out and direct replies share `write`, so a connection's frames never reorder. Frames
queued for a connection are joined and handed to its transport in ONE write (`Outbox`): a
quiet room pays one extra loop iteration and no timer; when events come faster than the
sockets drain, one syscall carries several of them. While a
connection recovers (`last_seq`), live events are held in `buffer` and flushed after the
replay. A connection whose transport buffer stays over its bound is cut (1013); the room
never waits for it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from app.realtime.envelope import PING_FRAME, dumps, envelope, text_frame
from app.realtime.limits import TokenBucket
from app.realtime.raw_socket import RawSocket

log = logging.getLogger("chatapi.ws")

CLOSE_GRACE_SECONDS = 2.0
FLUSH_DUTY = 1.0  # a busy outbox waits as long as its last flush took before the next
MAX_FLUSH_WAIT = 0.025


@dataclass(frozen=True)
class SendLimits:
    queue_bytes: int
    hard_cap_bytes: int
    slow_seconds: float


@dataclass(frozen=True)
class Encoded:
    """One event, encoded once: its name, its message seq (if any), its text and frame."""

    event: str
    seq: int | None
    text: str
    frame: bytes


class Writer(Protocol):
    """What the outbox flushes: a raw connection, or a lean Socket.IO socket."""

    sid: str

    def send_out(self) -> None: ...


class Outbox:
    """Connections with frames queued since the last flush, written together by `flush`.

    A quiet server flushes on the next loop iteration (one `call_soon`, no timer). A busy
    one paces itself: the next flush starts no sooner than the last one took
    (`FLUSH_DUTY` times its duration) after it ended, so writes take at most about half the
    CPU and the frames that arrive meanwhile share each socket's next write instead of
    costing a `send()` each. The wait is bounded by `MAX_FLUSH_WAIT`."""

    __slots__ = ("_dirty", "_ready_at", "_scheduled")

    def __init__(self) -> None:
        self._dirty: list[Writer] = []
        self._scheduled = False
        self._ready_at = 0.0  # loop time before which the next flush waits

    def add(self, conn: Writer) -> None:
        self._dirty.append(conn)
        self._schedule()

    def add_all(self, conns: Sequence[Writer]) -> None:
        """`add` for a fan-out's newly pending connections at once."""
        if conns:
            self._dirty += conns
            self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            loop = asyncio.get_running_loop()
            wait = self._ready_at - loop.time()
            if wait > 0:
                loop.call_later(wait, self.flush)
            else:
                loop.call_soon(self.flush)

    def flush(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        dirty, self._dirty = self._dirty, []
        self._scheduled = False
        for conn in dirty:
            try:
                conn.send_out()
            except Exception:  # one broken transport must not cost the others their frames
                log.exception("flushing %s failed", conn.sid)
        ended = loop.time()
        self._ready_at = ended + min(FLUSH_DUTY * (ended - started), MAX_FLUSH_WAIT)


class FrameSink:
    """A transport and the frames queued for it this iteration, written by `Outbox.flush`."""

    __slots__ = ("_out", "outbox", "sid", "transport")

    def __init__(self, sid: str, transport: asyncio.Transport, outbox: Outbox) -> None:
        self.sid = sid
        self.transport = transport
        self.outbox = outbox
        self._out: bytes | list[bytes] | None = None

    def queue_frame(self, frame: bytes) -> None:
        out = self._out
        if out is None:
            self._out = frame  # the common case, one frame: no list
            self.outbox.add(self)
        elif type(out) is list:
            out.append(frame)
        else:
            self._out = [out, frame]

    def write_out(self) -> int:
        """Hand the queued frames to the transport in one write; its buffer size, or -1."""
        out, self._out = self._out, None
        transport = self.transport
        if out is None or transport.is_closing():
            return -1
        transport.write(out if type(out) is bytes else b"".join(out))
        return transport.get_write_buffer_size()


class RawConnection(FrameSink):
    """A live `/ws/{room_id}` socket. Slots keep idle connections small."""

    __slots__ = (
        "__weakref__",
        "_pending",
        "_sender",
        "bucket",
        "buffer",
        "closing",
        "credential",
        "inflight",
        "limits",
        "over_since",
        "pinged_at",
        "principal",
        "room_id",
        "sock",
        "typing",
        "user_id",
        "user_name",
        "ws",
    )

    def __init__(self, sid: str, sock: RawSocket, *, principal: Any, user_id: str,
                 user_name: str, room_id: str, limits: SendLimits, bucket: TokenBucket,
                 outbox: Outbox, ws: web.WebSocketResponse | None = None) -> None:
        super().__init__(sid, sock.transport, outbox)
        self.sock = sock
        self.ws = ws  # only with permessage-deflate: its writer compresses
        self.principal = principal
        self.credential: str = principal.rate_key
        self.user_id = user_id
        self.user_name = user_name
        self.room_id = room_id
        self.limits = limits
        self.bucket = bucket
        self.buffer: list[Encoded] | None = None
        self.closing = False
        self.typing = False
        self.inflight: list[asyncio.Task[None]] = []  # `message` events being stored, in order
        self.pinged_at = 0.0
        self.over_since = 0.0
        self._pending: deque[str] | None = deque() if ws is not None and ws.compress else None
        self._sender: asyncio.Task[None] | None = None

    @property
    def last_seen(self) -> float:
        """Loop time of the last bytes from the peer."""
        return self.sock.last_seen

    # -- writing -------------------------------------------------------------------------
    def deliver(self, item: Encoded) -> None:
        """Fan-out entry: hold the event while recovering, else queue its frame for the flush."""
        if self.buffer is not None:
            self.buffer.append(item)
        else:
            self.write(item.frame, item.text)

    def write(self, frame: bytes, text: str) -> None:
        """Queue one frame; this iteration's flush writes all of them in one transport write."""
        if self.closing:
            return
        if self._pending is not None:
            self._queue_compressed(text)
            return
        self.queue_frame(frame)

    def send_out(self) -> None:
        """Write the queued frames; check the slow-consumer bound."""
        size = self.write_out()
        if size < 0:
            return
        if size > self.limits.queue_bytes:
            self._over(size)
        elif self.over_since:
            self.over_since = 0.0

    def send_event(self, event_type: str, data: dict[str, Any], room_id: str | None = None
                   ) -> None:
        """A direct reply (connection_status, pong, error, ack) through the same write path."""
        text = dumps(envelope(event_type, data, room_id))
        self.write(text_frame(text.encode("utf-8", "surrogatepass")), text)

    def flush(self, replayed_upto: int) -> None:
        """End recovery: write held events, skipping messages the replay already carried."""
        held, self.buffer = self.buffer or [], None
        for item in held:
            if item.event == "message" and item.seq is not None and item.seq <= replayed_upto:
                continue
            self.write(item.frame, item.text)

    # -- slow consumers ------------------------------------------------------------------
    def _over(self, size: int) -> None:
        now = asyncio.get_running_loop().time()
        if size > self.limits.hard_cap_bytes:
            self.cut(1013, "Slow consumer")
        elif not self.over_since:
            self.over_since = now

    def check_slow(self, now: float) -> None:
        """Called by the liveness loop: cut if over the bound for longer than allowed."""
        if not self.over_since or self.closing:
            return
        if self.transport.get_write_buffer_size() <= self.limits.queue_bytes:
            self.over_since = 0.0
        elif now - self.over_since > self.limits.slow_seconds:
            self.cut(1013, "Slow consumer")

    # -- closing ---------------------------------------------------------------------------
    def cut(self, code: int, reason: str, grace: float | None = None
            ) -> asyncio.Task[None] | None:
        """Stop writing and close with `code` in the background (aborts if it cannot)."""
        if self.closing:
            return None
        self.closing = True
        if grace is None:
            grace = max(CLOSE_GRACE_SECONDS, 2 * self.limits.slow_seconds)
        return in_background(self.close(code, reason, grace))

    async def close(self, code: int, reason: str, grace: float = CLOSE_GRACE_SECONDS) -> None:
        """Close with `code`; a peer that has not read its backlog by `grace` is aborted."""
        self.closing = True
        self.send_out()  # frames accepted before closing precede the close frame
        await self.sock.close(code, reason, grace)

    def ping(self) -> None:
        """Heartbeat PING, in the next flush with any other frames for this socket (control
        frames are never compressed)."""
        if not self.closing and not self.transport.is_closing():
            self.queue_frame(PING_FRAME)

    def abort(self) -> None:
        """Drop without a close frame (a silent peer will not read one)."""
        self.closing = True
        self.transport.abort()

    # -- compressed fallback (CHATAPI_WS_COMPRESSION=on) ----------------------------------
    def _queue_compressed(self, text: str) -> None:
        assert self._pending is not None
        self._pending.append(text)
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send_compressed())

    async def _send_compressed(self) -> None:
        assert self._pending is not None
        try:
            while self._pending and not self.closing:
                await self.ws.send_str(self._pending.popleft())
        except (ConnectionError, RuntimeError):
            self._pending.clear()
        finally:
            self._sender = None


class Beat:
    """Items due `delay` seconds after they were added, handed to `run` on time by ONE
    timer. Items that wait the full delay fall due in the order they were added (a deque,
    no timer or task per item); an item added with a shorter delay (a first beat, spread)
    waits in a small heap. A pass runs at most `BATCH` items, then lets the loop run
    (fan-out, reads) before the next; `run` may add the item again."""

    BATCH = 1000

    __slots__ = ("_at", "_count", "_timer", "delay", "early", "queue", "run")

    def __init__(self, delay: float, run: Callable[[Any, float], None]) -> None:
        self.delay = delay
        self.run = run
        self.queue: deque[tuple[float, Any]] = deque()
        self.early: list[tuple[float, int, Any]] = []
        self._count = itertools.count()
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._at = 0.0  # loop time `_timer` fires at

    def add(self, item: Any, delay: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        if delay is None or delay >= self.delay:
            due = loop.time() + self.delay
            self.queue.append((due, item))
        else:
            due = loop.time() + max(0.0, delay)
            heapq.heappush(self.early, (due, next(self._count), item))
        if self._timer is None or due < self._at:
            if self._timer is not None:
                self._timer.cancel()
            self._at = due
            self._timer = loop.call_at(due, self._fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.queue.clear()
        self.early.clear()

    def _next(self) -> float | None:
        queue, early = self.queue, self.early
        if queue and early:
            return min(queue[0][0], early[0][0])
        return queue[0][0] if queue else early[0][0] if early else None

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._at = float("-inf")  # what `run` adds is scheduled below, not by `add`
        queue, early, run = self.queue, self.early, self.run
        for _ in range(self.BATCH):
            if early and early[0][0] <= now and (not queue or early[0][0] < queue[0][0]):
                item = heapq.heappop(early)[2]
            elif queue and queue[0][0] <= now:
                item = queue.popleft()[1]
            else:
                break
            try:
                run(item, now)
            except Exception:
                log.exception("heartbeat pass failed")
        due = self._next()
        if due is None:
            self._timer = None
        elif due <= now:
            self._at = now
            self._timer = loop.call_soon(self._fire)  # the rest after other callbacks
        else:
            self._at = due
            self._timer = loop.call_at(due, self._fire)


_BACKGROUND: set[asyncio.Task[Any]] = set()


def in_background(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run `coro` in a task nobody awaits, kept referenced until it ends."""
    task = asyncio.ensure_future(coro)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return task
