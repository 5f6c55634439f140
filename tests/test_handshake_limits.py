"""Handshakes over /ws and Socket.IO share the REST limiter:
limited per IP before any credential is looked at and per credential after, every wrong
credential refused alike (the admin key included), recovery replays charged."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import jwt
import pytest
import socketio

from tests.conftest import ADMIN_KEY
from tests.test_realtime_helpers import TIMEOUT, call, connect, sio_refusal, ws_url

SLOW = 0.001  # tokens per second: nothing refills while a test runs
UNAUTHORIZED = (4001, "Unauthorized")
RATE_LIMITED = (4004, "Rate limit exceeded")


@pytest.fixture
def limits() -> dict[str, Any]:
    return {}


@pytest.fixture
async def server(make_server, limits):
    return await make_server(**limits)


def user_token(tenant: dict[str, Any], user: str) -> str:
    claims = {"sub": user, "iss": tenant["id"], "exp": int(time.time()) + 600}
    return jwt.encode(claims, tenant["token_secret"], algorithm="HS256")


def wrong_credentials(tenant: dict[str, Any]) -> dict[str, str]:
    forged = jwt.encode({"sub": "u1", "iss": tenant["id"], "exp": int(time.time()) + 600},
                        "not-the-secret-not-the-secret-0123456789", algorithm="HS256")
    return {"admin key": ADMIN_KEY, "wrong key": "sk_live_" + "0" * 32, "garbage": "x",
            "bad jwt": "a.b.c", "forged jwt": forged, "unknown issuer": jwt.encode(
                {"sub": "u1", "iss": "nobody", "exp": int(time.time()) + 600}, "k" * 32,
                algorithm="HS256")}


async def ws_refusal(http: aiohttp.ClientSession, server, room_id: str, token: str,
                     **params: Any) -> tuple[int | None, str]:
    """The close code and reason the server refuses this handshake with."""
    async with http.ws_connect(ws_url(server, room_id, token=token, **params),
                               timeout=aiohttp.ClientWSTimeout(ws_close=TIMEOUT)) as ws:
        while True:
            msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
            if msg.type is aiohttp.WSMsgType.CLOSE:
                return msg.data, msg.extra
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"unexpected {msg}")


def sio_refused(code: int, message: str) -> dict:
    """A refused CONNECT's `connect_error` payload: `{code, message}`, and the same as
    `data` beside `message` (what socket.io-client reads as `err.data`)."""
    error = {"code": code, "message": message}
    return {**error, "data": error}


async def sio_connected(server, token: str) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await asyncio.wait_for(client.connect(str(server.make_url("")), auth={"token": token},
                                          transports=["websocket"]), TIMEOUT)
    return client


async def test_every_wrong_credential_is_refused_alike(server, http, tenant, room):
    """The admin key is no longer told apart from a wrong key (the M2 oracle)."""
    for name, token in wrong_credentials(tenant).items():
        assert await ws_refusal(http, server, room["id"], token) == UNAUTHORIZED, name
        assert await sio_refusal(server, token) == sio_refused(4001, "Unauthorized"), name


@pytest.mark.parametrize("limits", [{"rate_limit_per_second": SLOW, "rate_limit_burst": 4}])
async def test_failed_handshakes_spend_the_ips_bucket_then_everyone_there_waits(
        server, http, tenant, room, base_url):
    """Wrong credentials spend the IP's bucket (REST's: one limiter); once empty every
    handshake from that IP is refused before its credential is looked at, a valid one
    too, over both protocols, and REST says the same."""
    for _ in range(4):
        assert await ws_refusal(http, server, room["id"], "x") == UNAUTHORIZED
    assert await ws_refusal(http, server, room["id"], ADMIN_KEY) == RATE_LIMITED
    assert await ws_refusal(http, server, room["id"], tenant["api_key"]) == RATE_LIMITED
    assert await sio_refusal(server, tenant["api_key"]) == sio_refused(4004,
                                                                       "Rate limit exceeded")
    async with http.get(base_url + "/api/v1/rooms", headers={"X-API-Key": "x"}) as resp:
        assert resp.status == 429


@pytest.mark.parametrize("limits", [{"rate_limit_per_second": SLOW, "rate_limit_burst": 5,
                                     "tenant_rate_limit_burst": 1000}])
async def test_handshakes_spend_the_credentials_bucket(server, http, tenant, room):
    """The room fixture spent one of the key's five tokens; four handshakes take the rest,
    over either protocol, and the fifth is refused; another credential is unaffected."""
    key = tenant["api_key"]
    first = [await connect(http, server, room["id"], key, user_id=f"u{i}") for i in range(2)]
    sio = [await sio_connected(server, key) for _ in range(2)]
    assert await ws_refusal(http, server, room["id"], key) == RATE_LIMITED
    assert await sio_refusal(server, key) == sio_refused(4004, "Rate limit exceeded")
    other = await connect(http, server, room["id"], user_token(tenant, "ann"))
    for client in [*first, other]:
        await client.close()
    for client in sio:
        await asyncio.wait_for(client.disconnect(), TIMEOUT)


@pytest.mark.parametrize("limits", [{"rate_limit_per_second": SLOW, "rate_limit_burst": 200,
                                     "tenant_rate_limit_burst": 100_000,
                                     "recovery_messages_per_token": 10}])
async def test_a_ws_replay_costs_its_messages(server, http, api, tenant, room):
    """100 messages replayed at 10 per token: each resume costs 1 + 10 tokens, so a fresh
    bucket of 200 allows 18; the 19th is refused, while a plain reconnect (1 token) is not."""
    for i in range(100):
        status, _ = await api.call("POST", f"/rooms/{room['id']}/messages",
                                   {"sender_id": "s", "content": f"m{i}"})
        assert status == 201
    token = user_token(tenant, "resumer")
    for _ in range(18):
        client = await connect(http, server, room["id"], token, status=False, last_seq=0)
        await client.next("message", content="m99")
        status = await client.next("connection_status")
        assert status["data"]["missed"] == 100
        await client.close()
    assert await ws_refusal(http, server, room["id"], token, last_seq=0) == RATE_LIMITED
    plain = await connect(http, server, room["id"], token)
    await plain.close()
    assert await ws_refusal(http, server, room["id"], token) == RATE_LIMITED


@pytest.mark.parametrize("limits", [{"rate_limit_per_second": SLOW, "rate_limit_burst": 200,
                                     "tenant_rate_limit_burst": 100_000,
                                     "recovery_messages_per_token": 10}])
async def test_a_socketio_replay_costs_its_messages(server, api, tenant, room):
    """Socket.IO's `join` with `last_seq` pays the same: connect 1, then 10 per join."""
    for i in range(100):
        status, _ = await api.call("POST", f"/rooms/{room['id']}/messages",
                                   {"sender_id": "s", "content": f"m{i}"})
        assert status == 201
    client = await sio_connected(server, user_token(tenant, "resumer"))
    try:
        for _ in range(19):
            ack = await call(client, "join", {"room_id": room["id"], "last_seq": 0})
            assert ack["status"] == "ok" and ack["data"]["missed"] == 100
            assert (await call(client, "leave", {"room_id": room["id"]}))["status"] == "ok"
        ack = await call(client, "join", {"room_id": room["id"], "last_seq": 0})
        assert ack == {"status": "error",
                       "error": {"code": 4004, "message": "Rate limit exceeded"}}
    finally:
        await asyncio.wait_for(client.disconnect(), TIMEOUT)
