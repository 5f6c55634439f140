"""Per-credential token buckets (SPEC §3): an async interface and an in-memory implementation.

`take(key)` spends one token. A shared implementation (e.g. Redis) for many nodes only has
to implement `RateLimiter`; everything else reads the returned `Decision`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int  # bucket size (burst)
    remaining: int  # whole tokens left after this request
    reset_seconds: float  # until the bucket is full again
    retry_after: float  # until the next token (0 when allowed)

    def headers(self) -> dict[str, str]:
        """`X-RateLimit-*` (Reset in whole seconds until full), plus `Retry-After` if refused."""
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_seconds)),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return out


class RateLimiter(Protocol):
    async def take(self, key: str) -> Decision:
        """Spend one token from `key`'s bucket, or refuse."""


class MemoryRateLimiter:
    """Buckets in this process only: with several nodes each node limits on its own."""

    def __init__(self, rate_per_second: float, burst: int, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = max(rate_per_second, 1e-9)
        self.burst = max(int(burst), 1)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated)

    async def take(self, key: str) -> Decision:
        return self.take_now(key)

    def take_now(self, key: str) -> Decision:
        now = self.clock()
        tokens = self._refill(key, now)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._store(key, tokens, now)
        return Decision(
            allowed=allowed, limit=self.burst, remaining=int(tokens),
            reset_seconds=(self.burst - tokens) / self.rate,
            retry_after=0.0 if allowed else (1.0 - tokens) / self.rate,
        )

    def _refill(self, key: str, now: float) -> float:
        tokens, updated = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - updated) * self.rate)

    def _store(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._evict_full(now)
        self._buckets[key] = (tokens, now)

    def _evict_full(self, now: float) -> None:
        """Forget buckets that have refilled: they behave exactly like new ones."""
        full = [k for k, (t, u) in self._buckets.items()
                if t + (now - u) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:  # all busy: drop the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k][1])
            for key in oldest[: self.max_keys // 2]:
                del self._buckets[key]
