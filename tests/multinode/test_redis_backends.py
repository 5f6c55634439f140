"""RedisPresence and RedisRateLimiter in-process against the real Redis (database 13)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis

from app.realtime.redis_presence import RedisPresence, connect
from app.redis_ratelimit import RedisRateLimiter
from tests.multinode.conftest import REDIS_DB, REDIS_HOST, REDIS_PORT, delete_prefix, free_port

URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    delete_prefix(redis.Redis(REDIS_HOST, REDIS_PORT, REDIS_DB, socket_timeout=2), name)


@pytest.fixture
async def nodes(prefix: str) -> AsyncIterator[Callable[..., RedisPresence]]:
    made: list[RedisPresence] = []

    def make(**options: Any) -> RedisPresence:
        made.append(RedisPresence(connect(URL), prefix=prefix, **options))
        return made[-1]

    yield make
    for node in made:
        await node.redis.aclose()


async def test_first_and_last_are_decided_once_across_nodes(nodes: Any) -> None:
    one, two = nodes(), nodes()
    firsts = await asyncio.gather(*(
        node.join("r", "ann", f"c{i}", "Ann") for i, node in enumerate([one, two] * 10)))
    assert firsts.count(True) == 1
    assert await two.count_connections("r") == 20
    lasts = await asyncio.gather(*(
        node.leave("r", "ann", f"c{i}") for i, node in enumerate([one, two] * 10)))
    assert lasts.count(True) == 1
    assert await one.online_users("r") == []


async def test_online_users_in_arrival_order_and_typing_throttle(nodes: Any) -> None:
    one, two = nodes(), nodes()
    for user in ("zed", "amy", "bob"):
        await one.join("r", user, f"{user}-1")
    await two.join("r", "amy", "amy-2")
    assert await two.online_users("r") == ["zed", "amy", "bob"]
    assert await one.start_typing("r", "amy", 5.0) is True
    assert await two.start_typing("r", "amy", 5.0) is False  # throttled on every node
    assert await two.stop_typing("r", "amy") is True
    assert await one.stop_typing("r", "amy") is False


async def test_a_dead_node_is_swept_once_with_its_users_names(nodes: Any) -> None:
    dead, one, two = nodes(ttl=0.4), nodes(), nodes()
    left: list[tuple[str, str, str, bool]] = []

    async def on_left(room: str, user: str, name: str, typing: bool) -> None:
        left.append((room, user, name, typing))

    one.on_left = two.on_left = on_left
    await dead.beat()
    await dead.join("r", "ann", "a1", "Ann")
    await dead.join("r", "bob", "b1", "Bob")
    await dead.join("r", "cy", "c1", "Cy")
    await one.join("r", "bob", "b2", "Bob")  # bob stays: his other tab is alive
    assert await dead.start_typing("r", "cy", 5.0) is True  # cy dies mid-sentence
    await asyncio.gather(one.sweep(dead.node_id), two.sweep(dead.node_id))
    assert left == []  # still beating
    await asyncio.sleep(0.45)
    await asyncio.gather(one.sweep(dead.node_id), two.sweep(dead.node_id))
    assert sorted(left) == [("r", "ann", "Ann", False), ("r", "cy", "Cy", True)]
    assert await two.online_users("r") == ["bob"]
    assert await one.start_typing("r", "cy", 5.0) is True  # the mark went with cy


async def test_unreachable_redis_degrades_to_this_node(prefix: str) -> None:
    node = RedisPresence(connect(f"redis://127.0.0.1:{free_port()}/0"), prefix=prefix)
    started = time.monotonic()
    assert await node.join("r", "ann", "a1") is True
    assert await node.join("r", "ann", "a2") is False
    assert await node.online_users("r") == ["ann"]
    assert await node.count_connections("r") == 2
    assert await node.start_typing("r", "ann", 2.0) is True
    assert await node.leave("r", "ann", "a1") is False
    assert await node.leave("r", "ann", "a2") is True
    await node.beat()
    assert time.monotonic() - started < 3
    with pytest.raises((redis.RedisError, OSError)):
        await node.check()
    await node.redis.aclose()


async def test_rate_limit_buckets_are_shared(prefix: str) -> None:
    one = RedisRateLimiter(connect(URL), 0.01, 3, prefix)
    two = RedisRateLimiter(connect(URL), 0.01, 3, prefix)
    decisions = [await (one, two)[i % 2].take("cred") for i in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1].headers()
    assert refused["X-RateLimit-Limit"] == "3" and int(refused["Retry-After"]) >= 1
    assert (await one.take("other")).allowed
    await one.close()
    await two.close()


async def test_rate_limits_fall_back_to_this_node_when_redis_is_away(prefix: str) -> None:
    limiter = RedisRateLimiter(connect(f"redis://127.0.0.1:{free_port()}/0"), 0.01, 2, prefix)
    assert [(await limiter.take("k")).allowed for _ in range(3)] == [True, True, False]
    await limiter.close()
