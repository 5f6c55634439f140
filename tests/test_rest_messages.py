"""Messages and notifications over real HTTP (SPEC §3 Messages, Notifications)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from app.services.rooms import RoomService
from tests.conftest import ADMIN_KEY, Api, ServerFactory
from tests.test_rest_clients import bearer, pyjwt_token

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage


async def send(api: Api, room_id: str, content: str, **extra: Any) -> dict[str, Any]:
    body = {"sender_id": "u1", "content": content, **extra}
    status, resp = await api.call("POST", f"/rooms/{room_id}/messages", body)
    assert status == 201, resp
    return resp["data"]


async def history(api: Api, room_id: str, query: str = "") -> dict[str, Any]:
    status, body = await api.call("GET", f"/rooms/{room_id}/messages{query}")
    assert status == 200, body
    return body


async def test_seed_demo_request_exactly(http: aiohttp.ClientSession, base_url: str,
                                         tenant: dict, room: dict) -> None:
    async with http.post(
        f"{base_url}/api/v1/rooms/{room['id']}/messages/",
        headers={"Content-Type": "application/json", "X-API-Key": tenant["api_key"]},
        data='{"sender_id":"user123","sender_name":"John Doe","content":"Hello!",'
             '"message_type":"text"}',
    ) as resp:
        assert resp.status == 201
        body = await resp.json()
    msg = body["data"]
    assert body["status"] == "success" and body["timestamp"].endswith("Z")
    assert (msg["sender_id"], msg["sender_name"], msg["content"]) == (
        "user123", "John Doe", "Hello!")
    assert msg["message_type"] == "text" and msg["seq"] == 1 and msg["room_id"] == room["id"]
    assert msg["is_deleted"] is False and msg["edited_at"] is None


async def test_message_shape_and_room_counters(api: Api, room: dict) -> None:
    msg = await send(api, room["id"], "hello", sender_name="U One", message_type="custom_kind",
                     meta={"k": [1, 2]}, client_msg_id="c-1")
    expected = {"id", "room_id", "client_id", "seq", "sender_id", "sender_name", "content",
                "message_type", "meta", "client_msg_id", "created_at", "updated_at",
                "edited_at", "edit_reason", "is_deleted", "deleted_at", "deleted_by"}
    assert set(msg) == expected
    assert msg["message_type"] == "custom_kind" and msg["meta"] == {"k": [1, 2]}
    status, body = await api.call("GET", f"/rooms/{room['id']}")
    assert body["data"]["message_count"] == 1 and body["data"]["last_seq"] == 1
    assert body["data"]["last_message_at"] == msg["created_at"]
    status, body = await api.call("GET", f"/messages/{msg['id']}")
    assert status == 200 and body["data"] == msg


async def test_unicode_round_trips(api: Api, room: dict) -> None:
    texts = ["emoji 😀👍🏽🇫🇷", "中文 日本語 한국어", "RTL שלום مرحبا", "<b>html</b> & 'q'",
             "zero\u200bwidth", "multi\nline\ttab", "\U0001d518\U0001d52b math"]
    ids = [(await send(api, room["id"], t, sender_name="Zoë 🚀"))["id"] for t in texts]
    for msg_id, text in zip(ids, texts, strict=True):
        _, body = await api.call("GET", f"/messages/{msg_id}")
        assert body["data"]["content"] == text and body["data"]["sender_name"] == "Zoë 🚀"


async def test_history_filters(api: Api, room: dict) -> None:
    rid = room["id"]
    await send(api, rid, "apple pie", sender_id="ann")
    await send(api, rid, "Banana split", sender_id="bob", message_type="image")
    middle = await send(api, rid, "cherry APPLE", sender_id="ann")
    await asyncio.sleep(0.01)
    last = await send(api, rid, "date", sender_id="bob")
    body = await history(api, rid)
    assert [m["content"] for m in body["data"]] == [
        "date", "cherry APPLE", "Banana split", "apple pie"]
    assert body["pagination"] == {"skip": 0, "limit": 50, "total": 4, "has_more": False}
    assert [m["seq"] for m in (await history(api, rid, "?sort=created_at"))["data"]] == [1, 2, 3, 4]
    assert [m["seq"] for m in (await history(api, rid, "?sort=-seq"))["data"]] == [4, 3, 2, 1]
    assert [m["seq"] for m in (await history(api, rid, "?sender_id=bob"))["data"]] == [4, 2]
    assert [m["seq"] for m in (await history(api, rid, "?message_type=image"))["data"]] == [2]
    assert [m["seq"] for m in (await history(api, rid, "?search=apple"))["data"]] == [3, 1]
    page = await history(api, rid, "?limit=2&skip=1")
    assert [m["seq"] for m in page["data"]] == [3, 2] and page["pagination"]["has_more"] is True
    after = await history(api, rid, f"?created_after={middle['created_at']}")
    assert [m["seq"] for m in after["data"]] == [4]
    before = await history(api, rid, f"?created_before={last['created_at']}&sort=seq")
    assert [m["seq"] for m in before["data"]] == [1, 2, 3]


async def test_seq_cursors(api: Api, room: dict) -> None:
    rid = room["id"]
    for i in range(10):
        await send(api, rid, f"m{i}")
    catch_up = await history(api, rid, "?after_seq=3&limit=4")
    assert [m["seq"] for m in catch_up["data"]] == [4, 5, 6, 7]  # ascending: contiguous
    assert catch_up["pagination"]["has_more"] is True
    nxt = await history(api, rid, "?after_seq=7&limit=4")
    assert [m["seq"] for m in nxt["data"]] == [8, 9, 10]
    scroll = await history(api, rid, "?before_seq=8&limit=3")
    assert [m["seq"] for m in scroll["data"]] == [7, 6, 5]  # newest first for scroll-back
    both = await history(api, rid, "?after_seq=2&before_seq=6&sort=-seq")
    assert [m["seq"] for m in both["data"]] == [5, 4, 3]


async def test_edit_delete_restore(api: Api, room: dict) -> None:
    msg = await send(api, room["id"], "first")
    status, body = await api.call("PUT", f"/messages/{msg['id']}",
                                  {"content": "second", "edit_reason": "typo"})
    assert status == 200
    edited = body["data"]
    assert edited["content"] == "second" and edited["edit_reason"] == "typo"
    assert edited["edited_at"] and edited["seq"] == msg["seq"]
    status, body = await api.call("DELETE", f"/messages/{msg['id']}?user_id=moderator")
    assert status == 200 and body["data"]["is_deleted"] is True
    assert body["data"]["deleted_by"] == "moderator" and body["data"]["deleted_at"]
    assert (await history(api, room["id"]))["data"] == []
    with_deleted = await history(api, room["id"], "?include_deleted=true")
    assert [m["id"] for m in with_deleted["data"]] == [msg["id"]]
    status, body = await api.call("GET", f"/rooms/{room['id']}")
    assert body["data"]["message_count"] == 0
    status, body = await api.call("POST", f"/messages/{msg['id']}/restore")
    assert status == 200 and body["data"]["is_deleted"] is False
    assert body["data"]["content"] == "second"
    assert [m["id"] for m in (await history(api, room["id"]))["data"]] == [msg["id"]]


async def test_user_token_edits_only_own(api: Api, tenant: dict, room: dict) -> None:
    theirs = await send(api, room["id"], "not yours", sender_id="other")
    user = bearer(api, pyjwt_token(tenant, "kim"))
    _, body = await user.call("POST", f"/rooms/{room['id']}/messages", {"content": "mine"})
    mine = body["data"]
    for method, path, payload in [("PUT", f"/messages/{theirs['id']}", {"content": "x"}),
                                  ("DELETE", f"/messages/{theirs['id']}", None),
                                  ("POST", f"/messages/{theirs['id']}/restore", None)]:
        status, resp = await user.call(method, path, payload)
        assert (status, resp["error_code"]) == (403, "UNAUTHORIZED_EDIT"), method
    status, resp = await user.call("DELETE", f"/messages/{theirs['id']}?user_id=other")
    assert (status, resp["error_code"]) == (403, "INSUFFICIENT_PERMISSIONS")
    status, resp = await user.call("PUT", f"/messages/{mine['id']}", {"content": "edited"})
    assert status == 200 and resp["data"]["content"] == "edited"
    status, resp = await user.call("DELETE", f"/messages/{mine['id']}")
    assert status == 200 and resp["data"]["deleted_by"] == "kim"
    status, resp = await api.call("GET", f"/messages/{theirs['id']}")
    assert resp["data"]["content"] == "not yours" and resp["data"]["is_deleted"] is False


async def test_idempotent_client_msg_id(api: Api, room: dict) -> None:
    path = f"/rooms/{room['id']}/messages"
    payload = {"sender_id": "u1", "content": "once", "client_msg_id": "retry-1"}
    status, first = await api.call("POST", path, payload)
    assert status == 201
    status, again = await api.call("POST", path, payload)
    assert status == 200 and again["data"] == first["data"]
    status, other = await api.call("POST", path, {**payload, "sender_id": "u2"})
    assert status == 201 and other["data"]["id"] != first["data"]["id"]
    body = await history(api, room["id"])
    assert body["pagination"]["total"] == 2
    assert sorted(m["sender_id"] for m in body["data"]) == ["u1", "u2"]


async def test_concurrent_sends_get_distinct_increasing_seq(api: Api, room: dict) -> None:
    results = await asyncio.gather(*(
        api.call("POST", f"/rooms/{room['id']}/messages", {"sender_id": f"u{i}", "content": str(i)})
        for i in range(50)))
    assert all(status == 201 for status, _ in results)
    seqs = sorted(body["data"]["seq"] for _, body in results)
    assert seqs == list(range(1, 51))
    listed = await history(api, room["id"], "?sort=seq&limit=100")
    assert [m["seq"] for m in listed["data"]] == list(range(1, 51))


async def test_data_survives_restart(make_server: ServerFactory,
                                     http: aiohttp.ClientSession) -> None:
    first = await make_server()
    admin = Api(http, str(first.make_url("/api/v1")), ADMIN_KEY)
    _, client = await admin.call("POST", "/clients", {"name": "durable"})
    api = admin.as_key(client["data"]["api_key"])
    _, room = await api.call("POST", "/rooms", {"name": "keep"})
    msg = await send(api, room["data"]["id"], "still here 🎉")
    await first.close()
    second = await make_server()
    api2 = Api(http, str(second.make_url("/api/v1")), client["data"]["api_key"])
    status, body = await api2.call("GET", f"/messages/{msg['id']}")
    assert status == 200 and body["data"]["content"] == "still here 🎉"
    nxt = await send(api2, room["data"]["id"], "after restart")
    assert nxt["seq"] == msg["seq"] + 1


async def test_notifications(api: Api, room: dict) -> None:
    status, body = await api.call("POST", "/notifications", {
        "title": "Hi", "content": "to the room", "room_id": room["id"], "priority": "high",
        "action_url": "https://example.com/x", "meta": {"a": 1}})
    assert status == 201
    note = body["data"]
    assert note["room_id"] == room["id"] and note["priority"] == "high"
    assert note["recipients_online"] == 0 and note["delivered_connections"] == 0
    assert note["status"] in ("delivered", "undelivered", "pending")
    status, body = await api.call("POST", "/notifications",
                                  {"title": "DM", "content": "to users", "user_ids": ["a", "b"]})
    assert status == 201 and body["data"]["user_ids"] == ["a", "b"]
    assert body["data"]["priority"] == "normal"
    status, body = await api.call("GET", f"/notifications/{note['id']}")
    assert status == 200 and body["data"]["title"] == "Hi"
    status, body = await api.call("GET", "/notifications")
    assert body["pagination"]["total"] == 2 and body["data"][0]["title"] == "DM"
    status, body = await api.call("GET", f"/notifications?room_id={room['id']}")
    assert [n["title"] for n in body["data"]] == ["Hi"]
    status, body = await api.call("GET", "/notifications?user_id=b")
    assert [n["title"] for n in body["data"]] == ["DM"]
    status, body = await api.call("GET", f"/notifications?status={note['status']}&limit=1")
    assert len(body["data"]) == 1
    status, body = await api.call("POST", "/notifications", {"title": "x", "content": "y"})
    assert (status, body["error_code"]) == (422, "VALIDATION_ERROR")


async def test_user_token_reads_only_its_own_notifications(api: Api, tenant: dict,
                                                           room: dict) -> None:
    _, private = await api.call("POST", "/rooms", {"name": "staff", "is_private": True})
    _, to_bob = await api.call("POST", "/notifications",
                               {"title": "DM", "content": "for bob", "user_ids": ["bob"]})
    _, to_staff = await api.call("POST", "/notifications", {
        "title": "staff", "content": "private", "room_id": private["data"]["id"]})
    _, to_room = await api.call("POST", "/notifications",
                                {"title": "all", "content": "public", "room_id": room["id"]})
    alice = bearer(api, pyjwt_token(tenant, "alice"))
    bob = bearer(api, pyjwt_token(tenant, "bob"))
    for note in (to_bob, to_staff):
        status, body = await alice.call("GET", f"/notifications/{note['data']['id']}")
        assert (status, body["error_code"]) == (404, "NOTIFICATION_NOT_FOUND")
    status, body = await bob.call("GET", f"/notifications/{to_bob['data']['id']}")
    assert status == 200 and body["data"]["content"] == "for bob"
    status, body = await alice.call("GET", f"/notifications/{to_room['data']['id']}")
    assert status == 200 and body["data"]["content"] == "public"


async def test_messages_stored_metric_counts_new_messages_only(
        http: aiohttp.ClientSession, base_url: str, api: Api, room: dict) -> None:
    async def stored() -> float:
        async with http.get(base_url + "/metrics") as resp:
            text = await resp.text()
        return float(next(line.split()[-1] for line in text.splitlines()
                          if line.startswith("chatapi_messages_stored_total ")))

    before = await stored()
    await send(api, room["id"], "counted", client_msg_id="m-1")
    status, _ = await api.call("POST", f"/rooms/{room['id']}/messages",
                               {"sender_id": "u1", "content": "counted", "client_msg_id": "m-1"})
    assert status == 200
    assert await stored() == before + 1


async def test_room_deleted_during_a_send_is_404(api, room, monkeypatch) -> None:
    """The room vanishes between the access check and the write: 404, nothing stored."""
    access = RoomService.access

    async def access_then_delete(self, principal, room_id):
        found = await access(self, principal, room_id)
        await self.storage.delete_room(principal.client_id, room_id)
        return found

    monkeypatch.setattr(RoomService, "access", access_then_delete)
    status, body = await api.call("POST", f"/rooms/{room['id']}/messages",
                                  {"sender_id": "u1", "content": "too late"})
    assert (status, body["error_code"]) == (404, "ROOM_NOT_FOUND")
    monkeypatch.undo()
    status, body = await api.call("GET", f"/rooms/{room['id']}")
    assert (status, body["error_code"]) == (404, "ROOM_NOT_FOUND")
