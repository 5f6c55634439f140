"""Presence kept in Redis and shared by every node (chosen by `CHATAPI_REDIS_URL`).

Keys, under `<prefix>:p:`:
  room:<room>:conns   HASH conn -> user            every live connection to the room, any node
  room:<room>:users   HASH user -> connections     per user
  room:<room>:order   ZSET user -> arrival (µs)    online users in arrival order
  room:<room>:typing  HASH user -> last relay (ms)
  node:<node>         HASH room␟conn -> user␟name  what each node holds, for its sweep
  alive:<node>        a key with a TTL             the node's heartbeat
  nodes               SET                          node ids, for the sweep

Every change is one Lua script, so two nodes never both see a user's first or last
connection. Each node refreshes its heartbeat and sweeps nodes whose heartbeat expired: one
script per dead node removes its connections and returns the users who left with it, so
exactly one survivor announces each `user_left`.

This node's own connections are also kept in memory, changed synchronously. When Redis
cannot be reached, calls log, degrade to this node's view and never raise; once Redis
answers again the node re-registers what it holds (Redis restarted empty, or this node was
swept while it was cut off) and announces leaves that happened meanwhile.

Can't do: Redis Cluster (scripts touch keys of several rooms and nodes); while Redis is
unreachable, online users and first/last decisions are this node's only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from app.realtime.presence import TypingMarks

log = logging.getLogger("chatapi.presence")

SEP = "\x1f"  # never in ids or names (control characters are refused there)
CALL_TIMEOUT_SECONDS = 1.0
MAX_CONNECTIONS = 32  # per client (pool); `redis_max_connections` sets it
RETRY_AFTER_SECONDS = 1.0  # after a failure, answer locally this long before asking again
TYPING_EXPIRE_MS = 60_000

# (room, user_id, user_name, was typing) of a user whose last connection vanished with a node
OnLeft = Callable[[str, str, str, bool], Awaitable[None]]


class PresenceUnavailable(Exception):
    """Redis did not answer (or is being skipped after a recent failure)."""


_LUA_SPLIT = """
local function split(s)
  local i = string.find(s, '\\31', 1, true)
  return string.sub(s, 1, i - 1), string.sub(s, i + 1)
end
local function drop(base, conn, user)
  if redis.call('HDEL', base .. ':conns', conn) == 0 then return false end
  if redis.call('HINCRBY', base .. ':users', user, -1) > 0 then return false end
  redis.call('HDEL', base .. ':users', user)
  redis.call('ZREM', base .. ':order', user)
  if redis.call('HDEL', base .. ':typing', user) == 1 then return 'typing' end
  return 'idle'
end
local function add(base, conn, user)
  if redis.call('HSETNX', base .. ':conns', conn, user) == 0 then return false end
  if redis.call('HINCRBY', base .. ':users', user, 1) > 1 then return false end
  local t = redis.call('TIME')
  redis.call('ZADD', base .. ':order', t[1] * 1000000 + t[2], user)
  return true
