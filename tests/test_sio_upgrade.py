"""Socket.IO clients that start on long-polling and upgrade to WebSocket (socket.io-client's
default): after the upgrade they run lean like direct WebSocket clients
(`sio_transport.LeanSocket`); an upgrade that fails or stalls leaves the polling session
working."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from app.keys import HUB
from app.realtime import sio_transport
from tests import test_realtime_helpers as rt
from tests.test_realtime_helpers import TIMEOUT, call

sio_client = rt.sio_client
UPGRADING = ["polling", "websocket"]


@pytest.fixture
async def server(make_server):
    return await make_server(heartbeat_seconds=1.0)  # engine.io pings every second


async def test_upgraded_clients_run_lean_and_keep_working(server, room, sio_client):
    before = set(asyncio.all_tasks())
    clients = []
    for i in range(8):
        client = await sio_client(user_id=f"u{i}", transports=UPGRADING)
        assert (await call(client, "join", {"room_id": room["id"]}))["status"] == "ok"
        clients.append(client)
    async with asyncio.timeout(TIMEOUT):
        # the client announces no upgrade: poll its transport
        while any(c.transport() != "websocket" for c in clients):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    events: asyncio.Queue = asyncio.Queue()
    clients[-1].on("message", events.put_nowait)
    await asyncio.sleep(2.5)  # several ping cycles over the upgraded WebSockets
    sockets = server.app[HUB].sio.eio.sockets.values()
    assert all(isinstance(getattr(s, sio_transport.DIRECT), sio_transport.LeanSocket)
               for s in sockets)
    server_side = rt.server_tasks_since(before)
    assert len(server_side) < 3, server_side  # one pinger, not tasks per socket
    assert len(server.runner.server._connections) < 5  # aiohttp let go of them
    for i in range(5):
        reply = await call(clients[0], "message", {"room_id": room["id"], "content": f"m{i}"})
        assert reply["status"] == "ok"
    got = [(await asyncio.wait_for(events.get(), TIMEOUT))["data"]["content"] for _ in range(5)]
    assert got == [f"m{i}" for i in range(5)]
    assert all(c.connected for c in clients)


class Polling:
    """An engine.io v4 long-polling session by hand, to upgrade (or not) as a test likes."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.sid = ""

    def url(self, transport: str = "polling") -> str:
        sid = f"&sid={self.sid}" if self.sid else ""
        return f"{self.base}/socket.io/?EIO=4&transport={transport}{sid}"

    async def get(self) -> list[str]:
        async with asyncio.timeout(TIMEOUT):
            async with self.http.get(self.url()) as resp:
                assert resp.status == 200, await resp.text()
                return (await resp.text()).split("\x1e")

    async def post(self, *packets: str) -> None:
        async with asyncio.timeout(TIMEOUT):
            async with self.http.post(self.url(), data="\x1e".join(packets)) as resp:
                assert resp.status == 200, await resp.text()

    async def open(self, token: str) -> None:
        (handshake,) = await self.get()
        self.sid = json.loads(handshake[1:])["sid"]
        await self.post("40" + json.dumps({"token": token}))
        assert (await self.get())[0].startswith("40")

    async def ack(self, ack_id: int, event: str, data: dict[str, Any]) -> Any:
        """Emit with an ack over polling; the ack's payload (PINGs are answered meanwhile)."""
        await self.post(f"42{ack_id}" + json.dumps([event, data]))
        async with asyncio.timeout(TIMEOUT):
            while True:
                for pkt in await self.get():
                    if pkt == "2":
                        await self.post("3")
                    elif pkt.startswith(f"43{ack_id}"):
                        return json.loads(pkt[len(f"43{ack_id}"):])[0]


async def start_upgrade(server, http, tenant, first_frame: str
                        ) -> tuple[Polling, aiohttp.ClientWebSocketResponse]:
    """A polling session, and a WebSocket opened to upgrade it with `first_frame` sent."""
    session = Polling(http, str(server.make_url("")).rstrip("/"))
    await session.open(tenant["api_key"])
    ws = await asyncio.wait_for(http.ws_connect(session.url("websocket")), TIMEOUT)
    await ws.send_str(first_frame)
    return session, ws


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), TIMEOUT)


async def test_a_failed_upgrade_leaves_the_polling_session_working(server, http, tenant):
    session, ws = await start_upgrade(server, http, tenant, "2not-a-probe")
    assert (await next_frame(ws)).type is aiohttp.WSMsgType.CLOSE
    assert (await session.ack(1, "ping", {}))["status"] == "ok"


async def test_a_stalled_upgrade_is_given_up_and_polling_goes_on(server, http, tenant):
    session, ws = await start_upgrade(server, http, tenant, "2probe")
    assert (await next_frame(ws)).data == "3probe"
    assert await session.get() == ["6"]  # polls get NOOPs while the upgrade is under way
    # no UPGRADE packet follows: after half engine.io's ping timeout the server gives up
    assert (await next_frame(ws)).type is aiohttp.WSMsgType.CLOSE
    assert (await session.ack(1, "ping", {}))["status"] == "ok"


async def test_a_second_upgrade_of_a_session_is_refused(server, http, tenant):
    session, ws = await start_upgrade(server, http, tenant, "2probe")
    assert (await next_frame(ws)).data == "3probe"
    await ws.send_str("5")
    async with asyncio.timeout(TIMEOUT):
        async with http.get(session.url("websocket"), headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as resp:
            assert resp.status == 400
    await ws.send_str('421["ping",{}]')  # the first upgrade carries the session
    async with asyncio.timeout(TIMEOUT):
        while not (frame := (await next_frame(ws)).data).startswith("431"):
            assert frame in ("6", "2"), frame  # the NOOP that ended polling, a PING
    assert json.loads(frame[3:])[0]["status"] == "ok"
    await ws.close()
