"""Helpers for the real-time tests: raw WebSocket clients with timeouts everywhere."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
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
        # an overall deadline: aiohttp re-arms receive(timeout=) after each auto-answered ping
        msg = await asyncio.wait_for(self.ws.receive(), wait)
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
            msg = await asyncio.wait_for(self.ws.receive(), left)
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


_SERVER_CODE = ("engineio/async_socket.py", "engineio/async_server.py",
                "aiohttp/web_protocol.py", "/app/", "/compat/")


def server_tasks_since(before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Tasks started since `before` that run server code (test clients share the loop)."""
    def server_side(task: asyncio.Task[Any]) -> bool:
        code = getattr(task.get_coro(), "cr_code", None)
        return code is not None and any(part in code.co_filename for part in _SERVER_CODE)

    return [t for t in asyncio.all_tasks() - before if server_side(t)]


class StalledSocket:
    """A raw TCP WebSocket client with a tiny receive buffer that reads only when told to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: TestServer, path: str) -> StalledSocket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_connect(sock, (server.host, server.port)), TIMEOUT)
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**20)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                      ).encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def frame(self) -> tuple[int, bytes]:
        """Read one frame: (opcode, payload)."""
        head = await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT)
        size = head[1] & 0x7F
        if size == 126:
            size = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        payload = await asyncio.wait_for(self.reader.readexactly(size), TIMEOUT)
        return head[0] & 0x0F, payload

    async def close_code(self) -> int:
        """Read frames until the close frame; return its code."""
        while True:
            opcode, payload = await self.frame()
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0]

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def send_text(self, text: str, opcode: int = 1) -> None:
        """A masked client frame."""
        payload = text.encode() if isinstance(text, str) else text
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        size = len(payload)
        if size < 126:
            head = bytes((0x80 | opcode, 0x80 | size))
        elif size < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", size)
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", size)
        self.writer.write(head + mask + masked)

    def abort(self) -> None:
        self.writer.transport.abort()


async def sio_refusal(server: TestServer, token: str) -> Any:
    """The connect_error payload a Socket.IO handshake is refused with."""
    client = socketio.AsyncClient(reconnection=False)
    errors: asyncio.Queue = asyncio.Queue()
    client.on("connect_error", errors.put_nowait)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await asyncio.wait_for(client.connect(str(server.make_url("")), auth={"token": token},
                                              transports=["websocket"]), TIMEOUT)
    return await asyncio.wait_for(errors.get(), TIMEOUT)
