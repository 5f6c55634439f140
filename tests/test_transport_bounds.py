"""Transport bounds, one focused test each,
with real clients on loopback: what a client cannot hold open, make the server buffer, or
turn into a 500, a 1011 or an ERROR traceback."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from typing import Any

import aiohttp
import pytest

from app import errors, schemas
from app.keys import HUB
from app.realtime import validation
from app.realtime.raw_socket import RawSocket
from tests import test_realtime_helpers as rt
from tests.test_realtime_helpers import TIMEOUT, StalledSocket, connect
from tests.test_sio_upgrade import Polling

pytestmark = pytest.mark.usefixtures("no_error_logs")

sio_client = rt.sio_client
EIO_WS = "/socket.io/?EIO=4&transport=websocket"


@pytest.fixture
async def server(make_server):
    # a heartbeat of 1 s: sessions without CONNECT go after 2 s (ping interval + timeout)
    return await make_server(heartbeat_seconds=1.0, ws_events_per_second=5.0,
                             ws_events_burst=10, max_polling_sessions_per_ip=3,
                             poll_body_timeout_seconds=0.5)


@pytest.fixture
def no_error_logs(caplog):
    """No finding may leave an ERROR (a traceback) in the log."""
    caplog.set_level(logging.INFO)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


def base(server) -> str:
    return str(server.make_url("")).rstrip("/")


async def handshake(http: aiohttp.ClientSession, server) -> aiohttp.ClientResponse:
    async with asyncio.timeout(TIMEOUT):
        async with http.get(base(server) + "/socket.io/?EIO=4&transport=polling") as resp:
            await resp.read()
            return resp


def assert_envelope(body: dict[str, Any], status: int, code: str) -> None:
    assert body["status"] == "error" and body["status_code"] == status, body
    assert body["error_code"] == code and body["detail"] and body["timestamp"], body


async def eio_socket(server, token: str | None = None) -> StalledSocket:
    """An engine.io WebSocket session (OPEN read); with `token`, Socket.IO-connected too."""
    sock = await StalledSocket.open(server, EIO_WS)
    _, payload = await sock.frame()
    assert payload.startswith(b"0{"), payload
    if token is not None:
        sock.send_text("40" + json.dumps({"token": token}))
        while not (await sock.frame())[1].startswith(b"40"):
            pass
    return sock


async def close_code(sock: StalledSocket) -> int:
    """Read until the close frame, answering engine.io PINGs; its code."""
    while True:
        opcode, payload = await sock.frame()
        if opcode == 8:
            return struct.unpack("!H", payload[:2])[0]
        if payload == b"2":
            sock.send_text("3")


# -- H1 / M4: sessions without CONNECT, polling caps --------------------------------------

async def test_a_polling_session_without_connect_ends_after_one_heartbeat(server, http):
    session = Polling(http, base(server))
    (opened,) = await session.get()
    session.sid = json.loads(opened[1:])["sid"]
    eio = server.app[HUB].sio.eio
    async with asyncio.timeout(4):  # answering every PING does not keep it
        while session.sid in eio.sockets:
            async with http.get(session.url()) as resp:
                packets = (await resp.text()).split("\x1e")
            if "2" in packets:  # answer the PING; the session may end in between (400)
                async with http.post(session.url(), data="3") as resp:
                    assert resp.status in (200, 400), await resp.text()
    assert eio.held == {} and eio.held_ips == {}


async def test_a_websocket_session_without_connect_is_closed_after_one_heartbeat(server):
    sock = await eio_socket(server)
    async with asyncio.timeout(4):
        assert await close_code(sock) == 1008
    sock.abort()


async def test_a_connected_session_outlives_the_heartbeat(server, tenant):
    sock = await eio_socket(server, tenant["api_key"])
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(2.5):
            await close_code(sock)
    sock.abort()


async def test_polling_sessions_are_capped_per_ip_with_the_envelope(server, http):
    for _ in range(3):
        assert (await handshake(http, server)).status == 200
    async with http.get(base(server) + "/socket.io/?EIO=4&transport=polling",
                        headers={"Origin": "http://example.test"}) as resp:
        assert resp.status == 429
        assert_envelope(await resp.json(), 429, "RATE_LIMIT_EXCEEDED")
        assert resp.headers.get("Access-Control-Allow-Origin")  # a browser can read it


async def test_a_closed_polling_session_frees_its_place(server, http):
    sessions = []
    for _ in range(3):
        session = Polling(http, base(server))
        (opened,) = await session.get()
        session.sid = json.loads(opened[1:])["sid"]
        sessions.append(session)
    await sessions[0].post("1")  # engine.io CLOSE
    assert (await handshake(http, server)).status == 200


async def test_polling_sessions_are_capped_in_total(make_server, http):
    server = await make_server(max_polling_sessions=2)
    for _ in range(2):
        assert (await handshake(http, server)).status == 200
    async with http.get(base(server) + "/socket.io/?EIO=4&transport=polling") as resp:
        assert resp.status == 503
        assert_envelope(await resp.json(), 503, "SERVICE_UNAVAILABLE")


async def test_an_upgraded_session_no_longer_counts_as_polling(server, sio_client):
    clients = [await sio_client(transports=["polling", "websocket"]) for _ in range(4)]
    async with asyncio.timeout(TIMEOUT):
        while any(c.transport() != "websocket" for c in clients):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert server.app[HUB].sio.eio.held == {}


async def test_websocket_sessions_without_connect_count_against_the_per_ip_cap(server, http,
                                                                             tenant):
    """No credential is checked before CONNECT: such sessions are capped like polling."""
    idle = [await eio_socket(server) for _ in range(3)]
    async with http.get(base(server) + EIO_WS) as resp:  # refused before any upgrade
        assert resp.status == 429
        assert_envelope(await resp.json(), 429, "RATE_LIMIT_EXCEEDED")
    idle.pop().abort()
    eio = server.app[HUB].sio.eio
    async with asyncio.timeout(TIMEOUT):
        while len(eio.held) > 2:  # noqa: ASYNC110 (server state, same loop)
            await asyncio.sleep(0.01)
    connected = await eio_socket(server, tenant["api_key"])  # its place is free again
    assert len(eio.held) == 2  # a connected WebSocket session is not counted
    more = [await eio_socket(server, tenant["api_key"]) for _ in range(3)]
    for sock in [*idle, connected, *more]:
        sock.abort()


async def test_a_second_waiting_poll_is_refused(server, http, tenant):
    session = Polling(http, base(server))
    await session.open(tenant["api_key"])
    first = asyncio.ensure_future(session.get())
    eio = server.app[HUB].sio.eio
    async with asyncio.timeout(TIMEOUT):
        while session.sid not in eio.polls:  # noqa: ASYNC110 (server state, same loop)
            await asyncio.sleep(0)
    async with asyncio.timeout(TIMEOUT):
        async with http.get(session.url()) as resp:
            assert resp.status == 400
            assert_envelope(await resp.json(), 400, "INVALID_SESSION")
    assert await first == ["2"]  # the first poll goes on and gets the next PING


# -- H2: polling POSTs ----------------------------------------------------------------------

async def test_an_oversized_polling_post_gets_413_and_the_connection_closes(server, http,
                                                                          tenant):
    session = Polling(http, base(server))
    await session.open(tenant["api_key"])
    async with asyncio.timeout(TIMEOUT):
        async with http.post(session.url(), data="4" + "x" * (64 * 1024)) as resp:
            assert resp.status == 413
            assert resp.headers.get("Connection", "").lower() == "close"
            assert_envelope(await resp.json(), 413, "PAYLOAD_TOO_LARGE")
        async with http.post(session.url(), data="3") as resp:  # the session is over
            assert resp.status == 400
            assert_envelope(await resp.json(), 400, "INVALID_SESSION")
    assert session.sid not in server.app[HUB].sio.eio.sockets


async def test_a_post_to_a_just_closed_session_gets_400(server, http, tenant):
    session = Polling(http, base(server))
    await session.open(tenant["api_key"])
    await session.post("1")
    async with asyncio.timeout(TIMEOUT):
        async with http.post(session.url(), data="3") as resp:
            assert resp.status == 400
            assert_envelope(await resp.json(), 400, "INVALID_SESSION")


async def test_a_polling_post_whose_body_never_comes_times_out(server, tenant, http):
    session = Polling(http, base(server))
    await session.open(tenant["api_key"])
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(server.host, server.port), TIMEOUT)
    path = session.url().removeprefix(base(server))
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n3".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 408"), head
    assert await asyncio.wait_for(reader.read(), TIMEOUT)  # the envelope, then EOF
    writer.close()


@pytest.mark.parametrize("payload", ["9", "", "4x\x1e", "\xff"])
async def test_a_malformed_polling_payload_gets_400(server, http, tenant, payload):
    session = Polling(http, base(server))
    await session.open(tenant["api_key"])
    async with asyncio.timeout(TIMEOUT):
        async with http.post(session.url(), data=payload.encode("latin-1")) as resp:
            assert resp.status in (200, 400), resp.status  # "" is an empty payload
            if resp.status == 400:
                assert_envelope(await resp.json(), 400, "INVALID_PACKET")


# -- H3: PING control frames ----------------------------------------------------------------

def send_pings(sock: StalledSocket, count: int) -> None:
    for _ in range(count):
        sock.send_text("x" * 125, opcode=9)


async def test_ws_pings_are_answered_within_the_event_limit(server, tenant, room):
    sock = await StalledSocket.open(server, f"/ws/{room['id']}?token={tenant['api_key']}")
    send_pings(sock, 1)
    while (frame := await sock.frame())[0] != 10:
        pass
    assert frame[1] == b"x" * 125
    send_pings(sock, 40)  # burst 10, 5/s
    assert await sock.close_code() == 4004
    sock.abort()


async def test_socketio_pings_are_answered_within_the_event_limit(server, tenant):
    sock = await eio_socket(server, tenant["api_key"])
    send_pings(sock, 1)
    while (await sock.frame())[0] != 10:
        pass
    send_pings(sock, 40)
    async with asyncio.timeout(TIMEOUT):
        assert await close_code(sock) == 4004
    sock.abort()


async def test_pings_before_connect_are_limited_too(server):
    sock = await eio_socket(server)
    send_pings(sock, 40)
    async with asyncio.timeout(TIMEOUT):
        assert await close_code(sock) == 4004
    sock.abort()


# -- H4 and LOW: binary and malformed packets -------------------------------------------------

@pytest.mark.parametrize(("frame", "code"), [
    ('451-["message",{"_placeholder":true,"num":0}]', 1003),  # binary event: refused
    ('459999999999-["message",{"_placeholder":true,"num":0}]', 1003),
    ('4{', 1002), ('42["join"', 1002), ("42[]", 1002), ("9", 1002), ("", 1002),
])
async def test_binary_and_malformed_socketio_packets_close_documented(server, tenant, frame,
                                                                      code):
    sock = await eio_socket(server, tenant["api_key"])
    sock.send_text(frame)
    async with asyncio.timeout(TIMEOUT):
        assert await close_code(sock) == code
    sock.abort()
    assert not server.app[HUB].sio._binary_packet  # nothing buffered for attachments


async def test_a_binary_frame_on_socketio_closes_1003(server, tenant):
    sock = await eio_socket(server, tenant["api_key"])
    sock.send_text(b"\x04abc", opcode=2)
    async with asyncio.timeout(TIMEOUT):
        assert await close_code(sock) == 1003
    sock.abort()


async def test_join_with_a_huge_last_seq_is_a_validation_error(server, room, sio_client):
    client = await sio_client()
    for huge in (2**63, 2**63 - 1):  # the second overflowed storage once one was added
        reply = await client.call("join", {"room_id": room["id"], "last_seq": huge},
                                  timeout=TIMEOUT)
        assert reply["status"] == "error" and reply["error"]["code"] == "VALIDATION_ERROR"
    with pytest.raises(errors.ValidationFailed, match="last_seq"):
        validation.last_seq(schemas.MAX_SEQ + 1)
    assert validation.last_seq(schemas.MAX_SEQ) == schemas.MAX_SEQ


@pytest.mark.parametrize("path", ["ws", "socket.io"])
async def test_an_invalid_client_close_code_is_answered_1002(server, tenant, room, path):
    if path == "ws":
        sock = await StalledSocket.open(server, f"/ws/{room['id']}?token={tenant['api_key']}")
    else:
        sock = await eio_socket(server, tenant["api_key"])
    sock.send_text(struct.pack("!H", 5000), opcode=8)
    assert await sock.close_code() == 1002
    sock.abort()


async def test_a_valid_client_close_code_is_echoed(server, http, tenant, room):
    client = await connect(http, server, room["id"], tenant["api_key"])
    await asyncio.wait_for(client.ws.close(code=4321), TIMEOUT)
    assert client.ws.close_code == 4321


# -- LOW: unmasked client frames --------------------------------------------------------------

def client_frame(payload: bytes, opcode: int = 1, masked: bool = True) -> bytes:
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, size))
    elif size < 65536:
        head = bytes((0x80 | opcode, 126)) + struct.pack("!H", size)
    else:
        head = bytes((0x80 | opcode, 127)) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    return head[:1] + bytes((head[1] | 0x80,)) + head[2:] + b"\0\0\0\0" + payload


async def test_an_unmasked_frame_on_socketio_closes_1002(server, tenant):
    sock = await eio_socket(server, tenant["api_key"])
    sock.send_raw(client_frame(b'42["ping",{}]', masked=False))
    async with asyncio.timeout(TIMEOUT):
        assert await close_code(sock) == 1002
    sock.abort()


@pytest.mark.parametrize("step", [1, 3, 7, 500, 70_000])
async def test_the_mask_check_follows_frames_split_anywhere(step):
    """Frame boundaries are tracked across reads of any size, short and long lengths."""
    stream = b"".join(client_frame(b"x" * n) for n in (0, 5, 125, 126, 300, 65_535, 66_000))
    sock = RawSocket.__new__(RawSocket)
    sock._skip, sock._head = 0, b""
    assert all(sock._masked(stream[i:i + step]) for i in range(0, len(stream), step))
    assert sock._skip == 0 and sock._head == b""
    bad = client_frame(b"y" * 200) + client_frame(b"z", masked=False)
    assert not all(sock._masked(bad[i:i + step]) for i in range(0, len(bad), step))
