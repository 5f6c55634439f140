"""Revocation reaches open sockets: rotating the API key or the token secret,
deleting the client, removing a participant from a private room, deactivating a room and
token expiry close (raw) or disconnect / drop from the room (Socket.IO) the affected sockets,
and no event sent afterwards reaches them. One node here; tests/multinode has two."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import jwt
import pytest
import socketio

from app.keys import HUB
from tests import test_realtime_helpers as rt
from tests.conftest import Api
from tests.test_realtime_helpers import TIMEOUT, RawClient, call, connect
from tests.test_ws_lifecycle import wait_until

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage

sio_client = rt.sio_client


@pytest.fixture
async def server(make_server):
    # a fast liveness tick (half of slow_consumer_seconds): token expiry is checked on it
    return await make_server(slow_consumer_seconds=0.2)


class Events:
    """Every event a Socket.IO client gets, and whether the server disconnected it."""

    def __init__(self, client: socketio.AsyncClient) -> None:
        self.client = client
        self.items: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.disconnected = asyncio.Event()
        client.on("*", self._record)
        client.on("disconnect", self._gone)

    async def _record(self, event: str, data: Any = None) -> None:
        self.items.append(data if isinstance(data, dict) else {"type": event, "data": data})
        self.arrived.set()

    async def _gone(self, *_: Any) -> None:
        self.disconnected.set()

    def of(self, event_type: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.items if e.get("type") == event_type and all(
            e["data"].get(k) == v for k, v in match.items())]

    async def wait(self, event_type: str, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            while not (found := self.of(event_type, **match)):
                self.arrived.clear()
                await self.arrived.wait()
        return found[0]

    async def wait_disconnected(self) -> None:
        await asyncio.wait_for(self.disconnected.wait(), TIMEOUT)


async def joined(client: socketio.AsyncClient, *room_ids: str) -> Events:
    events = Events(client)
    for room_id in room_ids:
        ack = await call(client, "join", {"room_id": room_id})
        assert ack["status"] == "ok", ack
    return events


async def close_code_and_events(client: RawClient) -> tuple[int | None, list[dict[str, Any]]]:
    """Read until the server closes the socket: its close code and every event before it."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            msg = await client.ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                seen.append(msg.json())
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                              aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                return client.ws.close_code, seen


def contents(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["content"] for e in events if e.get("type") == "message"]


async def mint(api: Api, user_id: str, ttl_seconds: int = 3600) -> str:
    status, body = await api.call("POST", "/tokens",
                                  {"user_id": user_id, "ttl_seconds": ttl_seconds})
    assert status == 201, body
    return str(body["data"]["token"])


async def send(api: Api, room_id: str, content: str, sender: str = "admin-bot") -> None:
    status, body = await api.call("POST", f"/rooms/{room_id}/messages",
                                  {"sender_id": sender, "content": content})
    assert status == 201, body


async def stored(api: Api, room_id: str) -> list[str]:
    status, body = await api.call("GET", f"/rooms/{room_id}/messages?limit=100")
    assert status == 200, body
    return [m["content"] for m in body["data"]]


async def test_rotate_key_closes_key_sockets_with_4001_and_refuses_their_sends(
        server, http, api, tenant, room, sio_client):
    raw = await connect(http, server, room["id"], tenant["api_key"], user_id="keyed")
    sio = await sio_client(user_id="keyed-sio")
    sio_events = await joined(sio, room["id"])
    on_token = await connect(http, server, room["id"], await mint(api, "tok"))

    status, body = await api.call("POST", "/clients/me/rotate-key")
    assert status == 200, body
    # sent at once, before either socket has read its close: neither may be stored
    await raw.send("message", {"content": "raw after rotate"})
    try:
        await sio.emit("message", {"room_id": room["id"], "content": "sio after rotate"})
    except socketio.exceptions.BadNamespaceError:
        pass  # already disconnected: nothing sent either
    new_api = api.as_key(body["data"]["api_key"])
    await send(new_api, room["id"], "after")

    await on_token.next("message", content="after")  # the token socket is untouched
    code, seen = await close_code_and_events(raw)
    assert code == 4001
    assert not [e for e in seen if e["type"] in ("message", "message_ack")], seen
    error = await sio_events.wait("error", code=4001)
    assert error["data"]["message"] == "Unauthorized"
    assert "rotated" in error["data"]["detail"]
    await sio_events.wait_disconnected()
    assert contents(sio_events.items) == []
    assert await stored(new_api, room["id"]) == ["after"]
    await on_token.close()


