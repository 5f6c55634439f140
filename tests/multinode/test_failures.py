"""Failures: a node killed with SIGKILL, Redis stopped and started again (SPEC §1, §6)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from tests.multinode.conftest import Cluster, Node, free_port, new_room, raw, tenant

TTL = 3.0  # the cluster's presence_ttl_seconds


async def until(check: Any, wait: float, step: float = 0.1) -> float:
    """Poll `check()` (sync or async) until truthy; the seconds it took."""
    started = time.monotonic()
    async with asyncio.timeout(wait):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return time.monotonic() - started
            await asyncio.sleep(step)


async def test_kill_9_users_leave_and_clients_recover_on_the_survivor(
        cluster: Cluster, http: aiohttp.ClientSession) -> None:
    a, b = cluster.start(2)
    api = await tenant(http, b)
    room = await new_room(api, b)
    observer = await raw(http, b, room, api.key, "observer")
    victim = await raw(http, a, room, api.key, "victim")
    await observer.next("user_joined", user_id="victim")
    first = await api.send(b, room, "observer", "before")
    assert (await victim.next("message"))["data"]["seq"] == first["seq"]
    await victim.send("typing", {"is_typing": True})
    assert (await observer.next("typing", user_id="victim"))["data"]["is_typing"] is True

    a.proc.kill()
    killed = time.monotonic()
    missed = [await api.send(b, room, "observer", f"missed {i}") for i in range(3)]
    # the victim was typing when its node died: `false` first, as for any closed typist
    stopped = await observer.next("typing", wait=TTL + 5, user_id="victim")
    assert stopped["data"]["is_typing"] is False
    await observer.next("user_left", wait=1, user_id="victim")
    assert time.monotonic() - killed < TTL + 2
    await observer.silent("user_left", 0.5)
    _, body = await api.call(b, "GET", f"/rooms/{room}/online")
    assert body["data"]["online_users"] == ["observer"]

    back = await asyncio.wait_for(http.ws_connect(b.ws_url(
        room, token=api.key, user_id="victim", last_seq=first["seq"])), 5)
    replay = [await recv(back) for _ in range(4)]
    assert [e["data"]["seq"] for e in replay[:3]] == [m["seq"] for m in missed]
    assert replay[3]["type"] == "connection_status"
    assert replay[3]["data"]["recovered"] is True and replay[3]["data"]["missed"] == 3
    await observer.next("user_joined", user_id="victim")
    await back.close()


async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    return dict(await asyncio.wait_for(ws.receive_json(), 5))


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Any]:
    """A private redis-server (never the shared one) that the test may stop and restart."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while not _pings(port):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop() -> None:
        procs[-1].terminate()
        procs[-1].wait(10)

    start()
    yield port, start, stop
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def _pings(port: int) -> bool:
    try:
        return bool(redis.Redis("127.0.0.1", port, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


async def test_redis_stopped_and_started_again(
        cluster: Cluster, http: aiohttp.ClientSession, sio: Any, own_redis: Any) -> None:
    port, start_redis, stop_redis = own_redis
    cluster.redis_url = f"redis://127.0.0.1:{port}/0"
    a, b = cluster.start(2)
    api = await tenant(http, a)
    room = await new_room(api, a)
    watcher = await raw(http, b, room, api.key, "watcher")
    watcher_sio = await sio().connect(b, api.key, "watcher2")
    await watcher_sio.call("join", {"room_id": room})
    first = await api.send(a, room, "sender", "before the outage")
    assert (await watcher.next("message"))["data"]["seq"] == first["seq"]

    stop_redis()
    await until(lambda: a.status("/readyz") == 503 and b.status("/readyz") == 503, 5)
    during = await api.send(a, room, "sender", "during the outage")  # stored all the same
    late = await raw(http, a, room, api.key, "late")  # presence fails soft: sockets work

    start_redis()
    await until(lambda: a.status("/readyz") == 200 and b.status("/readyz") == 200, 10)
    await until(lambda: online_on(api, a, room, {"watcher", "watcher2", "late"}), 10)
    await until(lambda: delivered(api, a, room, watcher), 15, step=0)
    await watcher_sio.wait("message", content="after the outage")
    assert a.proc.poll() is None and b.proc.poll() is None

    again = await asyncio.wait_for(http.ws_connect(b.ws_url(
        room, token=api.key, user_id="watcher", last_seq=first["seq"])), 5)
    replay = await recv(again)
    assert replay["type"] == "message" and replay["data"]["seq"] == during["seq"]
    await again.close()
    await late.close()


async def online_on(api: Any, node: Node, room: str, users: set[str]) -> bool:
    _, body = await api.call(node, "GET", f"/rooms/{room}/online")
    return users <= set(body["data"]["online_users"])


async def delivered(api: Any, node: Node, room: str, watcher: Any) -> bool:
    """Send one message through `node`; True once `watcher` (on the other node) gets one."""
    await api.send(node, room, "sender", "after the outage")
    try:
        await watcher.next("message", 0.5, content="after the outage")
    except TimeoutError:
        return False
    return True
