from __future__ import annotations

import pytest

from tests.test_realtime_helpers import connect

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage


async def test_connect_and_broadcast(server, http, api, tenant, room):
    a = await connect(http, server, room["id"], tenant["api_key"], user_id="alice",
                      user_name="Alice")
    status = a.seen[-1]
    assert status["data"]["online_users"] == ["alice"]
    b = await connect(http, server, room["id"], tenant["api_key"], user_id="bob")
    joined = await a.next("user_joined")
    assert joined["data"]["user_id"] == "bob"
    code, body = await api.call("POST", f"/rooms/{room['id']}/messages",
                                {"sender_id": "alice", "content": "hi 👋"})
    assert code == 201, body
    for c in (a, b):
        ev = await c.next("message")
        assert ev["data"]["content"] == "hi 👋"
        assert ev["room_id"] == room["id"]
    await b.close()
    left = await a.next("user_left")
    assert left["data"]["user_id"] == "bob"
    await a.close()
