"""Socket.IO connections opened on WebSocket run without engine.io's per-socket tasks
(`sio_transport.LeanSocket`); users must see the same Socket.IO."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import socketio

from app.keys import HUB
from tests import test_realtime_helpers as rt
from tests.conftest import ADMIN_KEY, Api
from tests.test_realtime_helpers import TIMEOUT, call

sio_client = rt.sio_client


@pytest.fixture
async def server(make_server):
    return await make_server(heartbeat_seconds=1.0)  # engine.io pings every second


async def test_idle_websocket_clients_hold_no_task_and_no_aiohttp_handler(server, room,
                                                                          sio_client):
    before = set(asyncio.all_tasks())
    clients = []
    for i in range(10):
        client = await sio_client(user_id=f"u{i}")
        assert (await call(client, "join", {"room_id": room["id"]}))["status"] == "ok"
        clients.append(client)
    await asyncio.sleep(0.2)
    server_side = rt.server_tasks_since(before)
    assert len(server_side) < 3, server_side  # one pinger, not tasks per socket
    assert len(server.runner.server._connections) < 5  # aiohttp let go of them
    reply = await call(clients[0], "message", {"room_id": room["id"], "content": "hi"})
    assert reply["status"] == "ok"


async def test_pings_keep_an_idle_connection_and_events_flow(server, room, sio_client):
    client = await sio_client(user_id="idle")
    events: asyncio.Queue = asyncio.Queue()
    client.on("message", events.put_nowait)
    assert (await call(client, "join", {"room_id": room["id"]}))["status"] == "ok"
    await asyncio.sleep(3.5)  # several ping cycles; a missed pong would close it by now
    assert client.connected
    await call(client, "message", {"room_id": room["id"], "content": "still here"})
    event = await asyncio.wait_for(events.get(), TIMEOUT)
    assert event["data"]["content"] == "still here"


async def test_a_sub_second_heartbeat_does_not_drop_socketio_clients(make_server):
    server = await make_server(heartbeat_seconds=0.5)
    client = socketio.AsyncClient(reconnection=False)
    async with aiohttp.ClientSession() as http:
        admin = Api(http, str(server.make_url("/api/v1")), ADMIN_KEY)
        status, body = await admin.call("POST", "/clients", {"name": "beat"})
        assert status == 201, body
        await asyncio.wait_for(client.connect(
            str(server.make_url("")), auth={"token": body["data"]["api_key"]},
            transports=["websocket"]), TIMEOUT)
        await asyncio.sleep(2.5)  # engine.io would have told the client "pingInterval: 0"
        assert client.connected
        await asyncio.wait_for(client.disconnect(), TIMEOUT)


async def test_server_side_disconnect_closes_the_websocket(server, room, sio_client):
    client = await sio_client(user_id="kicked")
    gone = asyncio.Event()
    client.on("disconnect", lambda *args: gone.set())
    hub = server.app[HUB]
    (sid,) = list(hub.sio_sessions)
    await hub.sio.disconnect(sid)
    await asyncio.wait_for(gone.wait(), TIMEOUT)
    assert not hub.sio.eio.sockets


async def test_client_disconnect_is_announced_and_forgotten(server, room, sio_client):
    stayer = await sio_client(user_id="stayer")
    left: asyncio.Queue = asyncio.Queue()
    stayer.on("user_left", left.put_nowait)
    assert (await call(stayer, "join", {"room_id": room["id"]}))["status"] == "ok"
    leaver = await sio_client(user_id="leaver")
    assert (await call(leaver, "join", {"room_id": room["id"]}))["status"] == "ok"
    await asyncio.wait_for(leaver.disconnect(), TIMEOUT)
    event = await asyncio.wait_for(left.get(), TIMEOUT)
    assert event["data"]["user_id"] == "leaver"
    hub = server.app[HUB]
    assert len(hub.sio_sessions) == 1
    assert len(hub.sio.eio.sockets) == 1
