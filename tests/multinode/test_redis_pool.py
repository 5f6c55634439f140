"""Each Redis client of a node holds at most `redis_max_connections` sockets, however many
connections arrive at once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis

from tests.conftest import ADMIN_KEY
from tests.multinode.conftest import REDIS_DB, REDIS_HOST, REDIS_PORT, delete_prefix
from tests.test_realtime_helpers import TIMEOUT, ws_url

CAP = 4
CONNECTS = 500


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"pooltest{uuid.uuid4().hex[:10]}"
    yield name
    delete_prefix(redis.Redis(REDIS_HOST, REDIS_PORT, REDIS_DB, socket_timeout=2), name)


def held_by(prefix: str) -> Counter[str]:
    """Open Redis connections per client name, for the names this test's node uses."""
    admin = redis.Redis(REDIS_HOST, REDIS_PORT, socket_timeout=2)
    try:
        return Counter(c["name"] for c in admin.client_list()
                       if c["name"].startswith(prefix))
    finally:
        admin.close()


async def test_500_concurrent_connects_stay_within_the_pool_cap(make_server, prefix):
    server = await make_server(redis_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
                               redis_prefix=prefix, redis_max_connections=CAP)
    base = str(server.make_url("/api/v1"))
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        async with http.post(base + "/clients", json={"name": "pool"},
                             headers={"X-API-Key": ADMIN_KEY}) as resp:
            key = (await resp.json())["data"]["api_key"]
        async with http.post(base + "/rooms", json={"name": "r"},
                             headers={"X-API-Key": key}) as resp:
            room_id = (await resp.json())["data"]["id"]

        async def one(i: int) -> aiohttp.ClientWebSocketResponse:
            ws = await http.ws_connect(ws_url(server, room_id, token=key, user_id=f"u{i}"),
                                       timeout=aiohttp.ClientWSTimeout(ws_close=TIMEOUT))
            msg = await asyncio.wait_for(ws.receive_json(), 30)
            assert msg["type"] == "connection_status"
            return ws

        sockets = await asyncio.wait_for(
            asyncio.gather(*(one(i) for i in range(CONNECTS))), 90)
        held = held_by(prefix)
        await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in sockets)), 30)
    pools = {f"{prefix}:rl", f"{prefix}:presence", f"{prefix}:socketio"}
    assert set(held) == {*pools, f"{prefix}:socketio:sub"}, held
    assert all(held[name] <= CAP for name in pools), held
    assert held[f"{prefix}:socketio:sub"] == 1, held  # the pub/sub subscription
