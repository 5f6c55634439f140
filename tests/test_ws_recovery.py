"""Recovery with `last_seq`: replay in order, then connection_status, then live; no loss, no dup."""

from __future__ import annotations

import asyncio

import pytest

from app.keys import HUB
from tests.test_realtime_helpers import connect

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage


@pytest.fixture
async def server(make_server, request):
    return await make_server(recovery_limit=getattr(request, "param", 20))


async def send(api, room_id: str, content: str) -> dict:
    status, body = await api.call("POST", f"/rooms/{room_id}/messages",
                                  {"sender_id": "sender", "content": content})
    assert status == 201, body
    return body["data"]


async def test_replay_then_status_then_live(server, http, api, tenant, room):
    a = await connect(http, server, room["id"], tenant["api_key"], user_id="alice")
    first = await send(api, room["id"], "m1")
    await a.next("message")
    await a.close()
    for i in range(2, 6):
        await send(api, room["id"], f"m{i}")
    status, _ = await api.call("DELETE", f"/messages/{(await send(api, room['id'], 'gone'))['id']}")
    assert status == 200
    b = await connect(http, server, room["id"], tenant["api_key"], status=False,
                      user_id="alice", last_seq=first["seq"])
    replayed = [await b.recv() for _ in range(4)]
    assert [e["type"] for e in replayed] == ["message"] * 4
    assert [e["data"]["content"] for e in replayed] == ["m2", "m3", "m4", "m5"]
    assert all(e["room_id"] == room["id"] for e in replayed)
    status_event = await b.recv()
    assert status_event["type"] == "connection_status"
    assert status_event["data"]["recovered"] is True
    assert status_event["data"]["missed"] == 4
    assert status_event["data"]["last_seq"] == 6
    await send(api, room["id"], "live")
    assert (await b.next("message"))["data"]["content"] == "live"
    await b.close()


async def test_status_never_counts_a_message_the_connection_missed(server, http, api, tenant,
                                                                    room):
    """A message sent while a connection is admitted but not yet in the room does not reach
    it live; connection_status's last_seq must not count it, so that recovering from that
    last_seq brings it."""
    hub = server.app[HUB]
    enter_user_room = hub.enter_user_room

    async def a_message_meanwhile(*args):
        hub.enter_user_room = enter_user_room
        await send(api, room["id"], "meanwhile")
        await enter_user_room(*args)

    hub.enter_user_room = a_message_meanwhile
    a = await connect(http, server, room["id"], tenant["api_key"], status=False, user_id="al")
    status_event = await a.recv()
    assert status_event["type"] == "connection_status"
    await a.close()
    b = await connect(http, server, room["id"], tenant["api_key"], status=False, user_id="al",
                      last_seq=status_event["data"]["last_seq"])
    replayed = await b.recv()
    assert replayed["type"] == "message" and replayed["data"]["content"] == "meanwhile"
    await b.close()


async def test_nothing_missed(server, http, api, tenant, room):
    await send(api, room["id"], "m1")
    a = await connect(http, server, room["id"], tenant["api_key"], status=False, last_seq=1)
    event = await a.recv()
    assert event["type"] == "connection_status"
    assert event["data"]["recovered"] is True and event["data"]["missed"] == 0
    await a.close()


async def test_more_than_the_limit_is_not_recovered(server, http, api, tenant, room):
    for i in range(25):
        await send(api, room["id"], f"m{i}")
    a = await connect(http, server, room["id"], tenant["api_key"], status=False, last_seq=0)
    events = [await a.recv() for _ in range(21)]
    assert [e["data"]["seq"] for e in events[:20]] == list(range(1, 21))
    assert events[20]["type"] == "connection_status"
    assert events[20]["data"]["recovered"] is False
    assert events[20]["data"]["missed"] == 20
    status, body = await api.call("GET", f"/rooms/{room['id']}/messages?after_seq=20")
    assert status == 200 and [m["seq"] for m in body["data"]] == [21, 22, 23, 24, 25]
    await a.close()


@pytest.mark.parametrize("server", [500], indirect=True)
async def test_no_loss_no_duplicate_with_a_concurrent_sender(server, http, api, tenant, room):
    for i in range(15):
        await send(api, room["id"], f"before-{i}")
    stop = asyncio.Event()

    async def sender() -> int:
        count = 0
        while not stop.is_set() and count < 60:
            await send(api, room["id"], f"during-{count}")
            count += 1
        return count

    task = asyncio.create_task(sender())
    await asyncio.sleep(0.01)
    clients = []
    for _ in range(3):  # reconnect a few times while the sender is busy
        clients.append(await connect(http, server, room["id"], tenant["api_key"],
                                     status=False, last_seq=5))
        await asyncio.sleep(0.02)
    stop.set()
    total = 15 + await asyncio.wait_for(task, 30)
    for client in clients:
        seqs: list[int] = []
        saw_status = False
        # the status follows the replay, which may already reach `total` (a slow backend)
        while not saw_status or not seqs or seqs[-1] < total:
            event = await client.recv()
            if event["type"] == "connection_status":
                assert not saw_status
                saw_status = True
                assert event["data"]["recovered"] is True
            elif event["type"] == "message":
                seqs.append(event["data"]["seq"])
        assert saw_status
        assert seqs == list(range(6, total + 1)), seqs
        await client.close()


async def test_bad_last_seq_is_ignored(server, http, api, tenant, room):
    await send(api, room["id"], "m1")
    a = await connect(http, server, room["id"], tenant["api_key"], status=False,
                      last_seq="minus-one")
    event = await a.recv()
    assert event["type"] == "connection_status" and event["data"]["missed"] == 0
    await a.close()
