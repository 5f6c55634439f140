"""Hostile input on every surface: each gets the
documented error (REST status and error_code, WebSocket close code or `error` event,
Socket.IO error ack) and leaves stored data unchanged; never a 500, 1011 or silence."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import Api
from tests.test_realtime_helpers import TIMEOUT, connect

HOSTILE_USER_IDS = ["nul\x00", "with space", "u" * 1000, "nb\u00a0sp", "bidi\u202eflip",
                    "lone\ud800"]


def nested(levels: int) -> dict[str, Any]:
    """`{"a": {"a": …}}` built without recursion; 400 levels is a ~2.4 KB body."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def token(tenant: dict[str, Any], **claims: Any) -> str:
    body = {"sub": "u1", "iss": tenant["id"], "exp": int(time.time()) + 600, **claims}
    return jwt.encode(body, tenant["token_secret"], algorithm="HS256")


def assert_error(status: int, body: Any, expected: int, code: str) -> None:
    assert status == expected, body
    assert body["status"] == "error" and body["error_code"] == code, body
    assert body["status_code"] == expected and body["timestamp"], body


async def raw_body(api: Api, method: str, path: str, text: str) -> tuple[int, Any]:
    async with api.session.request(method, api.base + path, data=text.encode(),
                                   headers={**api.headers(), "Content-Type": "application/json"}
                                   ) as resp:
        return resp.status, await resp.json(content_type=None)


# -- REST ----------------------------------------------------------------------------------

@pytest.mark.parametrize("levels", [9, 325, 400, 900])
async def test_deep_meta_is_a_validation_error_and_changes_nothing(api, room, levels):
    status, body = await api.call("POST", "/rooms", {"name": "deep", "meta": nested(levels)})
    assert_error(status, body, 422, "VALIDATION_ERROR")
    status, body = await api.call("PUT", f"/rooms/{room['id']}", {"meta": nested(levels)})
    assert_error(status, body, 422, "VALIDATION_ERROR")
    status, body = await api.call("POST", f"/rooms/{room['id']}/messages",
                                  {"sender_id": "u1", "content": "x", "meta": nested(levels)})
    assert_error(status, body, 422, "VALIDATION_ERROR")
    status, body = await api.call("GET", "/rooms")
    assert [r["id"] for r in body["data"]] == [room["id"]] and body["data"][0]["meta"] == {}
    assert body["data"][0]["message_count"] == 0


async def test_meta_at_the_depth_limit_is_accepted(api):
    status, body = await api.call("POST", "/rooms", {"name": "ok", "meta": nested(8)})
    assert status == 201, body


@pytest.mark.parametrize(("text", "status", "code"), [
    (json.dumps({"name": "x", "meta": nested(40)}),
     422, "VALIDATION_ERROR"),  # parsed, deeper than max_json_depth
    ("[" * 100_000, 400, "INVALID_JSON"),  # too deep for the parser itself
    ("{\"a\":" * 30_000 + "1" + "}" * 30_000, 400, "INVALID_JSON"),
], ids=["over-max-json-depth", "unterminated", "too-deep-to-parse"])
async def test_bodies_too_deep_get_documented_errors(api, room, text, status, code):
    answer, body = await raw_body(api, "POST", "/rooms", text)
    assert_error(answer, body, status, code)
    _, body = await api.call("GET", "/rooms")
    assert [r["id"] for r in body["data"]] == [room["id"]]


@pytest.mark.parametrize("claims", [
    {"exp": "9" * 300}, {"exp": 10**300}, {"exp": 10**400}, {"exp": "4102444800"},
    *({"sub": bad} for bad in HOSTILE_USER_IDS), {"name": "lone\ud800"}, {"name": "n" * 1000},
    {"name": "nul\x00"},
], ids=repr)
async def test_hostile_token_claims_are_401_on_rest_and_4001_on_sockets(
        server, http, api, tenant, room, claims):
    bad = token(tenant, **claims)
    status, body = await api.call("GET", "/rooms", key=bad)
    assert_error(status, body, 401, "INVALID_CREDENTIALS")
    client = await connect(http, server, room["id"], bad, status=False)
    assert await client.closed() == 4001
    assert await sio_refusal(server, {"token": bad}) == 4001


