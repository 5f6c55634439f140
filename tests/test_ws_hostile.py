"""Hostile and malformed WebSocket sessions: each gets the documented error event or close
code, and the server stays healthy for everyone else (a bystander still gets new messages)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import ADMIN_KEY, Api
from tests.test_realtime_helpers import TIMEOUT, RawClient, StalledSocket, connect, ws_url


@pytest.fixture
async def server(make_server):
    return await make_server(ws_events_per_second=5.0, ws_events_burst=20,
                             max_connections_per_credential=4)


@dataclass
class Ctx:
    server: TestServer
    http: aiohttp.ClientSession
    api: Api
    tenant: dict[str, Any]
    room: dict[str, Any]

    @property
    def key(self) -> str:
        return self.tenant["api_key"]

    async def open(self, room_id: str | None = None, token: str | None = None,
                   **params: Any) -> RawClient:
        return await connect(self.http, self.server, room_id or self.room["id"],
                             token if token is not None else self.key, **params)

    async def refused(self, room_id: str | None = None, token: str | None = None,
                      **params: Any) -> int | None:
        client = await connect(self.http, self.server, room_id or self.room["id"],
                               token if token is not None else self.key, status=False,
                               **params)
        return await client.closed()

    def token(self, **claims: Any) -> str:
        body = {"sub": "u1", "iss": self.tenant["id"], "exp": int(time.time()) + 600, **claims}
        return jwt.encode(body, self.tenant["token_secret"], algorithm="HS256")


Case = Callable[[Ctx], Awaitable[None]]


def frame_error(text: str, code: str) -> Case:
    """Send one raw text frame; expect an `error` event with `code`, then the socket still works."""

    async def case(ctx: Ctx) -> None:
        client = await ctx.open(user_id="h")
        await asyncio.wait_for(client.ws.send_str(text), TIMEOUT)
        error = await client.next("error")
        assert error["data"]["code"] == code, error
        assert isinstance(error["data"]["message"], str)
        await client.send("ping")
        await client.next("pong")
        await client.close()

    return case


def event_error(event_type: Any, data: Any, code: str) -> Case:
    return frame_error(json.dumps({"type": event_type, "data": data}), code)


def refusal(expected: int, room: str | None = None, token: Callable[[Ctx], str] | None = None,
            **params: Any) -> Case:
    async def case(ctx: Ctx) -> None:
        room_id = room(ctx) if callable(room) else room
        code = await ctx.refused(room_id, token(ctx) if token else None, **params)
        assert code == expected

    return case


async def binary_frame(ctx: Ctx) -> None:
    client = await ctx.open()
    await asyncio.wait_for(client.ws.send_bytes(b"\x00\x01"), TIMEOUT)
    assert await client.closed() == 1003


async def huge_frame(ctx: Ctx) -> None:
    client = await ctx.open()
    await asyncio.wait_for(client.ws.send_str("x" * (64 * 1024 + 1)), TIMEOUT)
    assert await client.closed() == 1009


async def flood(ctx: Ctx) -> None:
    client = await ctx.open()
    for _ in range(40):
        if client.ws.closed:
            break
        await asyncio.wait_for(client.ws.send_str('{"type":"ping","data":{}}'), TIMEOUT)
    assert await client.closed() == 4004


async def too_many_connections(ctx: Ctx) -> None:
    extra = [await ctx.open() for _ in range(3)]  # with the bystander: the limit of 4
    assert await ctx.refused() == 4004
    for client in extra:
        await client.close()
    again = await ctx.open()
    await again.close()


async def other_tenants_room(ctx: Ctx) -> None:
    status, body = await ctx.api.call("POST", "/clients", {"name": "other"}, key=ADMIN_KEY)
    other = body["data"]["api_key"]
    status, room = await ctx.api.call("POST", "/rooms", {"name": "theirs"}, key=other)
    assert status == 201
    assert await ctx.refused(room["data"]["id"]) == 4002
    assert await ctx.refused(ctx.room["id"], token=other) == 4002


async def private_room(ctx: Ctx) -> None:
    status, room = await ctx.api.call("POST", "/rooms", {"name": "p", "is_private": True})
    assert await ctx.refused(room["data"]["id"], user_id="stranger") == 4003
    status, _ = await ctx.api.call("POST", f"/rooms/{room['data']['id']}/join",
                                   {"user_id": "member"})
    assert status == 201
    member = await ctx.open(room["data"]["id"], user_id="member")
    await member.close()


async def deactivated_room(ctx: Ctx) -> None:
    _, room = await ctx.api.call("POST", "/rooms", {"name": "d"})
    await ctx.api.call("POST", f"/rooms/{room['data']['id']}/deactivate")
    assert await ctx.refused(room["data"]["id"]) == 4003


async def token_limited_to_other_rooms(ctx: Ctx) -> None:
    token = ctx.token(rooms=[str(uuid.uuid4())])
    assert await ctx.refused(token=token) == 4003


async def send_to_deactivated_room_over_ws(ctx: Ctx) -> None:
    _, room = await ctx.api.call("POST", "/rooms", {"name": "soon-off"})
    client = await ctx.open(room["data"]["id"], user_id="h")
    await ctx.api.call("POST", f"/rooms/{room['data']['id']}/deactivate")
    assert await client.closed() == 4003


async def half_open_then_vanish(ctx: Ctx) -> None:
    sock = await StalledSocket.open(ctx.server, f"/ws/{ctx.room['id']}?token={ctx.key}"
                                                "&user_id=ghost")
    assert (await sock.frame())[0] == 1  # connection_status arrives
    sock.abort()  # no close frame: the TCP connection just dies


async def partial_frame_then_stall(ctx: Ctx) -> None:
    sock = await StalledSocket.open(ctx.server, f"/ws/{ctx.room['id']}?token={ctx.key}")
    await sock.frame()
    sock.send_raw(b"\x81\xfe\x10")  # a text frame header cut in the middle
    await asyncio.sleep(0.2)
    sock.abort()


async def invalid_utf8(ctx: Ctx) -> None:
    sock = await StalledSocket.open(ctx.server, f"/ws/{ctx.room['id']}?token={ctx.key}")
    await sock.frame()
    sock.send_text(b"\xff\xfe\xfd")  # type: ignore[arg-type]
    assert await sock.close_code() == 1007
    sock.abort()


async def unmasked_client_frame(ctx: Ctx) -> None:
    sock = await StalledSocket.open(ctx.server, f"/ws/{ctx.room['id']}?token={ctx.key}")
    await sock.frame()
    sock.send_raw(b"\x81\x02hi")  # RFC 6455 5.1: a server closes on an unmasked frame
    assert await sock.close_code() == 1002
    sock.abort()


async def garbage_instead_of_handshake(ctx: Ctx) -> None:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(ctx.server.host, ctx.server.port), TIMEOUT)
    writer.write(b"\x16\x03\x01 definitely not http\r\n\r\n")
    data = await asyncio.wait_for(reader.read(200), TIMEOUT)
    assert data == b"" or b" 400 " in data.split(b"\r\n")[0]
    writer.close()


async def plain_http_get(ctx: Ctx) -> None:
    url = str(ctx.server.make_url(f"/ws/{ctx.room['id']}"))
    async with ctx.http.get(url) as resp:
        assert resp.status in (400, 426)


async def unknown_type_then_valid_message(ctx: Ctx) -> None:
    client = await ctx.open(user_id="h")
    await client.send("hack_the_planet", {"x": 1})
    assert (await client.next("error"))["data"]["code"] == "UNKNOWN_TYPE"
    await client.send("message", {"content": "still fine"})
    ack = await client.next("message_ack")
    assert ack["data"]["seq"] >= 1
    await client.close()


NESTED = "[" * 50_000 + "]" * 50_000
CASES: dict[str, Case] = {
    "not-json": frame_error("hello there", "INVALID_JSON"),
    "truncated-json": frame_error('{"type": "ping", "data": {', "INVALID_JSON"),
    "json-array": frame_error("[1, 2, 3]", "INVALID_JSON"),
    "json-string": frame_error('"ping"', "INVALID_JSON"),
    "json-number": frame_error("42", "INVALID_JSON"),
    "json-null": frame_error("null", "INVALID_JSON"),
    "deeply-nested-json": frame_error(NESTED[:60_000], "INVALID_JSON"),
    "unknown-type": event_error("launch_missiles", {}, "UNKNOWN_TYPE"),
    "type-not-a-string": event_error(5, {}, "UNKNOWN_TYPE"),
    "missing-type": frame_error('{"data": {}}', "UNKNOWN_TYPE"),
    "data-not-an-object": event_error("typing", "yes", "VALIDATION_ERROR"),
    "is_typing-not-bool": event_error("typing", {"is_typing": "yes"}, "VALIDATION_ERROR"),
    "mark_read-negative": event_error("mark_read", {"seq": -1}, "VALIDATION_ERROR"),
    "mark_read-string": event_error("mark_read", {"seq": "1"}, "VALIDATION_ERROR"),
    "mark_read-bool": event_error("mark_read", {"seq": True}, "VALIDATION_ERROR"),
    "content-not-a-string": event_error("message", {"content": 5}, "VALIDATION_ERROR"),
    "content-missing": event_error("message", {}, "VALIDATION_ERROR"),
    "content-nul-byte": event_error("message", {"content": "a\u0000b"}, "VALIDATION_ERROR"),
    "content-lone-surrogate": frame_error('{"type":"message","data":{"content":"\\ud800"}}',
                                          "VALIDATION_ERROR"),
    "content-too-long": event_error("message", {"content": "x" * 10_001}, "CONTENT_TOO_LONG"),
    "meta-too-deep": event_error("message", {"content": "x", "meta": json.loads(
        '{"a":' * 12 + "1" + "}" * 12)}, "VALIDATION_ERROR"),
    "meta-not-an-object": event_error("message", {"content": "x", "meta": [1]},
                                      "VALIDATION_ERROR"),
    "message-unknown-field": event_error("message", {"content": "x", "is_admin": True},
                                         "VALIDATION_ERROR"),
    "bad-message-type": event_error("message", {"content": "x", "message_type": "DROP TABLE"},
                                    "VALIDATION_ERROR"),
    "spoofed-sender": event_error("message", {"content": "x", "sender_id": "ceo"},
                                  "INSUFFICIENT_PERMISSIONS"),
    "unknown-type-then-valid": unknown_type_then_valid_message,
    "binary-frame": binary_frame,
    "frame-over-64k": huge_frame,
    "event-flood": flood,
    "too-many-connections": too_many_connections,
    "missing-token": refusal(4001, token=lambda ctx: ""),
    "wrong-api-key": refusal(4001, token=lambda ctx: "sk_test_1234567890abcdef"),
    "admin-key-as-token": refusal(4001, token=lambda ctx: ADMIN_KEY),
    "forged-jwt": refusal(4001, token=lambda ctx: jwt.encode(
        {"sub": "u1", "iss": ctx.tenant["id"], "exp": int(time.time()) + 60},
        "a-wrong-secret-that-is-long-enough-0123456789", algorithm="HS256")),
    "expired-jwt": refusal(4001, token=lambda ctx: ctx.token(exp=int(time.time()) - 3600)),
    "jwt-garbage": refusal(4001, token=lambda ctx: "a.b.c"),
    "malformed-room-id": refusal(4002, room="not-a-uuid"),
    "sql-ish-room-id": refusal(4002, room="1%27%20OR%20%271%27%3D%271"),
    "unknown-room": refusal(4002, room=str(uuid.uuid4())),
    "uppercase-room-id": refusal(4002, room=lambda ctx: ctx.room["id"].upper()),
    "other-tenants-room": other_tenants_room,
    "private-room-not-participant": private_room,
    "deactivated-room": deactivated_room,
    "deactivated-while-connected": send_to_deactivated_room_over_ws,
    "token-limited-to-other-rooms": token_limited_to_other_rooms,
    "token-user-id-spoof": refusal(4003, token=lambda ctx: ctx.token(), user_id="admin"),
    "token-user-name-spoof": refusal(4003, token=lambda ctx: ctx.token(name="Ann"),
                                     user_name="Root"),
    "user-id-with-spaces": refusal(4003, user_id="a b"),
    "user-id-too-long": refusal(4003, user_id="u" * 129),
    "user-name-control-chars": refusal(4003, user_name="evil\u0007"),
    "half-open-vanish": half_open_then_vanish,
    "partial-frame-stall": partial_frame_then_stall,
    "invalid-utf8-text": invalid_utf8,
    "unmasked-client-frame": unmasked_client_frame,
    "garbage-handshake": garbage_instead_of_handshake,
    "plain-http-get": plain_http_get,
}


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_session(name, server, http, api, tenant, room):
    bystander = await connect(http, server, room["id"], tenant["api_key"], user_id="bystander")
    ctx = Ctx(server, http, api, tenant, room)
    await asyncio.wait_for(CASES[name](ctx), 20)
    # Everyone else is fine: the bystander gets a message sent afterwards, nothing changed.
    status, body = await api.call("POST", f"/rooms/{room['id']}/messages",
                                  {"sender_id": "bystander", "content": f"after {name}"})
    assert status == 201, body
    await bystander.next("message", content=f"after {name}")
    status, listed = await api.call("GET", f"/rooms/{room['id']}/messages?limit=100")
    contents = [m["content"] for m in listed["data"]]
    assert contents.count(f"after {name}") == 1
    assert all(c in ("still fine", f"after {name}") for c in contents), contents
    async with http.get(str(server.make_url("/healthz"))) as resp:
        assert resp.status == 200
    await bystander.close()


def test_the_table_is_big_enough():
    assert len(CASES) >= 30


async def test_ws_url_helper_quotes(server):
    assert "token=a%26b" in ws_url(server, "r", token="a&b")
