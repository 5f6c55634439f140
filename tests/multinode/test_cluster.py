"""Two nodes, one Redis, one database (SQLite file or MongoDB): one event reaches every
subscriber, once (SPEC §6)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.multinode.conftest import Cluster, new_room, raw, tenant

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage


async def test_messages_from_a_reach_raw_and_sio_on_b_exactly_once(
        cluster: Cluster, http: aiohttp.ClientSession, sio: Any) -> None:
    a, b = cluster.start(2)
    api = await tenant(http, a)
    room = await new_room(api, a)
    watcher_raw = await raw(http, b, room, api.key, "braw")
    watcher_sio = await sio().connect(b, api.key, "bsio")
    await watcher_sio.call("join", {"room_id": room})
    sender_raw = await raw(http, a, room, api.key, "araw")
    sender_sio = await sio().connect(a, api.key, "asio")
    await sender_sio.call("join", {"room_id": room})

    await api.send(a, room, "rest-user", "via rest")
    await sender_raw.send("message", {"content": "via raw"})
    await sender_raw.next("message_ack")
    await sender_sio.call("message", {"room_id": room, "content": "via sio"})

    expected = ["via rest", "via raw", "via sio"]
    got_raw = [(await watcher_raw.next("message"))["data"]["content"] for _ in expected]
    got_sio = [e["data"]["content"] for e in await watcher_sio.wait("message", 3)]
    assert sorted(got_raw) == sorted(got_sio) == sorted(expected)
    await watcher_raw.silent("message", 0.5)  # and nothing twice
    assert len(watcher_sio.of("message")) == 3


async def test_online_users_are_global(cluster: Cluster, http: aiohttp.ClientSession,
                                       sio: Any) -> None:
    a, b = cluster.start(2)
    api = await tenant(http, a)
    room = await new_room(api, a)
    alice = await raw(http, a, room, api.key, "alice")
    bob = await sio().connect(b, api.key, "bob")
    status = await bob.call("join", {"room_id": room})
    assert status["online_users"] == ["alice", "bob"]
    await alice.next("user_joined", user_id="bob")
    await alice.send("get_online_users")
    assert (await alice.next("connection_status"))["data"]["online_users"] == ["alice", "bob"]
    for node in (a, b):
        code, body = await api.call(node, "GET", f"/rooms/{room}/online")
        assert code == 200
        assert body["data"] == {"online_users": ["alice", "bob"], "total_online": 2}


async def test_a_user_with_tabs_on_both_nodes_leaves_once(
        cluster: Cluster, http: aiohttp.ClientSession) -> None:
    a, b = cluster.start(2)
    api = await tenant(http, a)
    room = await new_room(api, a)
    observer = await raw(http, b, room, api.key, "observer")
    tab_a = await raw(http, a, room, api.key, "carol")
    await observer.next("user_joined", user_id="carol")
    tab_b = await raw(http, b, room, api.key, "carol")
    await observer.silent("user_joined", 0.3)

    await tab_a.close()
    await observer.silent("user_left", 0.5)
    _, body = await api.call(b, "GET", f"/rooms/{room}/online")
    assert "carol" in body["data"]["online_users"]
    await tab_b.close()
    await observer.next("user_left", user_id="carol")
    await observer.silent("user_left", 0.5)
    _, body = await api.call(a, "GET", f"/rooms/{room}/online")
    assert body["data"]["online_users"] == ["observer"]


async def test_notifications_reach_users_on_any_node(
        cluster: Cluster, http: aiohttp.ClientSession, sio: Any) -> None:
    a, b = cluster.start(2)
    api = await tenant(http, a)
    room = await new_room(api, a)
    dave_raw = await raw(http, b, room, api.key, "dave")
    dave_sio = await sio().connect(b, api.key, "dave")
    code, body = await api.call(a, "POST", "/notifications", {
        "title": "hi", "content": "ping", "user_ids": ["dave", "nobody"]})
    assert code == 201, body
    assert body["data"]["recipients_online"] == 1
    assert body["data"]["delivered_connections"] == 2
    assert (await dave_raw.next("notification"))["data"]["title"] == "hi"
    await dave_sio.wait("notification")


async def test_rest_rate_limits_are_shared(cluster: Cluster,
                                           http: aiohttp.ClientSession) -> None:
    a, b = cluster.start(2, rate_limit_per_second=0.01, rate_limit_burst=6)
    api = await tenant(http, a)  # the admin key's own bucket
    statuses = []
    for i in range(8):
        code, _ = await api.call((a, b)[i % 2], "GET", "/rooms")
        statuses.append(code)
    assert statuses == [200] * 6 + [429] * 2


async def test_concurrent_sends_through_both_nodes_share_one_sequence(
        cluster: Cluster, http: aiohttp.ClientSession) -> None:
    a, b = cluster.start(2)
    api = await tenant(http, a)
    room = await new_room(api, a)
    sends = [api.send((a, b)[i % 2], room, f"u{i % 2}", f"m{i}") for i in range(60)]
    stored = await asyncio.gather(*sends)
    assert sorted(m["seq"] for m in stored) == list(range(1, 61))