@pytest.mark.parametrize("user_id", HOSTILE_USER_IDS, ids=repr)
async def test_rest_refuses_the_user_ids_sockets_refuse(server, http, api, room, user_id):
    status, body = await api.call("POST", "/tokens", {"user_id": user_id})
    assert_error(status, body, 422, "VALIDATION_ERROR")
    # the same rule for socket identities: the raw WebSocket's user_id and Socket.IO's auth
    if user_id.isascii() or "\ud800" not in user_id:  # a URL cannot carry a lone surrogate
        client = await connect(http, server, room["id"], api.key, status=False, user_id=user_id)
        assert await client.closed() == 4003
    assert await sio_refusal(server, {"token": api.key, "user_id": user_id}) == 4003
    _, body = await api.call("GET", f"/rooms/{room['id']}/participants")
    assert body["data"] == []


@pytest.mark.parametrize(("method", "path", "payload"), [
    ("POST", "/tokens", {"user_id": "u", "ttl_seconds": 2**63}),
    ("POST", "/tokens", {"user_id": "u", "ttl_seconds": 10**300}),
    ("GET", "/rooms?skip=" + "9" * 30, None),
    ("GET", "/rooms?limit=" + "9" * 5000, None),
    ("GET", "/rooms/{room}/messages?after_seq=" + str(2**63), None),
    ("GET", "/rooms/{room}/messages?before_seq=" + "9" * 300, None),
    ("POST", "/rooms", {"name": "big", "meta": {"n": 2**63}}),
    ("POST", "/rooms/{room}/messages", {"sender_id": "u", "content": "x", "meta": {"n": -2**70}}),
], ids=lambda v: str(v)[:40])
async def test_big_integers_are_validation_errors(api, room, method, path, payload):
    status, body = await api.call(method, path.format(room=room["id"]), payload)
    assert_error(status, body, 422, "VALIDATION_ERROR")
    status, body = await api.call("GET", f"/rooms/{room['id']}")
    assert body["data"]["message_count"] == 0 and body["data"]["meta"] == {}


# -- raw WebSocket -------------------------------------------------------------------------

@pytest.mark.parametrize(("frame", "code"), [
    (json.dumps({"type": "message", "data": {"content": "x", "meta": nested(400)}}),
     "VALIDATION_ERROR"),
    (json.dumps({"type": "message", "data": {"content": "x", "meta": {"n": 2**63}}}),
     "VALIDATION_ERROR"),
    (json.dumps({"type": "mark_read", "data": {"seq": 2**63}}), "VALIDATION_ERROR"),
    (json.dumps({"type": "mark_read", "data": {"seq": 10**300}}), "VALIDATION_ERROR"),
    ('{"type": "ping", "data": ' + "[" * 30_000 + "]" * 30_000 + "}", "INVALID_JSON"),
    ("[" * 60_000, "INVALID_JSON"),
], ids=["meta-400", "meta-big-int", "seq-2**63", "seq-300-digits", "too-deep-to-parse",
        "unterminated"])
async def test_raw_websocket_hostile_frames_get_an_error_event(server, http, api, room, frame,
                                                               code):
    client = await connect(http, server, room["id"], api.key, user_id="h")
    await asyncio.wait_for(client.ws.send_str(frame), TIMEOUT)
    error = await client.next("error")
    assert error["data"]["code"] == code, error
    await client.send("ping")
    await client.next("pong")  # still open
    await client.close()
    _, body = await api.call("GET", f"/rooms/{room['id']}/messages")
    assert body["data"] == []


# -- Socket.IO -----------------------------------------------------------------------------