async def test_rotate_token_secret_closes_token_sockets_with_4001(
        server, http, api, tenant, room, sio_client):
    token = await mint(api, "tess")
    raw = await connect(http, server, room["id"], token)
    sio = await sio_client(token=token)
    sio_events = await joined(sio, room["id"])
    on_key = await connect(http, server, room["id"], tenant["api_key"], user_id="keyed")

    status, body = await api.call("POST", "/clients/me/rotate-token-secret")
    assert status == 200, body
    await send(api, room["id"], "after")

    await on_key.next("message", content="after")  # key sockets are untouched
    code, seen = await close_code_and_events(raw)
    assert code == 4001 and contents(seen) == []
    await sio_events.wait("error", code=4001)
    await sio_events.wait_disconnected()
    assert contents(sio_events.items) == []
    await on_key.close()


async def test_deleting_the_client_closes_every_socket_of_it_with_4001(
        server, http, admin, api, tenant, room, sio_client):
    by_key = await connect(http, server, room["id"], tenant["api_key"], user_id="keyed")
    by_token = await connect(http, server, room["id"], await mint(api, "tok"))
    sio = await sio_client(user_id="keyed-sio")
    sio_events = await joined(sio, room["id"])

    status, body = await admin.call("DELETE", f"/clients/{tenant['id']}")
    assert status == 200, body

    assert (await close_code_and_events(by_key))[0] == 4001
    assert (await close_code_and_events(by_token))[0] == 4001
    await sio_events.wait("error", code=4001)
    await sio_events.wait_disconnected()
    hub = server.app[HUB]
    await wait_until(lambda: not hub.raw and not hub.sio_sessions)  # all detached


async def private_room(api: Api, *members: str) -> str:
    status, body = await api.call("POST", "/rooms", {"name": "secret", "is_private": True})
    assert status == 201, body
    room_id = str(body["data"]["id"])
    for user_id in members:
        status, body = await api.call("POST", f"/rooms/{room_id}/join", {"user_id": user_id})
        assert status == 201, body
    return room_id


async def test_removed_participant_is_dropped_from_the_private_room_only(
        server, http, api, tenant, room, sio_client):
    secret = await private_room(api, "ann", "bob")
    ann_token = await mint(api, "ann")
    ann_raw_secret = await connect(http, server, secret, ann_token)
    ann_raw_public = await connect(http, server, room["id"], ann_token)
    ann_by_key = await connect(http, server, secret, tenant["api_key"], user_id="ann")
    ann_sio = await sio_client(token=ann_token)
    ann_events = await joined(ann_sio, secret, room["id"])
    bob = await connect(http, server, secret, await mint(api, "bob"))

    status, body = await api.call("POST", f"/rooms/{secret}/leave", {"user_id": "ann"})
    assert status == 200, body
    await send(api, secret, "for bob only")
    await send(api, room["id"], "public news")

    await bob.next("message", content="for bob only")
    for raw in (ann_raw_secret, ann_by_key):
        code, seen = await close_code_and_events(raw)
        assert code == 4003 and contents(seen) == []
    error = await ann_events.wait("error", code=4003, room_id=secret)
    assert error["room_id"] == secret
    await ann_events.wait("message", content="public news")  # still connected, other room
    await ann_raw_public.next("message", content="public news")
    assert contents(ann_events.of("message", room_id=secret)) == []
    assert not ann_events.disconnected.is_set()
    ack = await call(ann_sio, "get_online_users", {"room_id": secret})
    assert ack["status"] == "error" and ack["error"]["code"] == "NOT_IN_ROOM"
    for client in (ann_raw_public, bob):
        await client.close()


async def test_leaving_a_public_room_keeps_its_sockets(server, http, api, tenant, room):
    """Only private rooms check membership at the door, so only they drop the sockets."""
    raw = await connect(http, server, room["id"], tenant["api_key"], user_id="pat")
    status, body = await api.call("POST", f"/rooms/{room['id']}/leave", {"user_id": "pat"})
    assert status == 200, body
    await send(api, room["id"], "still here")
    await raw.next("message", content="still here")
    await raw.close()


