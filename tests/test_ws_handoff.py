"""Raw sockets leave aiohttp's request machinery after the handshake (`raw_socket.take_over`).

What a user sees must not change: frames sent at once are answered in order, close
handshakes complete both ways, and an idle connection costs no task and no aiohttp handler.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os

from app.keys import HUB, SETTINGS
from tests import test_realtime_helpers as rt
from tests.test_realtime_helpers import TIMEOUT, StalledSocket, connect, ws_url


async def test_idle_connections_hold_no_task_and_no_aiohttp_handler(server, http, tenant,
                                                                      room):
    before = set(asyncio.all_tasks())
    clients = [await connect(http, server, room["id"], tenant["api_key"], user_id=f"u{i}")
               for i in range(20)]
    await asyncio.sleep(0.2)
    assert len(server.app[HUB].raw) == 20
    server_side = rt.server_tasks_since(before)
    assert len(server_side) < 5, server_side  # no handler or reader task per socket
    assert len(server.runner.server._connections) < 5  # aiohttp let go of them
    await clients[0].send("ping")
    assert (await clients[0].next("pong"))["type"] == "pong"  # and they still answer
    await clients[1].close()
    await clients[2].next("user_left", user_id="u1")
    for client in clients[2:]:
        await client.close()


async def test_frames_sent_with_the_handshake_are_answered_after_connection_status(
        server, tenant, room):
    path = f"/ws/{room['id']}?token={tenant['api_key']}&user_id=eager"
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(server.host, server.port), TIMEOUT)
    sock = StalledSocket(reader, writer)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    writer.write(request)  # the frames follow in the same write, before the 101 arrives
    sock.send_text(json.dumps({"type": "ping", "data": {}}))
    sock.send_text(json.dumps({"type": "get_online_users", "data": {}}))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101"), head
    events = []
    while len(events) < 3:
        opcode, payload = await sock.frame()
        if opcode == 1:
            events.append(json.loads(payload)["type"])
    assert events == ["connection_status", "pong", "connection_status"]
    sock.abort()


async def test_client_close_is_answered_and_announced(server, http, tenant, room):
    stayer = await connect(http, server, room["id"], tenant["api_key"], user_id="stayer")
    leaver = await http.ws_connect(ws_url(server, room["id"], token=tenant["api_key"],
                                          user_id="leaver"))
    await stayer.next("user_joined", user_id="leaver")
    await asyncio.wait_for(leaver.close(code=4100, message=b"bye"), TIMEOUT)
    assert leaver.close_code == 4100  # the server echoed the client's code
    await stayer.next("user_left", user_id="leaver")
    assert all(c.user_id != "leaver" for c in server.app[HUB].raw.values())
    await stayer.close()


async def test_oversized_and_malformed_frames_close_with_1009_and_1002(server, tenant, room):
    path = f"/ws/{room['id']}?token={tenant['api_key']}&user_id=rude"
    big = await StalledSocket.open(server, path)
    big.send_text("x" * (server.app[SETTINGS].ws_max_frame_bytes + 1))
    assert await big.close_code() == 1009
    bad = await StalledSocket.open(server, path)
    bad.send_raw(bytes((0x83, 0x80)) + os.urandom(4))  # reserved opcode 3
    assert await bad.close_code() == 1002
    for sock in (big, bad):
        sock.abort()
    await asyncio.sleep(0.1)
    assert not server.app[HUB].raw
