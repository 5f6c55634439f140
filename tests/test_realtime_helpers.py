"""Helpers for the real-time tests: raw WebSocket clients with timeouts everywhere."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import socketio
from aiohttp.test_utils import TestServer

TIMEOUT = 5.0


def ws_url(server: TestServer, room_id: str, **params: Any) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return str(server.make_url(f"/ws/{room_id}")).replace("http://", "ws://") + "?" + query


class RawClient:
    """An aiohttp WebSocket client that collects JSON events."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def recv(self, wait: float = TIMEOUT) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=wait)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected a text frame, got {msg.type} {msg.data!r}")
        event = json.loads(msg.data)
        self.seen.append(event)
        return event

    async def next(self, event_type: str, wait: float = TIMEOUT,
                   **match: Any) -> dict[str, Any]:
        """The next event of this type (whose data matches), skipping others."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no {event_type} {match} within {wait}s")
            event = await self.recv(left)
            if event["type"] == event_type and all(
                    event["data"].get(k) == v for k, v in match.items()):
                return event

    async def silent(self, event_type: str, within: float = 0.5) -> None:
        """Assert no event of this type arrives within `within` seconds."""
        try:
            event = await self.next(event_type, within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {event}")

    async def send(self, event_type: str, data: Any = None) -> None:
        await asyncio.wait_for(self.ws.send_json({"type": event_type, "data": data or {}}),
                               TIMEOUT)

    async def closed(self, wait: float = TIMEOUT) -> int | None:
        """Read until the server closes; return the close code."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("socket not closed")
            msg = await self.ws.receive(timeout=left)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                return self.ws.close_code

    async def close(self) -> None:
        await asyncio.wait_for(self.ws.close(), TIMEOUT)


async def connect(http: aiohttp.ClientSession, server: TestServer, room_id: str,
                  token: str, *, status: bool = True, **params: Any) -> RawClient:
    """Open `/ws/{room_id}`; with `status`, wait for the first connection_status."""
    ws = await http.ws_connect(ws_url(server, room_id, token=token, **params),
                               timeout=aiohttp.ClientWSTimeout(ws_close=TIMEOUT),
                               autoping=True)
    client = RawClient(ws)
    if status:
        await client.next("connection_status")
    return client


SioFactory = Callable[..., Awaitable[socketio.AsyncClient]]


@pytest.fixture
async def sio_client(server: TestServer, tenant: dict[str, Any]) -> AsyncIterator[SioFactory]:
    """`await sio_client(user_id=…, token=…)`: a connected python-socketio AsyncClient."""
    clients: list[socketio.AsyncClient] = []

    async def make(token: str | None = None, transports: list[str] | None = None,
                   **auth: Any) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        clients.append(client)
        await asyncio.wait_for(client.connect(
            str(server.make_url("")), auth={"token": token or tenant["api_key"], **auth},
            transports=transports or ["websocket"]), TIMEOUT)
        return client

    yield make
    for client in clients:
        if client.connected:
            await asyncio.wait_for(client.disconnect(), TIMEOUT)


async def call(client: socketio.AsyncClient, event: str, data: Any = None) -> dict[str, Any]:
    return await client.call(event, data if data is not None else {}, timeout=TIMEOUT)