end
"""

# KEYS: node, nodes. ARGV: prefix, node, room, conn, user, name
_JOIN = _LUA_SPLIT + """
redis.call('HSET', KEYS[1], ARGV[3] .. '\\31' .. ARGV[4], ARGV[5] .. '\\31' .. ARGV[6])
redis.call('SADD', KEYS[2], ARGV[2])
return add(ARGV[1] .. 'room:' .. ARGV[3], ARGV[4], ARGV[5]) and 1 or 0
"""

# KEYS: node. ARGV: prefix, room, conn
_LEAVE = _LUA_SPLIT + """
local base = ARGV[1] .. 'room:' .. ARGV[2]
local user = redis.call('HGET', base .. ':conns', ARGV[3])
redis.call('HDEL', KEYS[1], ARGV[2] .. '\\31' .. ARGV[3])
if not user then return 0 end
return drop(base, ARGV[3], user) and 1 or 0
"""

# KEYS: alive, nodes. ARGV: node, ttl ms. Returns the previous heartbeat (nil: it had lapsed).
_BEAT = """
local prev = redis.call('SET', KEYS[1], '1', 'PX', ARGV[2], 'GET')
redis.call('SADD', KEYS[2], ARGV[1])
return prev
"""

# KEYS: alive, node, nodes of a node that may be dead. ARGV: prefix, node.
# Returns room, user␟name, 'typing'|'idle' triples of users whose last connection it held.
_SWEEP = _LUA_SPLIT + """
if redis.call('EXISTS', KEYS[1]) == 1 then return {} end
local out = {}
local held = redis.call('HGETALL', KEYS[2])
for i = 1, #held, 2 do
  local room, conn = split(held[i])
  local user = split(held[i + 1])
  local left = drop(ARGV[1] .. 'room:' .. room, conn, user)
  if left then
    out[#out + 1] = room
    out[#out + 1] = held[i + 1]
    out[#out + 1] = left
  end
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
return out
"""

# KEYS: node, nodes. ARGV: prefix, node, then room␟conn, user␟name pairs this node holds.
# Makes Redis match them; returns room, user␟name, 'typing'|'idle' triples of users who left
# meanwhile.
_RESYNC = _LUA_SPLIT + """
local want = {}
for i = 3, #ARGV, 2 do want[ARGV[i]] = ARGV[i + 1] end
local out = {}
local held = redis.call('HGETALL', KEYS[1])
for i = 1, #held, 2 do
  if want[held[i]] == nil then
    local room, conn = split(held[i])
    local user = split(held[i + 1])
    redis.call('HDEL', KEYS[1], held[i])
    local left = drop(ARGV[1] .. 'room:' .. room, conn, user)
    if left then
      out[#out + 1] = room
      out[#out + 1] = held[i + 1]
      out[#out + 1] = left
    end
  end
end
for field, value in pairs(want) do
  local room, conn = split(field)
  local user = split(value)
  add(ARGV[1] .. 'room:' .. room, conn, user)
  redis.call('HSET', KEYS[1], field, value)
end
redis.call('SADD', KEYS[2], ARGV[2])
return out
"""

# KEYS: typing. ARGV: user, throttle ms, expire ms
_TYPING = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
if last and now - last < tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


def connect(url: str, timeout: float = CALL_TIMEOUT_SECONDS,
            max_connections: int = MAX_CONNECTIONS, name: str | None = None) -> aioredis.Redis:
    """A client that fails fast: short socket timeouts, one immediate retry (stale socket),
    and at most `max_connections` sockets; a call finding all busy waits up to `timeout` for
    one instead of opening another. `name` is its CLIENT SETNAME (who holds a connection)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max(1, max_connections), timeout=timeout,
        socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 1),
        decode_responses=True, client_name=name)
    return aioredis.Redis.from_pool(pool)


class LocalView:
    """This node's connections, changed synchronously: the fallback and the resync source."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, tuple[str, str]]] = {}  # room -> conn -> (user, name)
        self.users: dict[str, dict[str, int]] = {}  # room -> user -> connections, by arrival
        self.typing = TypingMarks()
        self.version = 0  # bumped on every change: a resync that raced one is redone

    def join(self, room: str, user: str, conn: str, name: str) -> bool:
        conns = self.rooms.setdefault(room, {})
        if conn in conns:
            return False
        conns[conn] = (user, name)
        self.version += 1
        users = self.users.setdefault(room, {})
        users[user] = users.get(user, 0) + 1
        return users[user] == 1

    def leave(self, room: str, conn: str) -> bool:
        conns = self.rooms.get(room, {})
        entry = conns.pop(conn, None)
        if entry is None:
            return False
        self.version += 1
        users = self.users[room]
        users[entry[0]] -= 1
        last = users[entry[0]] <= 0
        if last:
            del users[entry[0]]
        if not conns:
            del self.rooms[room], self.users[room]
        return last

    def entries(self) -> Iterator[tuple[str, str]]:
        """(room␟conn, user␟name) for every connection held here."""
        for room, conns in self.rooms.items():
            for conn, (user, name) in conns.items():
                yield room + SEP + conn, user + SEP + name

    def start_typing(self, room: str, user: str, throttle: float) -> bool:
        return self.typing.start(room, user, throttle)


class RedisPresence:
    """Presence shared by every node through Redis (see the module docstring)."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str = "chatapi",
                 ttl: float = 30.0, node_id: str | None = None,
                 timeout: float = CALL_TIMEOUT_SECONDS) -> None:
        self.redis = redis
        self.node_id = node_id or uuid.uuid4().hex
        self.prefix = f"{prefix}:p:"
        # A dead node's users leave within `ttl`: its heartbeat lapses after 3/4 of it and
        # survivors look every 1/4.
        self.alive_ms = max(300, int(ttl * 750))
        self.interval = max(0.1, ttl / 4)
        self.timeout = timeout
        self.local = LocalView()
        self.on_left: OnLeft | None = None
        self._scripts = {name: redis.register_script(lua) for name, lua in (
            ("join", _JOIN), ("leave", _LEAVE), ("beat", _BEAT), ("sweep", _SWEEP),
            ("resync", _RESYNC), ("typing", _TYPING))}
        self._skip_until = 0.0
        self._healthy = True
        self._dirty = False
        self._registered = False
        self._loop_task: asyncio.Task[None] | None = None

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "chatapi", ttl: float = 30.0,
                 max_connections: int = MAX_CONNECTIONS) -> RedisPresence:
        return cls(connect(url, max_connections=max_connections, name=f"{prefix}:presence"),
                   prefix=prefix, ttl=ttl)

    # -- keys ------------------------------------------------------------------------------
    def _room(self, room: str, kind: str) -> str:
        return f"{self.prefix}room:{room}:{kind}"

    def _node(self, node: str | None = None) -> str:
        return f"{self.prefix}node:{node or self.node_id}"

    def _alive(self, node: str | None = None) -> str:
        return f"{self.prefix}alive:{node or self.node_id}"

    # -- the one way to talk to Redis -----------------------------------------------------
    async def _call(self, make: Callable[[], Awaitable[Any]]) -> Any:
        """Bounded by a timeout; after a failure, skip Redis briefly instead of waiting."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._skip_until:
            raise PresenceUnavailable("recently unreachable")
        try:
            async with asyncio.timeout(self.timeout):
                result = await make()
        except (RedisError, OSError, TimeoutError) as exc:
            self._skip_until = loop.time() + RETRY_AFTER_SECONDS
            self._dirty = True
            if self._healthy:
                self._healthy = False
                log.warning("presence: Redis unreachable (%s); answering from this node",
                            exc or type(exc).__name__)
            raise PresenceUnavailable(str(exc)) from exc
        if not self._healthy:
            self._healthy = True
            log.warning("presence: Redis reachable again")
        return result

    def _script(self, name: str, keys: list[str], args: list[Any]) -> Callable[[], Any]:
        script = self._scripts[name]
        return lambda: script(keys=keys, args=args)

    # -- Presence --------------------------------------------------------------------------
    async def join(self, room_id: str, user_id: str, conn_id: str, user_name: str = "") -> bool:
        first_here = self.local.join(room_id, user_id, conn_id, user_name)
        try:
            return bool(await self._call(self._script(
                "join", [self._node(), self.prefix + "nodes"],
                [self.prefix, self.node_id, room_id, conn_id, user_id, user_name])))
        except PresenceUnavailable:
            return first_here

    async def leave(self, room_id: str, user_id: str, conn_id: str) -> bool:
        last_here = self.local.leave(room_id, conn_id)
        try:
            return bool(await self._call(self._script(
                "leave", [self._node()], [self.prefix, room_id, conn_id])))
        except PresenceUnavailable:
            return last_here

    async def online_users(self, room_id: str) -> list[str]:
        try:
            return list(await self._call(
                lambda: self.redis.zrange(self._room(room_id, "order"), 0, -1)))
        except PresenceUnavailable:
            return list(self.local.users.get(room_id, {}))

    async def count_connections(self, room_id: str) -> int:
        try:
            return int(await self._call(lambda: self.redis.hlen(self._room(room_id, "conns"))))
        except PresenceUnavailable:
            return len(self.local.rooms.get(room_id, {}))

    async def start_typing(self, room_id: str, user_id: str, throttle: float) -> bool:
        try:
            return bool(await self._call(self._script(
                "typing", [self._room(room_id, "typing")],
                [user_id, int(throttle * 1000), TYPING_EXPIRE_MS])))
        except PresenceUnavailable:
            return self.local.start_typing(room_id, user_id, throttle)

    async def stop_typing(self, room_id: str, user_id: str) -> bool:
        here = self.local.typing.stop(room_id, user_id)
        try:
            return bool(await self._call(
                lambda: self.redis.hdel(self._room(room_id, "typing"), user_id)))
        except PresenceUnavailable:
            return here

    # -- liveness: heartbeat, sweep, resync -----------------------------------------------
    async def start(self, on_left: OnLeft) -> None:
        """Beat once (so no survivor sweeps us before our first connection), then loop."""
        self.on_left = on_left
        await self.beat()
        if self._loop_task is None:
            self._loop_task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        """Stop beating and hand this node's connections back (a clean exit)."""
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        try:
            await self._call(lambda: self.redis.delete(self._alive()))
            await self.sweep(self.node_id)
        except PresenceUnavailable:
            pass
        await self.redis.aclose()

    async def check(self) -> None:
        """Raise unless Redis answers a PING (bounded)."""
        async with asyncio.timeout(self.timeout):
            await self.redis.ping()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except Exception:
                log.exception("presence heartbeat failed")

    async def beat(self) -> None:
        """Refresh our heartbeat, re-register after a gap, sweep nodes that died."""
        try:
            previous = await self._call(self._script(
                "beat", [self._alive(), self.prefix + "nodes"], [self.node_id, self.alive_ms]))
            if self._dirty or (previous is None and self._registered):
                await self._resync()
            self._registered = True
            nodes = await self._call(lambda: self.redis.smembers(self.prefix + "nodes"))
            for node in nodes:
                if node != self.node_id:
                    await self.sweep(node)
        except PresenceUnavailable:
            pass

    async def _resync(self) -> None:
        self._dirty = False
        version = self.local.version
        args: list[Any] = [self.prefix, self.node_id]
        for field, value in self.local.entries():
            args += (field, value)
        left = await self._call(self._script(
            "resync", [self._node(), self.prefix + "nodes"], args))
        if self.local.version != version:
            self._dirty = True
        log.info("presence: re-registered %d connections", len(args) // 2 - 1)
        await self._announce(left)

    async def sweep(self, node: str) -> None:
        """Remove a node's connections if its heartbeat lapsed; announce who left with it."""
        left = await self._call(self._script(
            "sweep", [self._alive(node), self._node(node), self.prefix + "nodes"],
            [self.prefix, node]))
        if left:
            log.info("presence: swept node %s (%d users left)", node, len(left) // 3)
        await self._announce(left)

    async def _announce(self, triples: list[str]) -> None:
        if not triples or self.on_left is None:
            return
        for room, who, state in zip(triples[::3], triples[1::3], triples[2::3], strict=True):
            user, _, name = who.partition(SEP)
            try:
                await self.on_left(room, user, name, state == "typing")
            except Exception:
                log.exception("announcing user_left of %s in %s failed", user, room)
