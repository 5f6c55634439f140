"""One connection's messages are stored in the order they were received (seq order = send
order), even when storage answers the lookups before the write out of order, as a MongoDB
connection pool does. `OutOfOrder` answers the room lookups of a burst last-asked first:
without the per-connection turn (`app.services.ordering`) the seqs come out reversed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestServer

from app.config import Settings
from app.main import create_app
from app.services.ordering import SendOrder, Turn
from storage import create_storage
from tests.out_of_order import OutOfOrder
from tests.test_realtime_helpers import TIMEOUT, call, connect, sio_client  # noqa: F401

BURST = 5


@pytest.fixture
def store(settings: Settings) -> OutOfOrder:
    return OutOfOrder(create_storage(settings.database_url))


@pytest.fixture
async def server(settings: Settings, store: OutOfOrder) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(settings, storage=store), host="127.0.0.1")  # type: ignore[arg-type]
    await server.start_server()
    yield server
    await server.close()


async def history(api: Any, room_id: str) -> list[tuple[int, str]]:
    status, body = await api.call("GET", f"/rooms/{room_id}/messages?limit=100")
    assert status == 200, body
    return sorted((m["seq"], m["content"]) for m in body["data"])


async def test_raw_burst_is_stored_in_frame_order(server, http, api, tenant, room, store):
    key = tenant["api_key"]
    sub = await connect(http, server, room["id"], key, user_id="sub")
    pub = await connect(http, server, room["id"], key, user_id="pub")
    store.hold("get_room", BURST)
    for i in range(BURST):
        if i == 2:  # refused before any lookup: must not let a later message overtake
            await pub.send("message", {"content": "", "client_msg_id": "bad"})
        await pub.send("message", {"content": f"m{i}", "client_msg_id": f"c{i}"})
    replies = [await pub.next("message_ack") for _ in range(BURST)]
    assert store.order == list(reversed(range(BURST)))  # the lookups did answer last first
    assert [r["data"]["client_msg_id"] for r in replies] == [f"c{i}" for i in range(BURST)]
    seqs = [r["data"]["seq"] for r in replies]
    assert seqs == sorted(seqs)
    got = [(await sub.next("message"))["data"] for _ in range(BURST)]
    assert [(m["seq"], m["content"]) for m in got] == [(s, f"m{i}") for i, s in enumerate(seqs)]
    assert await history(api, room["id"]) == [(s, f"m{i}") for i, s in enumerate(seqs)]
    await pub.close()
    await sub.close()


async def test_sio_burst_is_stored_in_event_order(server, api, room, store, sio_client):  # noqa: F811
    client: socketio.AsyncClient = await sio_client(user_id="pub")
    assert (await call(client, "join", {"room_id": room["id"]}))["status"] == "ok"
    loop = asyncio.get_running_loop()
    acks = [loop.create_future() for _ in range(BURST)]
    store.hold("get_room", BURST)
    for i, ack in enumerate(acks):  # emitted without waiting: the events overlap
        await client.emit("message", {"room_id": room["id"], "content": f"m{i}",
                                      "client_msg_id": f"c{i}"}, callback=ack.set_result)
    answers = await asyncio.wait_for(asyncio.gather(*acks), TIMEOUT)
    assert store.order == list(reversed(range(BURST)))
    assert all(a["status"] == "ok" for a in answers), answers
    assert [a["data"]["content"] for a in answers] == [f"m{i}" for i in range(BURST)]
    seqs = [a["data"]["seq"] for a in answers]
    assert seqs == sorted(seqs)
    assert await history(api, room["id"]) == [(s, f"m{i}") for i, s in enumerate(seqs)]


async def test_turns_pass_in_receive_order_past_refused_and_cancelled():
    order = SendOrder()
    first, refused, cancelled, last = (order.turn() for _ in range(4))
    stored: list[str] = []

    async def store(name: str, turn: Turn) -> None:
        try:
            await turn.wait()
            stored.append(name)
        finally:
            turn.release()

    waiting_last = asyncio.ensure_future(store("last", last))
    waiting_cancelled = asyncio.ensure_future(store("cancelled", cancelled))
    await asyncio.sleep(0)  # both are waiting now
    refused.release()  # refused before its turn: must not let `last` overtake `first`
    waiting_cancelled.cancel()
    await asyncio.sleep(0)
    assert stored == [] and not waiting_last.done()
    await store("first", first)
    await asyncio.wait_for(waiting_last, TIMEOUT)
    assert stored == ["first", "last"]
    assert order.turn().release() is False  # free again: a new turn waits for nothing
