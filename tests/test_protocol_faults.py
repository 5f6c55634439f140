"""Protocol faults real clients and the official engine.io / Socket.IO suites find: what
socket.io-client reads from a refused CONNECT, undecodable packets on the lean WebSocket,
the frame-size edge on both WebSocket paths, and heartbeats on schedule."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import shutil
from pathlib import Path

import aiohttp
import pytest

from tests.seed.test_seed_examples import node_env, run_node
from tests.test_realtime_helpers import TIMEOUT, StalledSocket
from tests.test_sio_upgrade import next_frame, start_upgrade
from tests.test_transport_bounds import close_code, eio_socket

CLIENT = Path(__file__).resolve().parent.parent / "bench/loadgen/node_modules/socket.io-client"
UNAUTHORIZED = {"code": 4001, "message": "Unauthorized"}

needs_node = pytest.mark.skipif(shutil.which("node") is None or not CLIENT.is_dir(),
                                reason="node or bench/loadgen's socket.io-client missing")


# -- connect_error as socket.io-client reads it -------------------------------------------

@needs_node
async def test_official_client_reads_the_refusal_as_message_and_data(server, tenant, room):
    r = await run_node("../sio_node/connect_error.mjs", **node_env(server, room, tenant))
    expected = {"message": "Unauthorized", "data": UNAUTHORIZED}
    assert r["bad_token"] == expected
    assert r["bad_token_polling"] == expected


# -- undecodable packets on the lean WebSocket: 1002 and one INFO line, never 1011 -----------

@pytest.fixture
def log_lines(caplog):
    caplog.set_level(logging.INFO)

    def lines(level: int = logging.INFO) -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= level]

    return lines


def assert_one_line_malformed(lines) -> None:
    assert not lines(logging.ERROR), lines(logging.ERROR)  # no traceback
    found = [line for line in lines() if "malformed" in line]
    assert len(found) == 1 and "\n" not in found[0], found


@pytest.mark.parametrize("connected", [False, True], ids=["before-connect", "connected"])
@pytest.mark.parametrize("frame", [
    "4" + "[" * 5000,  # engine.io's JSON decode of the data nests past the stack: was 1011
    "4 2", "4-1", '4{"a": 1}', "4[1]",  # engine.io data that JSON-decodes to no string: 1003
], ids=["deep-json", "int", "negative", "object", "list"])
async def test_an_undecodable_packet_closes_1002_with_one_log_line(server, tenant, frame,
                                                                 connected, log_lines):
    sock = await eio_socket(server, tenant["api_key"] if connected else None)
    sock.send_text(frame)
    async with asyncio.timeout(TIMEOUT):
        assert await close_code(sock) == 1002
    sock.abort()
    assert_one_line_malformed(log_lines)


async def test_an_undecodable_packet_during_the_upgrade_closes_1002(server, http, tenant,
                                                                   log_lines):
    session, ws = await start_upgrade(server, http, tenant, "4" + "[" * 5000)
    closed = await next_frame(ws)
    assert closed.type is aiohttp.WSMsgType.CLOSE and closed.data == 1002
    assert (await session.ack(1, "ping", {}))["status"] == "ok"  # polling goes on
    assert_one_line_malformed(log_lines)


# -- a frame of exactly the maximum size is taken, one byte more is refused (1009) -----------

MAX_FRAME = 4096


@pytest.fixture
async def small_frames(make_server):
    return await make_server(ws_max_frame_bytes=MAX_FRAME)


def padded(head: str, tail: str, size: int) -> str:
    """`head` + padding + `tail`, `size` bytes in all."""
    return head + "x" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("extra", [0, 1], ids=["at-the-limit", "one-byte-over"])
async def test_raw_ws_frame_size_edge(small_frames, tenant, room, extra):
    sock = await StalledSocket.open(
        small_frames, f"/ws/{room['id']}?token={tenant['api_key']}&user_id=edge")
    frame = padded('{"type": "ping", "data": {"pad": "', '"}}', MAX_FRAME + extra)
    assert len(frame.encode()) == MAX_FRAME + extra
    sock.send_text(frame)
    if extra:
        assert await sock.close_code() == 1009
    else:
        async with asyncio.timeout(TIMEOUT):
            while True:
                opcode, payload = await sock.frame()
                assert opcode != 8, "closed instead of answering the frame"
                if opcode == 1 and json.loads(payload)["type"] == "pong":
                    break
    sock.abort()


@pytest.mark.parametrize("extra", [0, 1], ids=["at-the-limit", "one-byte-over"])
async def test_socketio_lean_frame_size_edge(small_frames, tenant, extra):
    sock = await eio_socket(small_frames, tenant["api_key"])
    frame = padded('421["ping",{"pad":"', '"}]', MAX_FRAME + extra)
    assert len(frame.encode()) == MAX_FRAME + extra
    sock.send_text(frame)
    async with asyncio.timeout(TIMEOUT):
        if extra:
            assert await close_code(sock) == 1009
        else:
            while True:
                opcode, payload = await sock.frame()
                assert opcode != 8, "closed instead of answering the frame"
                if payload.startswith(b"431"):
                    assert json.loads(payload[3:])[0]["status"] == "ok"
                    break
                if payload == b"2":
                    sock.send_text("3")
    sock.abort()


# -- heartbeats on time: PINGs one beat apart, a silent peer dropped within two beats --------
# At a 1 s beat. The bounds are the promise at the default 20 s (PINGs within 1 s of their
# schedule, a dead peer gone within 2 x heartbeat + 1 s) scaled down, with room for a busy
# test machine: each PING at most LATE after its schedule, the drop at most 2 beats + LATE
# after the peer's last bytes.

BEAT = 1.0
LATE = 0.2
PINGS = 3


@pytest.fixture
async def beating(make_server):
    return await make_server(heartbeat_seconds=BEAT, slow_consumer_seconds=5.0)


async def heartbeat(sock: StalledSocket, is_ping, pong) -> tuple[list[float], float, float]:
    """Answer PINGS pings, then none: when each PING came, when the last PONG went, and
    when the server dropped the connection (its close frame or the end of the stream)."""
    loop = asyncio.get_running_loop()
    pings: list[float] = []
    answered = loop.time()
    async with asyncio.timeout(PINGS * BEAT + 2 * BEAT + 3):
        while True:
            try:
                opcode, payload = await sock.frame()
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            if opcode == 8:
                break
            if is_ping(opcode, payload):
                pings.append(loop.time())
                if len(pings) <= PINGS:
                    pong(payload)
                    answered = loop.time()
    return pings, answered, loop.time()


def assert_on_time(pings: list[float], answered: float, dropped: float) -> None:
    assert len(pings) == PINGS + 1, pings  # the last one unanswered, then dropped
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert all(BEAT - LATE <= gap <= BEAT + LATE for gap in gaps), gaps
    assert dropped - answered <= 2 * BEAT + LATE, dropped - answered


async def test_raw_ws_heartbeat_is_on_time_and_drops_a_silent_peer(beating, tenant, room):
    sock = await StalledSocket.open(
        beating, f"/ws/{room['id']}?token={tenant['api_key']}&user_id=beat")
    pings, answered, dropped = await heartbeat(
        sock, lambda opcode, _: opcode == 9, lambda data: sock.send_text(data, opcode=10))
    sock.abort()
    assert_on_time(pings, answered, dropped)


async def test_socketio_heartbeat_is_on_time_and_drops_a_silent_peer(beating, tenant):
    sock = await eio_socket(beating, tenant["api_key"])
    pings, answered, dropped = await heartbeat(
        sock, lambda opcode, payload: opcode == 1 and payload == b"2",
        lambda _: sock.send_text("3"))
    sock.abort()
    assert_on_time(pings, answered, dropped)
