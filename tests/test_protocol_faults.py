"""Protocol faults real clients and the official engine.io / Socket.IO suites find: what
socket.io-client reads from a refused CONNECT, undecodable packets on the lean WebSocket,
the frame-size edge on both WebSocket paths, and heartbeats on schedule."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.seed.test_seed_examples import node_env, run_node

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
