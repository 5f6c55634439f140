"""A raw publisher's messages are stored concurrently (their fan-outs share loop iterations),
yet everything it sees stays in order: acks, errors and other replies in the order of its
frames, and every subscriber gets the messages in seq order."""

from __future__ import annotations

import pytest

from tests.test_realtime_helpers import connect

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage


async def test_burst_keeps_every_order(server, http, tenant, room):
    key = tenant["api_key"]
    sub = await connect(http, server, room["id"], key, user_id="sub")
    pub = await connect(http, server, room["id"], key, user_id="pub")
    for i in range(30):
        if i == 10:
            await pub.send("message", {"content": "", "client_msg_id": "bad"})  # refused
        if i == 20:
            await pub.send("ping")
        await pub.send("message", {"content": f"m{i}", "client_msg_id": f"c{i}"})
    replies = []
    while len(replies) < 32:
        event = await pub.recv()
        if event["type"] in ("message_ack", "error", "pong"):
            replies.append(event)
    kinds = [(e["type"], e["data"].get("client_msg_id")) for e in replies]
    expected = [("message_ack", f"c{i}") for i in range(30)]
    expected.insert(10, ("error", "bad"))
    expected.insert(21, ("pong", None))
    assert kinds == expected
    seqs = [e["data"]["seq"] for e in replies if e["type"] == "message_ack"]
    assert seqs == sorted(seqs)
    got = [(await sub.next("message"))["data"]["seq"] for _ in range(30)]
    assert got == seqs
    await pub.close()
    await sub.close()
