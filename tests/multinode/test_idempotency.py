"""Idempotent sends across nodes: the same `client_msg_id` from the same sender, sent through
two nodes at the same instant, is stored once; both callers get that message (201 for the
one that stored it, 200 for the retry), nothing answers 5xx, and it is broadcast once.

On MongoDB both nodes may pass the retry lookup and take a seq; the unique index on
(room_id, sender_id, client_msg_id) then refuses the second insert (DuplicateKeyError) and
the loser answers with the winner's message (on SecantusDB nearly every round takes that path:
the loser's seq stays unused, so the stored seqs show gaps).
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.multinode.conftest import Cluster, new_room, raw, tenant

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage

ROUNDS = 30


async def test_same_client_msg_id_through_two_nodes_is_stored_once(
        cluster: Cluster, http: aiohttp.ClientSession) -> None:
    a, b = cluster.start(2)
    api = await tenant(http, a)
    room = await new_room(api, a)
    watcher = await raw(http, b, room, api.key, "watcher")
    path = f"/rooms/{room}/messages"

    for i in range(ROUNDS):
        body = {"sender_id": "alice", "content": f"m{i}", "client_msg_id": f"c{i}"}
        (status_a, got_a), (status_b, got_b) = await asyncio.gather(
            api.call(a, "POST", path, body), api.call(b, "POST", path, body))
        assert sorted([status_a, status_b]) == [200, 201], (i, got_a, got_b)
        assert got_a["data"]["id"] == got_b["data"]["id"], (i, got_a, got_b)
        assert got_a["data"]["seq"] == got_b["data"]["seq"]
        assert got_a["data"]["client_msg_id"] == f"c{i}"

    # broadcast once: everything before the marker is each message exactly once
    await api.send(a, room, "alice", "marker")
    seen = []
    while (event := await watcher.next("message"))["data"]["content"] != "marker":
        seen.append(event["data"]["client_msg_id"])
    assert seen == [f"c{i}" for i in range(ROUNDS)]

    status, listed = await api.call(a, "GET", f"{path}?limit=100")
    assert status == 200, listed
    stored = [m["client_msg_id"] for m in listed["data"] if m["content"] != "marker"]
    assert sorted(stored) == sorted(f"c{i}" for i in range(ROUNDS))
    assert listed["pagination"]["total"] == ROUNDS + 1
    status, room_body = await api.call(b, "GET", f"/rooms/{room}")
    assert status == 200 and room_body["data"]["message_count"] == ROUNDS + 1, room_body
    await watcher.close()
