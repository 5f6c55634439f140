"""Per-credential token buckets (SPEC §3): an async interface and an in-memory implementation.

`take(key)` spends one token. A shared implementation (e.g. Redis) for many nodes only has
to implement `RateLimiter`; everything else reads the returned `Decision`.

`take(key, cost, limit)`: a request needs at least one token (or `cost`, if larger) and
spends `cost`; `cost=0` only asks whether the bucket is empty. `limit` gives this bucket
another rate and size than the limiter's (the tenant buckets above the credential ones).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.auth import Principal
    from app.config import Settings

TENANT_FACTOR = 5  # a tenant's default bucket: this many credentials' worth


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


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: int  # bucket size


class RateLimiter(Protocol):
    async def take(self, key: str, cost: float = 1.0, limit: Limit | None = None
                   ) -> Decision:
        """Spend `cost` tokens from `key`'s bucket, or refuse."""


def tenant_limit(settings: Settings) -> Limit:
    """The bucket every credential of one tenant shares (0 in a setting: the default)."""
    rate = settings.tenant_rate_limit_per_second or TENANT_FACTOR * settings.rate_limit_per_second
    burst = settings.tenant_rate_limit_burst or TENANT_FACTOR * settings.rate_limit_burst
    return Limit(rate, burst)


def tenant_key(principal: Principal | None) -> str | None:
    client = principal.client if principal is not None else None
    return f"tenant:{client['id']}" if client is not None else None


async def charge_all(limiter: RateLimiter, charges: list[tuple[str, Limit | None]],
                     cost: float = 1.0) -> Decision:
    """Charge every bucket in order; the first refusal, else the first bucket's decision.
    Stops at a refusal, so a refused request spends nothing from the buckets after it."""
    first: Decision | None = None
    for key, limit in charges:
        decision = await limiter.take(key, cost, limit)
        if not decision.allowed:
            return decision
        first = first or decision
    assert first is not None
    return first


def principal_charges(principal: Principal, settings: Settings
                      ) -> list[tuple[str, Limit | None]]:
    """The credential's bucket, then its tenant's."""
    charges: list[tuple[str, Limit | None]] = [(principal.rate_key, None)]
    key = tenant_key(principal)
    if key is not None:
        charges.append((key, tenant_limit(settings)))
    return charges


class MemoryRateLimiter:
    """Buckets in this process only: with several nodes each node limits on its own."""

    def __init__(self, rate_per_second: float, burst: int, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = max(rate_per_second, 1e-9)
        self.burst = max(int(burst), 1)
        self.max_keys = max_keys
        self.clock = clock
        self.default = Limit(self.rate, self.burst)
        # key -> (tokens, updated, rate, burst)
        self._buckets: dict[str, tuple[float, float, float, int]] = {}

    async def take(self, key: str, cost: float = 1.0, limit: Limit | None = None
                   ) -> Decision:
        return self.take_now(key, cost, limit)

    def take_now(self, key: str, cost: float = 1.0, limit: Limit | None = None) -> Decision:
        rate, burst = _bounds(limit or self.default)
        now = self.clock()
        tokens = self._refill(key, now, rate, burst)
        need = need_for(cost, burst)
        allowed = tokens >= need
        if allowed:
            tokens -= cost
        self._store(key, (tokens, now, rate, burst))
        return decision(allowed, tokens, need, rate, burst)

    def _refill(self, key: str, now: float, rate: float, burst: int) -> float:
        tokens, updated, _, _ = self._buckets.get(key, (float(burst), now, rate, burst))
        return min(float(burst), tokens + (now - updated) * rate)

    def _store(self, key: str, state: tuple[float, float, float, int]) -> None:
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._evict_full(state[1])
        self._buckets[key] = state

    def _evict_full(self, now: float) -> None:
        """Forget buckets that have refilled: they behave exactly like new ones."""
        full = [k for k, (t, u, rate, burst) in self._buckets.items()
                if t + (now - u) * rate >= burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:  # all busy: drop the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k][1])
            for key in oldest[: self.max_keys // 2]:
                del self._buckets[key]


def _bounds(limit: Limit) -> tuple[float, int]:
    return max(limit.rate, 1e-9), max(int(limit.burst), 1)


def need_for(cost: float, burst: int) -> float:
    """What the bucket must hold: one token, or the cost; never more than it can hold (a
    bigger cost then leaves the bucket in debt)."""
    return min(max(cost, 1.0), float(burst))


def decision(allowed: bool, tokens: float, need: float, rate: float, burst: int) -> Decision:
    return Decision(
        allowed=allowed, limit=burst, remaining=max(0, math.floor(tokens)),
        reset_seconds=(burst - tokens) / rate,
        retry_after=0.0 if allowed else (need - tokens) / rate,
    )
