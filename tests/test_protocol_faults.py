"""Protocol faults real clients and the official engine.io / Socket.IO suites find: what
socket.io-client reads from a refused CONNECT, undecodable packets on the lean WebSocket,
the frame-size edge on both WebSocket paths, and heartbeats on schedule."""

from __future__ import annotations

import asyncio
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
