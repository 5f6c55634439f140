"""Socket.IO (SPEC §5): auth, join/leave with acks and last_seq, many rooms, typing,
get_online_users, message, mark_read, ping; same envelopes as raw; raw + Socket.IO mixed."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid

import jwt
import pytest
import socketio

from tests import test_realtime_helpers as rt
from tests.test_realtime_helpers import TIMEOUT, call, connect, sio_refusal

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage

sio_client = rt.sio_client


@pytest.fixture
async def server(make_server, request):
    return await make_server(typing_throttle_seconds=0.4, typing_timeout_seconds=0.6,
                             heartbeat_seconds=getattr(request, "param", 20.0))


def collector(client: socketio.AsyncClient, *events: str) -> asyncio.Queue:
    queue: asyncio.Queue = asyncio.Queue()
    for event in events:
        client.on(event, queue.put_nowait)
    return queue


async def next_event(queue: asyncio.Queue, event_type: str, **match) -> dict:
    async def find() -> dict:
        while True:
            env = await queue.get()
            if env["type"] == event_type and all(env["data"].get(k) == v
                                                 for k, v in match.items()):
                return env
    return await asyncio.wait_for(find(), TIMEOUT)


@pytest.mark.parametrize("token", ["", "sk_test_1234567890abcdef", "a.b.c"])
async def test_bad_credential_is_refused_with_4001(server, token):
    error = await sio_refusal(server, token)
    assert error["code"] == 4001 and error["message"] == "Unauthorized"


async def test_join_ack_errors(server, api, tenant, room, sio_client):
    client = await sio_client(user_id="u1")
    ack = await call(client, "join", {"room_id": "nope"})
    assert ack == {"status": "error", "error": {"code": 4002, "message": "Room not found"}}
    assert (await call(client, "join", {"room_id": str(uuid.uuid4())}))["error"]["code"] == 4002
    _, private = await api.call("POST", "/rooms", {"name": "p", "is_private": True})
    ack = await call(client, "join", {"room_id": private["data"]["id"]})
    assert ack["status"] == "error" and ack["error"]["code"] == 4003
    ack = await call(client, "typing", {"room_id": room["id"], "is_typing": True})
    assert ack["status"] == "error" and ack["error"]["code"] == "NOT_IN_ROOM"
    ack = await call(client, "join", "not an object")
    assert ack["status"] == "error" and ack["error"]["code"] == "VALIDATION_ERROR"
    assert (await call(client, "ping"))["status"] == "ok"


async def test_many_rooms_one_connection(server, api, tenant, room, sio_client):
    _, second = await api.call("POST", "/rooms", {"name": "second"})
    client = await sio_client(user_id="multi", user_name="Multi")
    got = collector(client, "message", "user_joined", "user_left", "typing", "read_receipt")
    for room_id in (room["id"], second["data"]["id"]):
        ack = await call(client, "join", {"room_id": room_id})
        assert ack["status"] == "ok" and ack["data"]["room_id"] == room_id
        assert ack["data"]["online_users"] == ["multi"]
        assert ack["data"]["connection_id"] == client.get_sid()
    ack = await call(client, "message", {"room_id": second["data"]["id"], "content": "two"})
    assert ack["status"] == "ok" and ack["data"]["content"] == "two"
    assert ack["data"]["room_id"] == second["data"]["id"] and ack["data"]["seq"] == 1
    env = await next_event(got, "message")
    assert set(env) == {"type", "data", "timestamp", "room_id"}
    assert env["room_id"] == second["data"]["id"]
    ack = await call(client, "mark_read", {"room_id": second["data"]["id"], "seq": 1})
    assert ack["status"] == "ok" and ack["data"]["seq"] == 1
    await next_event(got, "read_receipt", user_id="multi")
    ack = await call(client, "get_online_users", {"room_id": room["id"]})
    assert ack["data"]["online_users"] == ["multi"]
    ack = await call(client, "leave", {"room_id": room["id"]})
    assert ack["status"] == "ok"
    assert (await call(client, "leave", {"room_id": room["id"]}))["status"] == "error"
    _, online = await api.call("GET", f"/rooms/{room['id']}/online")
    assert online["data"]["online_users"] == []
    _, online = await api.call("GET", f"/rooms/{second['data']['id']}/online")
    assert online["data"]["online_users"] == ["multi"]


async def test_raw_and_sio_see_each_other(server, http, api, tenant, room, sio_client):
    raw = await connect(http, server, room["id"], tenant["api_key"], user_id="raw",
                        user_name="Raw")
    client = await sio_client(user_id="sio", user_name="Sio")
    got = collector(client, "message", "user_joined", "user_left", "typing")
    await call(client, "join", {"room_id": room["id"]})
    joined = await raw.next("user_joined", user_id="sio")
    assert joined["data"]["user_name"] == "Sio"
    await call(client, "typing", {"room_id": room["id"], "is_typing": True})
    assert (await raw.next("typing", user_id="sio"))["data"]["is_typing"] is True
    await raw.send("typing", {"is_typing": True})
    env = await next_event(got, "typing", user_id="raw")
    assert env["data"]["is_typing"] is True and env["room_id"] == room["id"]
    await raw.send("message", {"content": "hi sio"})
    env = await next_event(got, "message")
    assert env["data"]["content"] == "hi sio" and env["data"]["sender_id"] == "raw"
    await call(client, "message", {"room_id": room["id"], "content": "hi raw"})
    assert (await raw.next("message", content="hi raw"))["data"]["sender_id"] == "sio"
    # typing is never echoed to the typist's own connections
    own = [e for e in list(got._queue) if e["type"] == "typing" and e["data"]["user_id"] == "sio"]
    assert own == []
    await raw.close()
    assert (await next_event(got, "typing", user_id="raw"))["data"]["is_typing"] is False
    await next_event(got, "user_left", user_id="raw")
    await asyncio.wait_for(client.disconnect(), TIMEOUT)
    _, online = await api.call("GET", f"/rooms/{room['id']}/online")
    assert online["data"]["online_users"] == []


async def test_sio_second_connection_is_not_a_new_join(server, http, tenant, room, sio_client):
    raw = await connect(http, server, room["id"], tenant["api_key"], user_id="watch")
    first = await sio_client(user_id="u")
    await call(first, "join", {"room_id": room["id"]})
    await raw.next("user_joined", user_id="u")
    second = await sio_client(user_id="u")
    await call(second, "join", {"room_id": room["id"]})
    await raw.silent("user_joined", 0.3)
    await asyncio.wait_for(first.disconnect(), TIMEOUT)
    await raw.silent("user_left", 0.3)
    await asyncio.wait_for(second.disconnect(), TIMEOUT)
    await raw.next("user_left", user_id="u")
    await raw.close()


async def test_sio_recovery_with_last_seq(server, api, tenant, room, sio_client):
    for i in range(5):
        await api.call("POST", f"/rooms/{room['id']}/messages",
                       {"sender_id": "s", "content": f"m{i}"})
    client = await sio_client(user_id="late")
    got = collector(client, "message")
    ack = await call(client, "join", {"room_id": room["id"], "last_seq": 2})
    assert ack["status"] == "ok"
    assert ack["data"]["recovered"] is True and ack["data"]["missed"] == 3
    replayed = [got.get_nowait()["data"]["seq"] for _ in range(got.qsize())]
    assert replayed == [3, 4, 5]
    await api.call("POST", f"/rooms/{room['id']}/messages", {"sender_id": "s", "content": "x"})
    assert (await next_event(got, "message"))["data"]["seq"] == 6


async def test_sio_user_token_identity(server, tenant, room, sio_client):
    token = jwt.encode({"sub": "tok", "name": "Token User", "iss": tenant["id"],
                        "exp": int(time.time()) + 600}, tenant["token_secret"],
                       algorithm="HS256")
    client = await sio_client(token=token)
    ack = await call(client, "join", {"room_id": room["id"]})
    assert ack["data"]["user_id"] == "tok"
    ack = await call(client, "message", {"room_id": room["id"], "content": "signed"})
    assert ack["data"]["sender_id"] == "tok" and ack["data"]["sender_name"] == "Token User"
    bad = socketio.AsyncClient(reconnection=False)
    errors: asyncio.Queue = asyncio.Queue()
    bad.on("connect_error", errors.put_nowait)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await asyncio.wait_for(bad.connect(str(server.make_url("")), auth={
            "token": token, "user_id": "someone-else"}, transports=["websocket"]), TIMEOUT)
    assert (await asyncio.wait_for(errors.get(), TIMEOUT))["code"] == 4003


# engine.io's polling client only finishes disconnecting when a long poll returns
@pytest.mark.parametrize("server", [1.0], indirect=True)
async def test_sio_polling_transport_gets_events(server, api, tenant, room, sio_client):
    client = await sio_client(user_id="poller", transports=["polling"])
    got = collector(client, "message")
    assert (await call(client, "join", {"room_id": room["id"]}))["status"] == "ok"
    await api.call("POST", f"/rooms/{room['id']}/messages", {"sender_id": "s", "content": "p"})
    assert (await next_event(got, "message"))["data"]["content"] == "p"


async def test_disconnect_during_join_leaves_no_ghost(server, room, tenant, api) -> None:
    """A client that drops while its `join` is still in progress is not online forever."""
    from app.keys import HUB

    hub = server.app[HUB]
    storage = hub.storage
    real_get = storage.get_participant

    def slow_get(room_id, user_id):  # slow down only the hub's lookup, after admission
        if sys._getframe(1).f_code.co_name != "sio_join":
            return real_get(room_id, user_id)

        async def slow():
            await asyncio.sleep(0.3)
            return await real_get(room_id, user_id)
        return slow()

    storage.get_participant = slow_get
    try:
        client = socketio.AsyncClient(reconnection=False)
        await asyncio.wait_for(client.connect(
            str(server.make_url("")), auth={"token": tenant["api_key"], "user_id": "ghost"},
            transports=["websocket"]), TIMEOUT)
        await client.emit("join", {"room_id": room["id"]})
        await asyncio.sleep(0.15)  # admitted; now inside the join's lookup
        await asyncio.wait_for(client.disconnect(), TIMEOUT)
        await asyncio.sleep(0.5)
    finally:
        storage.get_participant = real_get
    status, body = await api.call("GET", f"/rooms/{room['id']}/online")
    assert status == 200 and body["data"]["online_users"] == []
    assert room["id"] not in hub.local_rooms and not hub.sio_buffers
