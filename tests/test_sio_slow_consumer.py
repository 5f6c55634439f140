"""A Socket.IO client that stops reading is cut (its transport aborted, engine.io's disconnect
runs: `user_left`, session gone) instead of the server buffering for it without bound."""

from __future__ import annotations

import json

import pytest

from app.keys import HUB
from tests.test_realtime_helpers import StalledSocket, connect
from tests.test_ws_lifecycle import wait_until


@pytest.fixture
async def server(make_server):
    return await make_server(heartbeat_seconds=5, send_queue_bytes=32 * 1024)


async def _stalled_sio(server, key: str, room_id: str) -> StalledSocket:
    stalled = await StalledSocket.open(server, "/socket.io/?EIO=4&transport=websocket")
    assert (await stalled.frame())[1].startswith(b"0{")  # engine.io OPEN
    stalled.send_text("40" + json.dumps({"token": key, "user_id": "slow"}))
    assert (await stalled.frame())[1].startswith(b"40{")  # socket.io CONNECT
    stalled.send_text('420["join",' + json.dumps({"room_id": room_id}) + "]")
    while not (await stalled.frame())[1].startswith(b"430"):  # the join ack
        pass
    return stalled


async def test_slow_socketio_consumer_is_cut(server, http, tenant, room):
    key = tenant["api_key"]
    hub = server.app[HUB]
    stalled = await _stalled_sio(server, key, room["id"])
    assert "slow" in hub.sio_users.values()
    sender = await connect(http, server, room["id"], key, user_id="s")
    content = "x" * 4000
    sent = 0
    while "slow" in hub.sio_users.values() and sent < 3000:
        await sender.send("message", {"content": content})
        await sender.next("message_ack")
        sent += 1
    await wait_until(lambda: "slow" not in hub.sio_users.values())
    seen = [e for e in sender.seen if e["type"] == "user_left"]
    left = seen[0] if seen else await sender.next("user_left", user_id="slow")
    assert left["data"]["user_id"] == "slow" and left["room_id"] == room["id"]
    assert sent < 3000, "the stalled Socket.IO client was never cut"
    stalled.abort()
    await sender.close()
