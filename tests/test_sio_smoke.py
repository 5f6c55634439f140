from __future__ import annotations

import asyncio

import pytest
import socketio

from tests.test_realtime_helpers import connect

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage


async def test_sio_and_raw_share_room(server, http, api, tenant, room):
    raw = await connect(http, server, room["id"], tenant["api_key"], user_id="alice")
    client = socketio.AsyncClient(reconnection=False)
    got: asyncio.Queue = asyncio.Queue()
    client.on("message", lambda env: got.put_nowait(env))
    await asyncio.wait_for(client.connect(str(server.make_url("")), auth={
        "token": tenant["api_key"], "user_id": "bob"}, transports=["websocket"]), 5)
    ack = await asyncio.wait_for(client.call("join", {"room_id": room["id"]}), 5)
    assert ack["status"] == "ok", ack
    assert sorted(ack["data"]["online_users"]) == ["alice", "bob"]
    await raw.next("user_joined", user_id="bob")
    ack = await asyncio.wait_for(client.call("message", {"room_id": room["id"],
                                                         "content": "from sio"}), 5)
    assert ack["status"] == "ok", ack
    ev = await raw.next("message")
    assert ev["data"]["content"] == "from sio"
    env = await asyncio.wait_for(got.get(), 5)
    assert env["type"] == "message" and env["data"]["content"] == "from sio"
    await raw.send("message", {"content": "from raw"})
    env = await asyncio.wait_for(got.get(), 5)
    assert env["data"]["content"] == "from raw"
    ack_ev = await raw.next("message_ack")
    assert ack_ev["data"]["seq"] == 2
    await asyncio.wait_for(client.disconnect(), 5)
    await raw.next("user_left", user_id="bob")
    await raw.close()
