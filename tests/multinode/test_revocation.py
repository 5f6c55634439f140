"""Revocation on node A reaches sockets on node B: closed (raw) or
disconnected / dropped from the room (Socket.IO) with the documented code, and nothing
sent afterwards reaches them."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.multinode.conftest import ADMIN_KEY, TIMEOUT, Cluster, Node, Rest, Sio, new_room, raw
from tests.multinode.conftest import tenant as new_tenant
from tests.test_revocation import close_code_and_events, contents

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage


async def mint(api: Rest, node: Node, user_id: str) -> str:
    status, body = await api.call(node, "POST", "/tokens",
                                  {"user_id": user_id, "user_name": user_id.title()})
    assert status == 201, body
    return str(body["data"]["token"])


def on_disconnect(client: Sio) -> asyncio.Event:
    gone = asyncio.Event()

    async def mark(*_: Any) -> None:
        gone.set()

    client.client.on("disconnect", mark)
    return gone


async def revoked(client: Sio, gone: asyncio.Event, code: int) -> None:
    """The Socket.IO client got the `error` with `code`, then was disconnected."""
    await client.wait("error", code=code)
    await asyncio.wait_for(gone.wait(), TIMEOUT)


async def test_rotate_key_on_a_closes_key_sockets_on_b(
        cluster: Cluster, http: aiohttp.ClientSession, sio: Any) -> None:
    a, b = cluster.start(2)
    api = await new_tenant(http, a)
    room = await new_room(api, a)
    by_key = await raw(http, b, room, api.key, "keyed")
    sio_key = await sio().connect(b, api.key, "sio-keyed")
    gone = on_disconnect(sio_key)
    await sio_key.call("join", {"room_id": room})
    by_token = await raw(http, b, room, await mint(api, a, "tok"), "tok")

    status, body = await api.call(a, "POST", "/clients/me/rotate-key")
    assert status == 200, body
    await Rest(http, body["data"]["api_key"]).send(a, room, "bot", "after")

    await by_token.next("message", content="after")
    code, seen = await close_code_and_events(by_key)
    assert code == 4001 and contents(seen) == []
    await revoked(sio_key, gone, 4001)
    assert sio_key.of("message") == []


async def test_rotate_token_secret_on_a_closes_token_sockets_on_b(
        cluster: Cluster, http: aiohttp.ClientSession, sio: Any) -> None:
    a, b = cluster.start(2)
    api = await new_tenant(http, a)
    room = await new_room(api, a)
    token = await mint(api, a, "tess")
    by_token = await raw(http, b, room, token, "tess")
    sio_token = await sio().connect(b, token, "tess")
    gone = on_disconnect(sio_token)
    await sio_token.call("join", {"room_id": room})
    by_key = await raw(http, b, room, api.key, "keyed")

    status, body = await api.call(a, "POST", "/clients/me/rotate-token-secret")
    assert status == 200, body
    await api.send(a, room, "bot", "after")

    await by_key.next("message", content="after")
    code, seen = await close_code_and_events(by_token)
    assert code == 4001 and contents(seen) == []
    await revoked(sio_token, gone, 4001)
    assert sio_token.of("message") == []


async def test_deleting_the_client_on_a_closes_its_sockets_on_b(
        cluster: Cluster, http: aiohttp.ClientSession, sio: Any) -> None:
    a, b = cluster.start(2)
    api = await new_tenant(http, a)
    room = await new_room(api, a)
    by_key = await raw(http, b, room, api.key, "keyed")
    by_token = await raw(http, b, room, await mint(api, a, "tok"), "tok")
    sio_key = await sio().connect(b, api.key, "sio-keyed")
    gone = on_disconnect(sio_key)
    _, me = await api.call(a, "GET", "/clients/me")

    status, body = await Rest(http, ADMIN_KEY).call(a, "DELETE", f"/clients/{me['data']['id']}")
    assert status == 200, body

    assert (await close_code_and_events(by_key))[0] == 4001
    assert (await close_code_and_events(by_token))[0] == 4001
    await revoked(sio_key, gone, 4001)


async def test_removed_participant_on_a_is_dropped_from_the_room_on_b(
        cluster: Cluster, http: aiohttp.ClientSession, sio: Any) -> None:
    a, b = cluster.start(2)
    api = await new_tenant(http, a)
    status, body = await api.call(a, "POST", "/rooms", {"name": "secret", "is_private": True})
    assert status == 201, body
    secret = body["data"]["id"]
    for user_id in ("ann", "bob"):
        status, body = await api.call(a, "POST", f"/rooms/{secret}/join", {"user_id": user_id})
        assert status == 201, body
    ann_token = await mint(api, a, "ann")
    ann_raw = await raw(http, b, secret, ann_token, "ann")
    ann_sio = await sio().connect(b, ann_token, "ann")
    gone = on_disconnect(ann_sio)
    await ann_sio.call("join", {"room_id": secret})
    bob = await raw(http, b, secret, await mint(api, a, "bob"), "bob")

    status, body = await api.call(a, "POST", f"/rooms/{secret}/leave", {"user_id": "ann"})
    assert status == 200, body
    await api.send(a, secret, "bot", "for bob only")

    await bob.next("message", content="for bob only")
    code, seen = await close_code_and_events(ann_raw)
    assert code == 4003 and contents(seen) == []
    await ann_sio.wait("error", code=4003, room_id=secret)
    assert ann_sio.of("message") == []
    assert not gone.is_set()  # still connected: only that room is gone


async def test_room_deleted_or_deactivated_on_a_closes_its_sockets_on_b(
        cluster: Cluster, http: aiohttp.ClientSession, sio: Any) -> None:
    a, b = cluster.start(2)
    api = await new_tenant(http, a)
    deleted, deactivated = await new_room(api, a), await new_room(api, a)
    raw_deleted = await raw(http, b, deleted, api.key, "r1")
    raw_deactivated = await raw(http, b, deactivated, api.key, "r2")
    watcher = await sio().connect(b, api.key, "watcher")
    await watcher.call("join", {"room_id": deleted})
    await watcher.call("join", {"room_id": deactivated})

    status, _ = await api.call(a, "DELETE", f"/rooms/{deleted}")
    assert status == 200
    status, _ = await api.call(a, "POST", f"/rooms/{deactivated}/deactivate")
    assert status == 200

    assert (await close_code_and_events(raw_deleted))[0] == 4002
    assert (await close_code_and_events(raw_deactivated))[0] == 4003
    await watcher.wait("error", code=4002, room_id=deleted)
    await watcher.wait("error", code=4003, room_id=deactivated)
