"""The official socket.io-client (Node) against ChatAPI's lean Socket.IO WebSockets
(`app.realtime.sio_transport.LeanSocket`): a WebSocket-only client and one upgraded from
polling, bursts interleaved with acks and pings, nothing lost or reordered."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.realtime import sio_transport
from tests.seed.test_seed_examples import node_env, run_node

CLIENT = Path(__file__).resolve().parent.parent / "bench/loadgen/node_modules/socket.io-client"

pytestmark = pytest.mark.skipif(shutil.which("node") is None or not CLIENT.is_dir(),
                                reason="node or bench/loadgen's socket.io-client missing")


async def test_official_client_gets_every_event_in_order(server, tenant, room, monkeypatch):
    lean = set()  # the engine.io sockets whose frames left through a lean WebSocket
    send_out = sio_transport.LeanSocket.send_out
    monkeypatch.setattr(sio_transport.LeanSocket, "send_out",
                        lambda self: (lean.add(self.sid), send_out(self))[1])
    r = await run_node("../sio_node/official_client.mjs", **node_env(server, room, tenant))
    assert r["join"] == ["ok", "ok"]
    assert r["acks"] == ["ok"] * 60 and r["pongs"] == ["ok"] * 6
    assert r["alice_transport"] == "websocket"
    seqs = sorted(r["acked_seqs"])
    assert r["alice"] == seqs and r["bob"] == seqs
    assert len(lean) == 2, "the WebSocket-only and the upgraded client both run lean"
