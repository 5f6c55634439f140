"""permessage-deflate: declined by default, working end to end when switched on."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.test_realtime_helpers import TIMEOUT, ws_url

COMPRESSED = pytest.mark.parametrize("server", [{"ws_compression": True}], indirect=True)


@pytest.fixture
async def server(make_server, request):
    return await make_server(**getattr(request, "param", {}))


async def _open(http: aiohttp.ClientSession, server, room_id: str, key: str, user: str
                ) -> aiohttp.ClientWebSocketResponse:
    """A client that offers permessage-deflate, as browsers do."""
    return await http.ws_connect(ws_url(server, room_id, token=key, user_id=user),
                                 compress=15, timeout=aiohttp.ClientWSTimeout(ws_close=TIMEOUT))


async def _next(ws: aiohttp.ClientWebSocketResponse, event_type: str) -> dict[str, Any]:
    while True:
        msg = await asyncio.wait_for(ws.receive(), TIMEOUT)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        event = json.loads(msg.data)
        if event["type"] == event_type:
            return event


async def test_deflate_is_declined_by_default(server, http, tenant, room):
    ws = await _open(http, server, room["id"], tenant["api_key"], "plain")
    assert ws.compress == 0  # the offer was not accepted
    assert (await _next(ws, "connection_status"))["data"]["user_id"] == "plain"
    await asyncio.wait_for(ws.close(), TIMEOUT)


@COMPRESSED
async def test_deflate_when_switched_on_carries_every_event(server, http, tenant, room):
    alice = await _open(http, server, room["id"], tenant["api_key"], "alice")
    bob = await _open(http, server, room["id"], tenant["api_key"], "bob")
    assert alice.compress == 15 and bob.compress == 15
    await _next(alice, "connection_status")
    await _next(bob, "connection_status")
    await alice.send_json({"type": "message", "data": {"content": "squeezed " * 50}})
    for ws in (alice, bob):
        event = await _next(ws, "message")
        assert event["data"]["content"] == "squeezed " * 50
    await bob.send_json({"type": "ping", "data": {}})
    assert (await _next(bob, "pong"))["type"] == "pong"
    await asyncio.wait_for(bob.close(), TIMEOUT)
    assert (await _next(alice, "user_left"))["data"]["user_id"] == "bob"
    await asyncio.wait_for(alice.close(), TIMEOUT)