async def sio_refusal(server: TestServer, auth: dict[str, Any]) -> int:
    """Connect over engine.io's WebSocket; the `connect_error` code (44{…})."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:
        async with http.ws_connect(sio_url(server)) as ws:
            await sio_recv(ws)  # engine.io open
            await ws.send_str("40" + json.dumps(auth))
            reply = await sio_recv(ws)
    assert reply.startswith("44"), reply
    return json.loads(reply[2:])["code"]


def sio_url(server: TestServer) -> str:
    return str(server.make_url("/socket.io/")).replace("http://", "ws://") + \
        "?EIO=4&transport=websocket"


async def sio_recv(ws: aiohttp.ClientWebSocketResponse) -> str:
    while True:
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        if msg.data != "2":  # engine.io ping
            return msg.data
        await ws.send_str("3")


@pytest.mark.parametrize("payload", [
    lambda room: json.dumps({"room_id": room, "content": "x", "meta": nested(400)}),
    lambda room: json.dumps({"room_id": room, "content": "x", "meta": {"n": 2**63}}),
    lambda room: f'{{"room_id": "{room}", "content": "x", "meta": '
                 f'{"[" * 5000}{"]" * 5000}}}',
], ids=["meta-400-levels", "meta-big-int", "too-deep-to-parse"])
async def test_socketio_hostile_payloads_get_an_error_ack(server, api, room, payload):
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:
        async with http.ws_connect(sio_url(server)) as ws:
            await sio_recv(ws)
            await ws.send_str("40" + json.dumps({"token": api.key, "user_id": "h"}))
            assert (await sio_recv(ws)).startswith("40{")
            await ws.send_str("421" + json.dumps(["join", {"room_id": room["id"]}]))
            assert (await sio_recv(ws)).startswith('431[{"status":"ok"')
            await ws.send_str('422["message",' + payload(room["id"]) + "]")
            ack = json.loads((await sio_recv(ws))[3:])[0]
            assert ack["status"] == "error" and ack["error"]["code"] == "VALIDATION_ERROR", ack
            await ws.send_str('423["ping",{}]')
            assert (await sio_recv(ws)).startswith('433[{"status":"ok"')
    _, body = await api.call("GET", f"/rooms/{room['id']}/messages")
    assert body["data"] == []


# -- HTTP parser and static files ----------------------------------------------------------

async def send_raw(server: TestServer, request: bytes) -> tuple[bytes, dict[str, Any]]:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", server.port), TIMEOUT)
    try:
        writer.write(request)
        await asyncio.wait_for(writer.drain(), TIMEOUT)
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)  # the server closes
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, json.loads(body)


@pytest.mark.parametrize("request_bytes", [
    b"GET /api/v1/rooms?token=SECRET HTTP/1.1 junk\r\n\r\n",
    b"G@T / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["request-line", "method", "header", "oversized-header", "nul-in-path"])
async def test_parser_rejections_use_the_error_envelope(server, request_bytes):
    head, body = await send_raw(server, request_bytes)
    assert head.startswith(b"HTTP/1.0 400") or head.startswith(b"HTTP/1.1 400"), head
    assert b"application/json" in head
    assert_error(400, body, 400, "BAD_REQUEST")
    assert "SECRET" not in json.dumps(body)


@pytest.mark.parametrize("path", ["/static/nope.js", "/static/", "/static/index.html/x",
                                  "/static/../app/cli.py", "/static/%2e%2e/app/cli.py",
                                  "/static/a%ZZ"])
async def test_static_misses_are_enveloped_404s(server, path):
    head, body = await send_raw(server, f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                                        "Connection: close\r\n\r\n".encode())
    assert head.startswith(b"HTTP/1.1 404") and b"application/json" in head, head
    assert_error(404, body, 404, "RESOURCE_NOT_FOUND")


async def test_static_files_are_still_served(http, base_url):
    async with http.get(base_url + "/static/chatapi.js") as resp:
        assert resp.status == 200 and "javascript" in resp.content_type
    async with http.get(base_url + "/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
