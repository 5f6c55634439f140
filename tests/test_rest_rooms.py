"""Rooms, participants and presence over real HTTP (SPEC §3 Rooms)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Api
from tests.test_rest_clients import bearer, pyjwt_token

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage


async def make_room(api: Api, name: str, **extra: Any) -> dict[str, Any]:
    status, body = await api.call("POST", "/rooms", {"name": name, **extra})
    assert status == 201, body
    return body["data"]


async def test_create_room_shape(api: Api, tenant: dict) -> None:
    room = await make_room(api, "Café ☕", description="desc", is_private=True,
                           meta={"topic": "coffee", "n": [1, {"a": None}]})
    assert room["name"] == "Café ☕" and room["description"] == "desc"
    assert room["is_private"] is True and room["is_active"] is True
    assert room["client_id"] == tenant["id"] and room["meta"]["n"][1] == {"a": None}
    assert (room["participant_count"], room["message_count"], room["last_seq"]) == (0, 0, 0)
    assert room["last_message_at"] is None and room["created_at"].endswith("Z")


async def test_get_update_room(api: Api, room: dict) -> None:
    status, body = await api.call("GET", f"/rooms/{room['id']}")
    assert status == 200 and body["data"]["id"] == room["id"]
    status, body = await api.call("PUT", f"/rooms/{room['id']}",
                                  {"name": "renamed", "meta": {"x": 1}, "is_private": True})
    assert status == 200
    assert body["data"]["name"] == "renamed" and body["data"]["meta"] == {"x": 1}
    assert body["data"]["is_private"] is True
    status, body = await api.call("GET", f"/rooms/{room['id']}/")
    assert body["data"]["name"] == "renamed"


async def test_list_rooms_filters_sort_pagination(api: Api) -> None:
    for name in ("bravo", "alpha", "charlie", "delta"):
        await make_room(api, name, description=f"about {name}")
        await asyncio.sleep(0.003)  # created_at has millisecond resolution; ties sort by id
    status, body = await api.call("GET", "/rooms?sort=name&limit=2")
    assert status == 200
    assert [r["name"] for r in body["data"]] == ["alpha", "bravo"]
    assert body["pagination"] == {"skip": 0, "limit": 2, "total": 4, "has_more": True}
    status, body = await api.call("GET", "/rooms?sort=name&limit=2&skip=2")
    assert [r["name"] for r in body["data"]] == ["charlie", "delta"]
    assert body["pagination"]["has_more"] is False
    status, body = await api.call("GET", "/rooms?sort=-name")
    assert [r["name"] for r in body["data"]] == ["delta", "charlie", "bravo", "alpha"]
    status, body = await api.call("GET", "/rooms?sort=created_at")
    assert [r["name"] for r in body["data"]] == ["bravo", "alpha", "charlie", "delta"]
    status, body = await api.call("GET", "/rooms")
    assert body["data"][0]["name"] == "delta"  # default -created_at
    status, body = await api.call("GET", "/rooms?search=ARLI")
    assert [r["name"] for r in body["data"]] == ["charlie"]
    status, body = await api.call("GET", "/rooms?search=about%20al")
    assert [r["name"] for r in body["data"]] == ["alpha"]


async def test_deactivate_activate_and_is_active_filter(api: Api, room: dict) -> None:
    other = await make_room(api, "other")
    status, body = await api.call("POST", f"/rooms/{room['id']}/deactivate")
    assert status == 200 and body["data"]["is_active"] is False
    status, body = await api.call("GET", "/rooms?is_active=false")
    assert [r["id"] for r in body["data"]] == [room["id"]]
    status, body = await api.call("GET", "/rooms?is_active=true")
    assert [r["id"] for r in body["data"]] == [other["id"]]
    status, body = await api.call("POST", f"/rooms/{room['id']}/messages",
                                  {"sender_id": "u", "content": "hi"})
    assert (status, body["error_code"]) == (409, "ROOM_INACTIVE")
    status, body = await api.call("POST", f"/rooms/{room['id']}/activate/")
    assert status == 200 and body["data"]["is_active"] is True
    status, _ = await api.call("POST", f"/rooms/{room['id']}/messages",
                               {"sender_id": "u", "content": "hi"})
    assert status == 201


async def test_delete_room_removes_everything(api: Api, room: dict) -> None:
    await api.call("POST", f"/rooms/{room['id']}/join", {"user_id": "u1"})
    await api.call("POST", f"/rooms/{room['id']}/messages", {"sender_id": "u1", "content": "x"})
    status, msgs = await api.call("GET", f"/rooms/{room['id']}/messages")
    message_id = msgs["data"][0]["id"]
    status, body = await api.call("DELETE", f"/rooms/{room['id']}")
    assert (status, body["status"]) == (200, "success") and body["message"]
    for path in (f"/rooms/{room['id']}", f"/rooms/{room['id']}/messages",
                 f"/rooms/{room['id']}/participants"):
        status, body = await api.call("GET", path)
        assert (status, body["error_code"]) == (404, "ROOM_NOT_FOUND")
    status, body = await api.call("GET", f"/messages/{message_id}")
    assert (status, body["error_code"]) == (404, "MESSAGE_NOT_FOUND")
    status, body = await api.call("DELETE", f"/rooms/{room['id']}")
    assert (status, body["error_code"]) == (404, "ROOM_NOT_FOUND")


async def test_join_leave_participants(api: Api, room: dict) -> None:
    path = f"/rooms/{room['id']}"
    status, body = await api.call("POST", f"{path}/join",
                                  {"user_id": "ann", "user_name": "Ann", "meta": {"role": "op"}})
    assert status == 201
    assert body["data"]["user_id"] == "ann" and body["data"]["last_read_seq"] == 0
    status, body = await api.call("POST", f"{path}/join", {"user_id": "ann"})
    assert (status, body["error_code"]) == (409, "ALREADY_IN_ROOM")
    await api.call("POST", f"{path}/join", {"user_id": "ben"})
    status, body = await api.call("GET", f"{path}/participants")
    assert status == 200 and [p["user_id"] for p in body["data"]] == ["ann", "ben"]
    assert body["data"][0] == {**body["data"][0], "user_name": "Ann", "meta": {"role": "op"}}
    assert body["pagination"]["total"] == 2
    status, body = await api.call("GET", f"{path}/participants?limit=1&skip=1")
    assert [p["user_id"] for p in body["data"]] == ["ben"]
    status, body = await api.call("GET", path)
    assert body["data"]["participant_count"] == 2
    status, body = await api.call("POST", f"{path}/leave", {"user_id": "ann"})
    assert (status, body["status"]) == (200, "success")
    status, body = await api.call("POST", f"{path}/leave", {"user_id": "ann"})
    assert (status, body["error_code"]) == (409, "NOT_IN_ROOM")
    status, body = await api.call("POST", f"{path}/join", {})
    assert (status, body["error_code"]) == (422, "VALIDATION_ERROR")


async def test_online_is_truthful_when_nobody_connected(api: Api, room: dict) -> None:
    status, body = await api.call("GET", f"/rooms/{room['id']}/online")
    assert status == 200 and body["status"] == "success"
    assert body["data"] == {"online_users": [], "total_online": 0}


async def test_tenant_isolation(admin: Api, api: Api, room: dict) -> None:
    _, other = await admin.call("POST", "/clients", {"name": "other-tenant"})
    intruder = api.as_key(other["data"]["api_key"])
    rid = room["id"]
    for method, path, body in [
        ("GET", f"/rooms/{rid}", None), ("PUT", f"/rooms/{rid}", {"name": "x"}),
        ("DELETE", f"/rooms/{rid}", None), ("POST", f"/rooms/{rid}/deactivate", None),
        ("POST", f"/rooms/{rid}/join", {"user_id": "x"}),
        ("GET", f"/rooms/{rid}/participants", None), ("GET", f"/rooms/{rid}/online", None),
        ("GET", f"/rooms/{rid}/messages", None),
        ("POST", f"/rooms/{rid}/messages", {"sender_id": "x", "content": "x"}),
    ]:
        status, resp = await intruder.call(method, path, body)
        assert (status, resp["error_code"]) == (404, "ROOM_NOT_FOUND"), (method, path)
    _, sent = await api.call("POST", f"/rooms/{rid}/messages", {"sender_id": "a", "content": "s"})
    status, resp = await intruder.call("GET", f"/messages/{sent['data']['id']}")
    assert (status, resp["error_code"]) == (404, "MESSAGE_NOT_FOUND")
    status, resp = await intruder.call("GET", "/rooms")
    assert status == 200 and resp["data"] == []
    status, resp = await api.call("GET", f"/rooms/{rid}")
    assert status == 200 and resp["data"]["name"] == room["name"]


async def test_user_token_room_visibility(api: Api, tenant: dict, room: dict) -> None:
    private = await make_room(api, "secret", is_private=True)
    member_room = await make_room(api, "club", is_private=True)
    await api.call("POST", f"/rooms/{member_room['id']}/join", {"user_id": "gus"})
    user = bearer(api, pyjwt_token(tenant, "gus"))
    status, body = await user.call("GET", "/rooms?sort=name")
    assert status == 200
    assert [r["name"] for r in body["data"]] == ["club", "lobby"]
    status, body = await user.call("GET", f"/rooms/{private['id']}")
    assert (status, body["error_code"]) == (403, "ROOM_ACCESS_DENIED")
    status, body = await user.call("POST", f"/rooms/{private['id']}/messages", {"content": "x"})
    assert (status, body["error_code"]) == (403, "ROOM_ACCESS_DENIED")
    status, body = await user.call("POST", f"/rooms/{private['id']}/join", {})
    assert (status, body["error_code"]) == (403, "ROOM_ACCESS_DENIED")


async def test_user_token_joins_only_itself(api: Api, tenant: dict, room: dict) -> None:
    user = bearer(api, pyjwt_token(tenant, "hal", name="Hal"))
    path = f"/rooms/{room['id']}"
    status, body = await user.call("POST", f"{path}/join", {"user_id": "ivy"})
    assert (status, body["error_code"]) == (403, "INSUFFICIENT_PERMISSIONS")
    status, body = await user.call("POST", f"{path}/join", {})
    assert status == 201 and body["data"]["user_id"] == "hal"
    assert body["data"]["user_name"] == "Hal"
    status, body = await user.call("POST", f"{path}/leave", {"user_id": "ivy"})
    assert (status, body["error_code"]) == (403, "INSUFFICIENT_PERMISSIONS")
    status, body = await user.call("POST", f"{path}/leave", {})
    assert status == 200


async def test_user_token_cannot_administer_rooms(api: Api, tenant: dict, room: dict) -> None:
    user = bearer(api, pyjwt_token(tenant, "joe"))
    for method, path, body in [("POST", "/rooms", {"name": "mine"}),
                               ("PUT", f"/rooms/{room['id']}", {"name": "x"}),
                               ("DELETE", f"/rooms/{room['id']}", None),
                               ("POST", f"/rooms/{room['id']}/deactivate", None)]:
        status, resp = await user.call(method, path, body)
        assert (status, resp["error_code"]) == (403, "INSUFFICIENT_PERMISSIONS"), path
    status, resp = await api.call("GET", f"/rooms/{room['id']}")
    assert resp["data"]["name"] == "lobby" and resp["data"]["is_active"] is True
