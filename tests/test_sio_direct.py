"""Upgraded Socket.IO sockets switched to direct writes (`sio_transport`): engine.io's
writer, which no longer gets packets, is kept alive by the PINGs it still sends; acks and
events keep flowing over a connection that outlives several writer timeouts. (Sockets that
open on WebSocket have no engine.io writer at all: `tests/test_sio_lean.py`.)"""

from __future__ import annotations

import asyncio

import pytest

from app.keys import HUB
from app.realtime import sio_transport
from tests import test_realtime_helpers as rt
from tests.test_realtime_helpers import TIMEOUT, call

sio_client = rt.sio_client


@pytest.fixture
async def server(make_server):
    # engine.io's writer gives up after ping_interval + ping_timeout = 2 s without packets
    return await make_server(heartbeat_seconds=1.0)


async def test_live_socket_outlives_writer_timeouts(server, tenant, room, sio_client, api):
    # polling first, then the upgrade: the path where engine.io's own writer stays
    client = await sio_client(user_id="alice", transports=["polling", "websocket"])
    events: asyncio.Queue = asyncio.Queue()
    client.on("message", events.put_nowait)
    assert (await call(client, "join", {"room_id": room["id"]}))["status"] == "ok"
    (server_socket,) = server.app[HUB].sio.eio.sockets.values()
    for i in range(7):
        await asyncio.sleep(0.5)
        reply = await call(client, "message", {"room_id": room["id"], "content": f"m{i}"})
        assert reply["status"] == "ok"
        event = await asyncio.wait_for(events.get(), TIMEOUT)
        assert event["data"]["content"] == f"m{i}"
    assert client.connected
    direct = getattr(server_socket, sio_transport.DIRECT)
    assert direct.live and not isinstance(direct, sio_transport.LeanSocket)
