"""Liveness, slow consumers, rooms closed under live sockets, graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import socketio

from app.keys import HUB
from tests import test_realtime_helpers as rt
from tests.conftest import ADMIN_KEY
from tests.ports import free_port
from tests.test_realtime_helpers import TIMEOUT, StalledSocket, connect, ws_url

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage


async def wait_until(predicate, within: float = TIMEOUT) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


sio_client = rt.sio_client


@pytest.fixture
async def server(make_server, request):
    settings = {"heartbeat_seconds": 0.5, "send_queue_bytes": 32 * 1024,
                "slow_consumer_seconds": 0.3, **getattr(request, "param", {})}
    return await make_server(**settings)


async def test_silent_connection_is_dropped(server, http, tenant, room):
    bystander = await connect(http, server, room["id"], tenant["api_key"], user_id="b")
    ws = await http.ws_connect(ws_url(server, room["id"], token=tenant["api_key"],
                                      user_id="silent"), autoping=False)
    await bystander.next("user_joined", user_id="silent")
    started = time.monotonic()
    # never read, never answer pings
    await bystander.next("user_left", wait=4, user_id="silent")
    assert time.monotonic() - started < 3
    hub = server.app[HUB]
    assert all(c.user_id != "silent" for c in hub.raw.values())
    await asyncio.wait_for(ws.close(), TIMEOUT)
    await bystander.close()


async def test_answering_pings_keeps_a_connection(server, http, tenant, room):
    a = await connect(http, server, room["id"], tenant["api_key"], user_id="a")
    await a.silent("user_left", 1.6)  # receive() answers the server's pings
    assert len(server.app[HUB].raw) == 1
    await a.close()


# a long heartbeat: the stalled socket must be cut as slow, not dropped as silent. Send-side
# backpressure, not storage, so SQLite only: its one-at-a-time sends take ~4 s on SQLite but
# ~21 s on SecantusDB, past the 20 s heartbeat that would then drop the stalled socket first
@pytest.mark.parametrize("app_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("server", [{"heartbeat_seconds": 20.0}], indirect=True)
async def test_slow_consumer_is_cut_with_1013(server, http, api, tenant, room):
    bystander = await connect(http, server, room["id"], tenant["api_key"], user_id="b")
    stalled = await StalledSocket.open(
        server, f"/ws/{room['id']}?token={tenant['api_key']}&user_id=slow")
    hub = server.app[HUB]
    await wait_until(lambda: any(c.user_id == "slow" for c in hub.raw.values()))
    conn = next(c for c in hub.raw.values() if c.user_id == "slow")
    sender = await connect(http, server, room["id"], tenant["api_key"], user_id="s")
    content = "x" * 4000
    seen: list[int] = []

    async def read_bystander() -> None:  # a healthy reader keeps up
        while True:
            event = await bystander.recv()
            if event["type"] == "message":
                seen.append(event["data"]["seq"])
            if event["type"] == "user_left":
                return

    reading = asyncio.create_task(read_bystander())
    sent = 0
    while not conn.closing and sent < 2000:
        await sender.send("message", {"content": content})
        await sender.next("message_ack")
        sent += 1
    assert conn.closing, "the stalled socket was never cut"
    assert await stalled.close_code() == 1013
    await asyncio.wait_for(reading, TIMEOUT)
    assert seen == list(range(1, sent + 1))
    stalled.abort()
    await sender.close()
    await bystander.close()


async def test_deleted_room_closes_sockets_4002(server, http, api, tenant, room, sio_client):
    a = await connect(http, server, room["id"], tenant["api_key"], user_id="a")
    sio = await sio_client(user_id="c")
    errors: asyncio.Queue = asyncio.Queue()
    sio.on("error", errors.put_nowait)
    assert (await sio.call("join", {"room_id": room["id"]}, timeout=TIMEOUT))["status"] == "ok"
    status, _ = await api.call("DELETE", f"/rooms/{room['id']}")
    assert status == 200
    assert await a.closed() == 4002
    env = await asyncio.wait_for(errors.get(), TIMEOUT)
    assert env["data"]["code"] == 4002
    again = await connect(http, server, room["id"], tenant["api_key"], status=False)
    assert await again.closed() == 4002


async def test_deactivated_room_closes_sockets_4003(server, http, api, tenant, room):
    a = await connect(http, server, room["id"], tenant["api_key"], user_id="a")
    status, _ = await api.call("POST", f"/rooms/{room['id']}/deactivate")
    assert status == 200
    assert await a.closed() == 4003
    again = await connect(http, server, room["id"], tenant["api_key"], status=False)
    assert await again.closed() == 4003
    status, _ = await api.call("POST", f"/rooms/{room['id']}/activate")
    b = await connect(http, server, room["id"], tenant["api_key"], user_id="a")
    await b.close()




async def test_sigterm_closes_with_1001_and_exits_within_drain(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "CHATAPI_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
           "CHATAPI_ADMIN_KEY": ADMIN_KEY, "CHATAPI_DRAIN_SECONDS": "3",
           "CHATAPI_HOST": "127.0.0.1", "CHATAPI_PORT": str(port)}
    chatapi = Path(sys.executable).with_name("chatapi")
    proc = await asyncio.create_subprocess_exec(
        str(chatapi), "serve", env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            await _wait_healthy(http, base)
            key, room_id = await _tenant_and_room(http, base)
            url = f"ws://127.0.0.1:{port}/ws/{room_id}?token={key}&user_id="
            sockets = [await http.ws_connect(url + f"u{i}") for i in range(3)]
            for ws in sockets:
                first = json.loads((await ws.receive(timeout=TIMEOUT)).data)
                assert first["type"] == "connection_status"
            sio = socketio.AsyncClient(reconnection=False)
            gone = asyncio.Event()
            sio.on("disconnect", lambda *_: gone.set())
            await asyncio.wait_for(sio.connect(base, auth={"token": key},
                                               transports=["websocket"]), TIMEOUT)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            for ws in sockets:
                while True:
                    msg = await ws.receive(timeout=TIMEOUT)
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                        break
                assert ws.close_code == 1001
            await asyncio.wait_for(gone.wait(), TIMEOUT)
            assert await asyncio.wait_for(proc.wait(), 3 + 2) == 0
            assert time.monotonic() - started < 3 + 1
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _wait_healthy(http: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with http.get(base + "/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError("server did not start")


async def _tenant_and_room(http: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    async with http.post(base + "/api/v1/clients", json={"name": "t"},
                         headers={"X-API-Key": ADMIN_KEY}) as resp:
        key = (await resp.json())["data"]["api_key"]
    async with http.post(base + "/api/v1/rooms", json={"name": "r"},
                         headers={"X-API-Key": key}) as resp:
        room_id = (await resp.json())["data"]["id"]
    return key, room_id


@pytest.mark.parametrize("server", [{"heartbeat_seconds": 1.0, "slow_consumer_seconds": 5.0}],
                         indirect=True)
async def test_heartbeat_pings_are_spread_over_the_beat(server, http, tenant, room):
    clients = [await http.ws_connect(ws_url(server, room["id"], token=tenant["api_key"],
                                            user_id=f"p{i}"), autoping=False)
               for i in range(24)]
    loop = asyncio.get_running_loop()

    async def first_ping(ws) -> float:
        while True:
            msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
            if msg.type is aiohttp.WSMsgType.PING:
                await ws.pong(msg.data)
                return loop.time()

    started = loop.time()
    arrivals = await asyncio.gather(*(first_ping(ws) for ws in clients))
    assert max(arrivals) - started < 2.0  # everyone within the beat and a tick
    assert max(arrivals) - min(arrivals) > 0.3  # in more than one burst (ticks are 0.5 s)
    for ws in clients:
        await asyncio.wait_for(ws.close(), TIMEOUT)
