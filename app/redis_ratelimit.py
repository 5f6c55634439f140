"""Per-credential token buckets in Redis, shared by every node (chosen by `CHATAPI_REDIS_URL`).

One Lua script per request refills and spends the bucket atomically with Redis's clock, so
nodes with skewed clocks agree. Buckets expire once they would be full again.
Can't do: share limits while Redis is unreachable; each node then limits on its own (the
in-memory buckets) and says so once in the log.
"""

from __future__ import annotations

import asyncio
import logging

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from app.ratelimit import Decision, Limit, MemoryRateLimiter, decision, need_for
from app.realtime.redis_presence import MAX_CONNECTIONS, connect

log = logging.getLogger("chatapi.ratelimit")

TIMEOUT_SECONDS = 0.5
RETRY_AFTER_SECONDS = 1.0

# KEYS: bucket. ARGV: rate per second, burst, cost, need (what the bucket must hold).
# Returns allowed (0/1) and tokens left (text).
_TAKE = """
local t = redis.call('TIME')
local now = t[1] + t[2] / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local cost, need = tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= need then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens)}
"""


class RedisRateLimiter:
    """Token buckets in Redis; falls back to this node's buckets while Redis is away."""

    def __init__(self, redis: aioredis.Redis, rate_per_second: float, burst: int,
                 prefix: str = "chatapi", timeout: float = TIMEOUT_SECONDS) -> None:
        self.redis = redis
        self.rate = max(rate_per_second, 1e-9)
        self.burst = max(int(burst), 1)
        self.prefix = f"{prefix}:rl:"
        self.timeout = timeout
        self.fallback = MemoryRateLimiter(self.rate, self.burst)
        self._script = redis.register_script(_TAKE)
        self._skip_until = 0.0
        self._healthy = True

    @classmethod
    def from_url(cls, url: str, rate_per_second: float, burst: int, prefix: str = "chatapi",
                 max_connections: int = MAX_CONNECTIONS) -> RedisRateLimiter:
        return cls(connect(url, TIMEOUT_SECONDS, max_connections, name=f"{prefix}:rl"),
                   rate_per_second, burst, prefix)

    async def take(self, key: str, cost: float = 1.0, limit: Limit | None = None
                   ) -> Decision:
        loop = asyncio.get_running_loop()
        if loop.time() < self._skip_until:
            return self.fallback.take_now(key, cost, limit)
        rate, burst = (max(limit.rate, 1e-9), max(int(limit.burst), 1)) if limit \
            else (self.rate, self.burst)
        need = need_for(cost, burst)
        try:
            async with asyncio.timeout(self.timeout):
                allowed, left = await self._script(keys=[self.prefix + key],
                                                   args=[rate, burst, cost, need])
        except (RedisError, OSError, TimeoutError) as exc:
            self._skip_until = loop.time() + RETRY_AFTER_SECONDS
            if self._healthy:
                self._healthy = False
                log.warning("rate limits: Redis unreachable (%s); limiting per node",
                            exc or type(exc).__name__)
            return self.fallback.take_now(key, cost, limit)
        if not self._healthy:
            self._healthy = True
            log.warning("rate limits: shared through Redis again")
        return decision(bool(allowed), float(left), need, rate, burst)

    async def close(self) -> None:
        await self.redis.aclose()
