"""Every server → client event of the seed and SPEC §4 over raw WebSocket, with the envelope."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests import test_realtime_helpers as rt
from tests.test_realtime_helpers import connect

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage

sio_client = rt.sio_client

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture
async def server(make_server):
    return await make_server(typing_throttle_seconds=0.4, typing_timeout_seconds=0.6)


def assert_envelope(event: dict, event_type: str, room_id: str | None) -> dict:
    assert set(event) == {"type", "data", "timestamp", "room_id"}, event
    assert event["type"] == event_type
    assert TS.match(event["timestamp"])
    assert event["room_id"] == room_id
    return event["data"]


async def send_rest(api, room_id: str, sender: str, content: str, **extra) -> dict:
    status, body = await api.call("POST", f"/rooms/{room_id}/messages",
                                  {"sender_id": sender, "content": content, **extra})
    assert status in (200, 201), body
    return body["data"]


async def test_connection_status_is_first_with_all_fields(server, http, tenant, room):
    a = await connect(http, server, room["id"], tenant["api_key"], status=False,
                      user_id="user_123", user_name="John Doe")
    data = assert_envelope(await a.recv(), "connection_status", room["id"])
    assert data == {
        "status": "connected", "user_id": "user_123", "room_id": room["id"],
        "online_users": ["user_123"], "total_participants": 1,
        "connection_id": data["connection_id"], "last_seq": 0, "recovered": False,
        "missed": 0}
    await a.send("get_online_users")
    again = assert_envelope(await a.next("connection_status"), "connection_status", room["id"])
    assert again["online_users"] == ["user_123"]
    await a.close()


async def test_anonymous_identity_with_client_key(server, http, tenant, room):
    a = await connect(http, server, room["id"], tenant["api_key"])
    assert a.seen[0]["data"]["user_id"].startswith("anon-")
    await a.close()


@pytest.mark.parametrize("via", ["rest", "raw", "sio"])
async def test_message_reaches_everyone_whatever_the_source(via, server, http, api, tenant,
                                                            room, sio_client):
    a = await connect(http, server, room["id"], tenant["api_key"], user_id="alice",
                      user_name="Alice")
    b = await connect(http, server, room["id"], tenant["api_key"], user_id="bob")
    meta = {"mentions": ["bob"], "priority": "normal"}
    if via == "rest":
        await send_rest(api, room["id"], "alice", "Hello everyone! 👋", sender_name="Alice",
                        meta=meta, client_msg_id="c1")
    elif via == "raw":
        await a.send("message", {"content": "Hello everyone! 👋", "meta": meta,
                                 "client_msg_id": "c1"})
    else:
        sio = await sio_client(user_id="alice", user_name="Alice")
        ack = await rt.call(sio, "join", {"room_id": room["id"]})
        assert ack["status"] == "ok"
        ack = await rt.call(sio, "message", {"room_id": room["id"], "content": "Hello everyone! 👋",
                                         "meta": meta, "client_msg_id": "c1"})
        assert ack["status"] == "ok" and ack["data"]["seq"] == 1, ack
    for client in (a, b):
        data = assert_envelope(await client.next("message"), "message", room["id"])
        for key in ("id", "sender_id", "sender_name", "content", "message_type", "meta",
                    "created_at", "room_id", "seq", "client_msg_id"):
            assert key in data
        assert data["sender_id"] == "alice" and data["sender_name"] == "Alice"
        assert data["content"] == "Hello everyone! 👋" and data["meta"] == meta
        assert data["seq"] == 1 and data["client_msg_id"] == "c1"
        assert data["message_type"] == "text"
    if via == "raw":
        ack = assert_envelope(await a.next("message_ack"), "message_ack", room["id"])
        assert set(ack) == {"client_msg_id", "id", "seq", "created_at"}
        assert ack["client_msg_id"] == "c1" and ack["seq"] == 1
    await a.close()
    await b.close()


async def test_ws_message_is_idempotent_by_client_msg_id(server, http, api, tenant, room):
    a = await connect(http, server, room["id"], tenant["api_key"], user_id="alice")
    await a.send("message", {"content": "once", "client_msg_id": "same"})
    first = (await a.next("message_ack"))["data"]
    await a.send("message", {"content": "once", "client_msg_id": "same"})
    second = (await a.next("message_ack"))["data"]
    assert first == second
    assert [e["type"] for e in a.seen].count("message") == 1
    status, body = await api.call("GET", f"/rooms/{room['id']}/messages")
    assert status == 200 and len(body["data"]) == 1
    await a.close()


async def test_ws_message_errors_match_rest(server, http, api, tenant, room):
    a = await connect(http, server, room["id"], tenant["api_key"], user_id="alice")
    await a.send("message", {"content": "x" * 10_001, "client_msg_id": "too-long-1"})
    error = assert_envelope(await a.next("error"), "error", room["id"])
    assert error["code"] == "CONTENT_TOO_LONG"
    assert error["details"] == {"max_length": 10_000, "current_length": 10_001}
    assert error["client_msg_id"] == "too-long-1"
    await a.send("message", {"content": ""})
    assert (await a.next("error"))["data"]["code"] == "VALIDATION_ERROR"
    await a.send("message", {"content": "hi", "sender_id": "mallory"})
    assert (await a.next("error"))["data"]["code"] == "INSUFFICIENT_PERMISSIONS"
    _status, body = await api.call("GET", f"/rooms/{room['id']}/messages")
    assert body["data"] == []
    await a.close()


async def test_edit_delete_restore_are_broadcast(server, http, api, tenant, room):
    a = await connect(http, server, room["id"], tenant["api_key"], user_id="alice")
    message = await send_rest(api, room["id"], "alice", "typo")
    await a.next("message")
    status, _ = await api.call("PUT", f"/messages/{message['id']}",
                               {"content": "Updated message content! 🎉",
                                "edit_reason": "Fixed typo"})
    assert status == 200
    data = assert_envelope(await a.next("message_updated"), "message_updated", room["id"])
    assert data["id"] == message["id"] and data["content"] == "Updated message content! 🎉"
    assert data["edit_reason"] == "Fixed typo" and TS.match(data["edited_at"])
    status, _ = await api.call("DELETE", f"/messages/{message['id']}?user_id=alice")
    assert status == 200
    data = assert_envelope(await a.next("message_deleted"), "message_deleted", room["id"])
    assert data["id"] == message["id"] and data["deleted_by"] == "alice"
    assert TS.match(data["deleted_at"])
    status, _ = await api.call("POST", f"/messages/{message['id']}/restore")
    assert status == 200
    data = assert_envelope(await a.next("message_restored"), "message_restored", room["id"])
    assert data["id"] == message["id"] and data["content"] == "Updated message content! 🎉"
    await a.close()


async def test_presence_first_and_last_connection(server, http, api, tenant, room):
    watcher = await connect(http, server, room["id"], tenant["api_key"], user_id="w")
    tab1 = await connect(http, server, room["id"], tenant["api_key"], user_id="jane",
                         user_name="Jane Smith")
    data = assert_envelope(await watcher.next("user_joined"), "user_joined", room["id"])
    assert data["user_id"] == "jane" and data["user_name"] == "Jane Smith"
    assert TS.match(data["joined_at"]) and data["meta"] == {}
    tab2 = await connect(http, server, room["id"], tenant["api_key"], user_id="jane",
                         user_name="Jane Smith")
    await watcher.silent("user_joined")
    _, body = await api.call("GET", f"/rooms/{room['id']}/online")
    assert sorted(body["data"]["online_users"]) == ["jane", "w"]
    assert body["data"]["total_online"] == 2
    await tab1.close()
    await watcher.silent("user_left")
    await tab2.close()
    data = assert_envelope(await watcher.next("user_left"), "user_left", room["id"])
    assert data == {"user_id": "jane", "user_name": "Jane Smith",
                    "left_at": data["left_at"]}
    _status, body = await api.call("GET", f"/rooms/{room['id']}/online")
    assert body["data"] == {"online_users": ["w"], "total_online": 1}
    await watcher.close()


async def test_typing_relay_throttle_and_timeout(server, http, tenant, room):
    typist = await connect(http, server, room["id"], tenant["api_key"], user_id="john",
                           user_name="John Doe")
    other_tab = await connect(http, server, room["id"], tenant["api_key"], user_id="john")
    reader = await connect(http, server, room["id"], tenant["api_key"], user_id="r")
    await typist.send("typing", {"is_typing": True})
    data = assert_envelope(await reader.next("typing"), "typing", room["id"])
    assert data == {"user_id": "john", "user_name": "John Doe", "is_typing": True}
    await typist.send("typing", {"is_typing": True})  # inside the throttle window
    await typist.send("ping")
    await typist.next("pong")
    await reader.silent("typing", 0.2)
    # no refresh: the server says false by itself after the timeout
    data = (await reader.next("typing", 2.0))["data"]
    assert data["is_typing"] is False
    await typist.silent("typing", 0.1)
    await other_tab.silent("typing", 0.1)
    await typist.close()
    await other_tab.close()
    await reader.close()


async def test_typing_false_on_close_and_explicit(server, http, tenant, room):
    typist = await connect(http, server, room["id"], tenant["api_key"], user_id="john")
    reader = await connect(http, server, room["id"], tenant["api_key"], user_id="r")
    await typist.send("typing", {"is_typing": True})
    assert (await reader.next("typing"))["data"]["is_typing"] is True
    await typist.send("typing", {"is_typing": False})
    assert (await reader.next("typing"))["data"]["is_typing"] is False
    await asyncio.sleep(0.45)
    await typist.send("typing", {"is_typing": True})
    assert (await reader.next("typing"))["data"]["is_typing"] is True
    await typist.close()
    assert (await reader.next("typing"))["data"]["is_typing"] is False
    await reader.next("user_left")
    await reader.close()


async def test_ping_pong_and_read_receipt(server, http, api, tenant, room):
    a = await connect(http, server, room["id"], tenant["api_key"], user_id="alice")
    b = await connect(http, server, room["id"], tenant["api_key"], user_id="bob")
    await a.send("ping")
    data = assert_envelope(await a.next("pong"), "pong", room["id"])
    assert TS.match(data["server_time"])
    await send_rest(api, room["id"], "alice", "read me")
    await a.send("mark_read", {"seq": 1})
    for client in (a, b):
        data = assert_envelope(await client.next("read_receipt"), "read_receipt", room["id"])
        assert data["user_id"] == "alice" and data["seq"] == 1 and TS.match(data["read_at"])
    _status, body = await api.call("GET", f"/rooms/{room['id']}/participants")
    marks = {p["user_id"]: p["last_read_seq"] for p in body["data"]}
    assert marks["alice"] == 1 and marks["bob"] == 0
    await a.close()
    await b.close()


async def test_notifications_to_room_and_to_users(server, http, api, tenant, room, sio_client):
    status, other = await api.call("POST", "/rooms", {"name": "elsewhere"})
    a = await connect(http, server, room["id"], tenant["api_key"], user_id="alice")
    b = await connect(http, server, other["data"]["id"], tenant["api_key"], user_id="bob")
    sio = await sio_client(user_id="bob")
    got: asyncio.Queue = asyncio.Queue()
    sio.on("notification", got.put_nowait)
    note = {"title": "New Message", "content": "You have a new message from John Doe",
            "action_url": f"/rooms/{room['id']}", "priority": "normal", "icon": "message"}
    status, body = await api.call("POST", "/notifications", {**note, "room_id": room["id"]})
    assert status == 201, body
    assert body["data"]["recipients_online"] == 1
    assert body["data"]["delivered_connections"] == 1
    data = assert_envelope(await a.next("notification"), "notification", room["id"])
    for key, value in note.items():
        assert data[key] == value
    assert data["id"] == body["data"]["id"]
    await b.silent("notification", 0.2)
    status, body = await api.call("POST", "/notifications", {**note, "user_ids": ["bob"]})
    assert status == 201, body
    assert body["data"]["recipients_online"] == 1
    assert body["data"]["delivered_connections"] == 2
    data = assert_envelope(await b.next("notification"), "notification", other["data"]["id"])
    assert data["title"] == "New Message"
    env = await asyncio.wait_for(got.get(), 5)
    assert env["type"] == "notification" and env["room_id"] is None
    await a.silent("notification", 0.2)
    status, listed = await api.call("GET", "/notifications?user_id=bob")
    assert status == 200 and listed["data"][0]["id"] == body["data"]["id"]
    await a.close()
    await b.close()


async def test_online_endpoint_is_live_truth(server, http, api, tenant, room):
    _, body = await api.call("GET", f"/rooms/{room['id']}/online")
    assert body["data"] == {"online_users": [], "total_online": 0}
    a = await connect(http, server, room["id"], tenant["api_key"], user_id="alice")
    _, body = await api.call("GET", f"/rooms/{room['id']}/online")
    assert body["data"] == {"online_users": ["alice"], "total_online": 1}
    _, body = await api.call("GET", f"/rooms/{room['id']}")
    assert body["data"]["participant_count"] == 1
    await a.close()
    for _ in range(50):
        _status, body = await api.call("GET", f"/rooms/{room['id']}/online")
        if body["data"]["total_online"] == 0:
            break
        await asyncio.sleep(0.02)
    assert body["data"] == {"online_users": [], "total_online": 0}