async def test_a_room_made_private_keeps_only_its_participants_connected(
        server, http, api, tenant, room):
    """Connecting to a public room makes you a participant; one who left since is dropped
    when the room turns private, the others stay."""
    pat = await connect(http, server, room["id"], tenant["api_key"], user_id="pat")
    kim = await connect(http, server, room["id"], tenant["api_key"], user_id="kim")
    status, body = await api.call("POST", f"/rooms/{room['id']}/leave", {"user_id": "pat"})
    assert status == 200, body
    status, body = await api.call("PUT", f"/rooms/{room['id']}", {"is_private": True})
    assert status == 200 and body["data"]["is_private"], body
    await send(api, room["id"], "members only")
    code, seen = await close_code_and_events(pat)
    assert code == 4003 and contents(seen) == []
    await kim.next("message", content="members only")
    await kim.close()


async def test_deactivated_room_drops_socketio_members_with_4003(
        server, http, api, tenant, room, sio_client):
    sio = await sio_client(user_id="sam")
    events = await joined(sio, room["id"])
    status, body = await api.call("POST", f"/rooms/{room['id']}/deactivate")
    assert status == 200, body
    await events.wait("error", code=4003, room_id=room["id"])
    ack = await call(sio, "get_online_users", {"room_id": room["id"]})
    assert ack["status"] == "error" and ack["error"]["code"] == "NOT_IN_ROOM"
    assert not events.disconnected.is_set()


async def test_expired_token_closes_its_sockets_with_4001_without_a_task_each(
        server, http, api, tenant, room, sio_client):
    hub = server.app[HUB]
    token = await mint(api, "eve", ttl_seconds=60)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    on_key = await connect(http, server, room["id"], tenant["api_key"], user_id="keyed")
    await joined(await sio_client(user_id="keyed-sio"), room["id"])  # per-server tasks start
    await asyncio.sleep(0.2)
    before = set(asyncio.all_tasks())
    raw = await connect(http, server, room["id"], token)
    sio = await sio_client(token=token)
    sio_events = await joined(sio, room["id"])
    await asyncio.sleep(0.3)  # let the connect-time work finish: what stays is per socket
    assert rt.server_tasks_since(before) == []

    hub.clock = lambda: exp + 59  # past `exp`, within the 60 s skew REST allows too
    await raw.silent("user_left", 0.4)  # several liveness ticks
    assert not sio_events.of("error")

    hub.clock = lambda: exp + 61
    code, seen = await close_code_and_events(raw)
    assert code == 4001 and contents(seen) == []
    error = await sio_events.wait("error", code=4001)
    assert "expired" in error["data"]["detail"]
    await sio_events.wait_disconnected()
    await send(api, room["id"], "after expiry")
    await on_key.next("message", content="after expiry")
    assert contents(sio_events.items) == []
    assert hub.expiries == [] or all(sid not in hub.raw for _, sid in hub.expiries)
    await on_key.close()


class HeldLookup:
    """The next API key lookup reads the stored client, then waits until released: a
    socket whose key was checked just before a rotation, registering just after it."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.original = storage.get_client_by_key_hash
        self.looked_up = asyncio.Event()
        self.release = asyncio.Event()
        storage.get_client_by_key_hash = self._held

    async def _held(self, key_hash: str) -> Any:
        self.storage.get_client_by_key_hash = self.original  # only this once
        client = await self.original(key_hash)
        self.looked_up.set()
        await self.release.wait()
        return client

    async def rotate_meanwhile(self, api: Api) -> str:
        """Rotate the key once the held lookup has read the client; the new key."""
        await asyncio.wait_for(self.looked_up.wait(), TIMEOUT)
        status, body = await api.call("POST", "/clients/me/rotate-key")
        assert status == 200, body
        self.release.set()
        return str(body["data"]["api_key"])


async def test_a_key_checked_before_a_rotation_is_not_let_in_after_it(
        server, http, api, tenant, room):
    storage = server.app[HUB].storage
    held = HeldLookup(storage)
    opening = asyncio.ensure_future(
        connect(http, server, room["id"], tenant["api_key"], user_id="late", status=False))
    new_key = await held.rotate_meanwhile(api)
    code, seen = await close_code_and_events(await asyncio.wait_for(opening, TIMEOUT))
    assert code == 4001 and contents(seen) == []

    held = HeldLookup(storage)
    client = socketio.AsyncClient(reconnection=False)
    errors: asyncio.Queue = asyncio.Queue()
    client.on("connect_error", errors.put_nowait)
    opening = asyncio.ensure_future(asyncio.wait_for(client.connect(
        str(server.make_url("")), auth={"token": new_key, "user_id": "late"},
        transports=["websocket"]), TIMEOUT))
    await held.rotate_meanwhile(api.as_key(new_key))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await opening
    error = await asyncio.wait_for(errors.get(), TIMEOUT)
    assert error["code"] == 4001 and "revoked" in error["detail"]
