"""The server's Socket.IO packet class: the same packets as python-socketio's own."""

from __future__ import annotations

import pytest
import socketio

from app.realtime.sio import Packet

SAMPLES = [
    None, "text", 3, 2.5, True, [], {}, b"raw", bytearray(b"raw"),
    ["u1", "u2", 3, None, False],
    {"status": "ok", "data": {"online_users": [f"user-{i}" for i in range(2000)]}},
    ["message", {"content": "hi", "meta": {"file": b"\x00\x01"}}],
    [{"nested": [[["deep", b"x"]]]}],
    {"a": [1, {"b": [2, {"c": bytearray(b"y")}]}]},
    ("a", "tuple"),
]


@pytest.mark.parametrize("data", SAMPLES)
def test_binary_check_and_encoding_match_python_socketio(data):
    ours = Packet(socketio.packet.ACK, data=data, id=7)
    stock = socketio.packet.Packet(socketio.packet.ACK, data=data, id=7)
    assert Packet.data_is_binary(data) == socketio.packet.Packet.data_is_binary(data)
    assert ours.packet_type == stock.packet_type
    assert ours.encode() == stock.encode()
