"""The storage contract, written against `storage.base.Storage` only; runs on every backend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from storage.base import (
    MessageQuery,
    NotificationQuery,
    Record,
    RecordNotFound,
    RoomQuery,
    Storage,
    StorageError,
    StorageUnavailable,
)

Clock = Callable[[], str]


def new_id() -> str:
    return str(uuid.uuid4())


async def add_client(storage: Storage, clock: Clock, **fields: Any) -> Record:
    client = {"id": new_id(), "name": "acme", "description": None,
              "api_key_hash": uuid.uuid4().hex, "token_secret": uuid.uuid4().hex,
              "is_active": True, "created_at": clock(), **fields}
    return await storage.create_client(client)


async def add_room(storage: Storage, clock: Clock, client: Record, **fields: Any) -> Record:
    now = clock()
    room = {"id": new_id(), "client_id": client["id"], "name": "lobby", "description": None,
            "is_active": True, "is_private": False, "meta": {}, "created_at": now,
            "updated_at": now, **fields}
    return await storage.create_room(room)


def message_for(room: Record, clock: Clock, **fields: Any) -> Record:
    now = clock()
    return {"id": new_id(), "room_id": room["id"], "client_id": room["client_id"],
            "sender_id": "alice", "sender_name": "Alice", "content": "hello",
            "message_type": "text", "meta": {}, "client_msg_id": None, "created_at": now,
            "updated_at": None, "edited_at": None, "edit_reason": None, "is_deleted": False,
            "deleted_at": None, "deleted_by": None, **fields}


async def send(storage: Storage, room: Record, clock: Clock, **fields: Any) -> Record:
    stored, created = await storage.add_message(message_for(room, clock, **fields))
    assert created
    return stored


async def join(storage: Storage, room: Record, user_id: str, clock: Clock, **fields: Any) -> bool:
    return await storage.add_participant({
        "room_id": room["id"], "user_id": user_id, "user_name": user_id.title(),
        "joined_at": clock(), "meta": {}, "last_read_seq": 0, **fields})


async def notify(storage: Storage, clock: Clock, client: Record, **fields: Any) -> Record:
    return await storage.add_notification({
        "id": new_id(), "client_id": client["id"], "title": "Hi", "content": "News",
        "room_id": None, "user_ids": None, "action_url": None, "priority": "normal",
        "icon": None, "meta": {}, "status": "sent", "recipients_online": 0,
        "delivered_connections": 0, "created_at": clock(), **fields})


async def room_now(storage: Storage, room: Record) -> Record:
    fresh = await storage.get_room(room["client_id"], room["id"])
    assert fresh is not None
    return fresh


def seqs(items: list[Record]) -> list[int]:
    return [item["seq"] for item in items]


@pytest.fixture
async def client(storage: Storage, clock: Clock) -> Record:
    return await add_client(storage, clock)


@pytest.fixture
async def room(storage: Storage, clock: Clock, client: Record) -> Record:
    return await add_room(storage, clock, client)


# -- lifecycle --------------------------------------------------------------------------------
async def test_check_passes_when_open(storage: Storage) -> None:
    await storage.check()


async def test_closed_storage_is_unavailable(storage: Storage, client: Record) -> None:
    await storage.close()
    await storage.close()  # safe twice
    with pytest.raises(StorageUnavailable):
        await storage.check()
    with pytest.raises(StorageUnavailable):
        await storage.get_client(client["id"])
    with pytest.raises(StorageUnavailable):
        await storage.list_rooms(client["id"], RoomQuery())


# -- clients ----------------------------------------------------------------------------------
async def test_client_crud(storage: Storage, clock: Clock) -> None:
    created = await add_client(storage, clock, name="acme", description="Acme Inc")
    assert created["is_active"] is True
    assert await storage.get_client(created["id"]) == created
    assert await storage.get_client(new_id()) is None
    assert await storage.get_client_by_key_hash(created["api_key_hash"]) == created
    assert await storage.get_client_by_key_hash("nope") is None

    rotated = await storage.update_client(
        created["id"], {"api_key_hash": "new-hash", "is_active": False})
    assert rotated is not None
    assert rotated["api_key_hash"] == "new-hash" and rotated["is_active"] is False
    assert rotated["name"] == "acme"
    assert await storage.get_client_by_key_hash(created["api_key_hash"]) is None
    assert await storage.get_client_by_key_hash("new-hash") == rotated
    assert await storage.update_client(new_id(), {"name": "x"}) is None


async def test_list_and_count_clients(storage: Storage, clock: Clock) -> None:
    made = [await add_client(storage, clock, name=f"c{i}") for i in range(5)]
    assert await storage.count_clients() == 5
    items, total = await storage.list_clients(0, 50)
    assert total == 5 and [c["id"] for c in items] == [c["id"] for c in made]
    items, total = await storage.list_clients(1, 2)
    assert total == 5 and [c["name"] for c in items] == ["c1", "c2"]


async def test_delete_client_cascades(storage: Storage, clock: Clock) -> None:
    doomed, kept = await add_client(storage, clock), await add_client(storage, clock)
    doomed_room = await add_room(storage, clock, doomed)
    kept_room = await add_room(storage, clock, kept)
    for target in (doomed_room, kept_room):
        await join(storage, target, "alice", clock)
        await send(storage, target, clock)
    gone_msg = await send(storage, doomed_room, clock)
    gone_note = await notify(storage, clock, doomed)
    kept_note = await notify(storage, clock, kept)

    assert await storage.delete_client(doomed["id"]) is True
    assert await storage.delete_client(doomed["id"]) is False
    assert await storage.get_client(doomed["id"]) is None
    assert await storage.get_room(doomed["id"], doomed_room["id"]) is None
    assert await storage.get_message(doomed["id"], gone_msg["id"]) is None
    assert await storage.get_participant(doomed_room["id"], "alice") is None
    assert await storage.list_messages(doomed_room["id"], MessageQuery()) == ([], 0)
    assert await storage.get_notification(doomed["id"], gone_note["id"]) is None
    assert await storage.count_clients() == 1
    # The other tenant is untouched.
    assert await storage.get_room(kept["id"], kept_room["id"]) is not None
    assert (await storage.list_messages(kept_room["id"], MessageQuery()))[1] == 1
    assert await storage.get_notification(kept["id"], kept_note["id"]) is not None


# -- rooms ------------------------------------------------------------------------------------
async def test_create_and_get_room(storage: Storage, clock: Clock, client: Record) -> None:
    room = await add_room(storage, clock, client, name="Ops", description="d",
                          is_private=True, meta={"topic": "x", "n": [1, 2]})
    assert room["participant_count"] == 0 and room["message_count"] == 0
    assert room["last_seq"] == 0 and room["last_message_at"] is None
    fetched = await storage.get_room(client["id"], room["id"])
    assert fetched == room
    assert fetched["is_private"] is True and fetched["is_active"] is True
    assert fetched["meta"] == {"topic": "x", "n": [1, 2]}
    assert await storage.get_room(client["id"], new_id()) is None


async def test_room_tenant_isolation(storage: Storage, clock: Clock, room: Record) -> None:
    other = await add_client(storage, clock)
    assert await storage.get_room(other["id"], room["id"]) is None
    assert await storage.update_room(other["id"], room["id"], {"name": "x"}) is None
    assert await storage.delete_room(other["id"], room["id"]) is False
    assert await storage.list_rooms(other["id"], RoomQuery()) == ([], 0)
    assert (await room_now(storage, room))["name"] == "lobby"


async def test_create_room_for_unknown_client(storage: Storage, clock: Clock) -> None:
    with pytest.raises(RecordNotFound):
        await add_room(storage, clock, {"id": new_id()})


async def test_list_rooms_paging(storage: Storage, clock: Clock, client: Record) -> None:
    made = [await add_room(storage, clock, client, name=f"r{i}") for i in range(7)]
    items, total = await storage.list_rooms(client["id"], RoomQuery(skip=2, limit=3))
    assert total == 7
    assert [r["id"] for r in items] == [r["id"] for r in reversed(made)][2:5]
    items, total = await storage.list_rooms(client["id"], RoomQuery(skip=10))
    assert (items, total) == ([], 7)


@pytest.mark.parametrize(("sort", "expected"), [
    ("name", ["alpha", "bravo", "charlie"]),
    ("-name", ["charlie", "bravo", "alpha"]),
    ("created_at", ["bravo", "charlie", "alpha"]),
    ("-created_at", ["alpha", "charlie", "bravo"]),
])
async def test_list_rooms_sorts(
    storage: Storage, clock: Clock, client: Record, sort: str, expected: list[str]
) -> None:
    for name in ("bravo", "charlie", "alpha"):
        await add_room(storage, clock, client, name=name)
    items, _ = await storage.list_rooms(client["id"], RoomQuery(sort=sort))
    assert [r["name"] for r in items] == expected


@pytest.mark.parametrize(("needle", "expected"), [
    ("%", {"100% real"}),
    ("_", {"under_score"}),
    (".*", {"a.*b"}),
    ("\\", {"back\\slash"}),
    ("[a]", {"set [a]"}),
    ("REAL", {"100% real", "100 real"}),
    ("ÉCOLE", {"école"}),
    ("topic", {"plain"}),  # description
    ("nothing-like-this", set()),
])
async def test_list_rooms_search_is_literal(
    storage: Storage, clock: Clock, client: Record, needle: str, expected: set[str]
) -> None:
    names = ["100% real", "100 real", "under_score", "underXscore", "a.*b", "axxb",
             "back\\slash", "set [a]", "set a", "école"]
    for name in names:
        await add_room(storage, clock, client, name=name)
    await add_room(storage, clock, client, name="plain", description="The Topic here")
    items, total = await storage.list_rooms(client["id"], RoomQuery(search=needle))
    assert {r["name"] for r in items} == expected
    assert total == len(expected)


async def test_list_rooms_is_active(storage: Storage, clock: Clock, client: Record) -> None:
    live = await add_room(storage, clock, client, name="live")
    dead = await add_room(storage, clock, client, name="dead", is_active=False)
    items, total = await storage.list_rooms(client["id"], RoomQuery(is_active=True))
    assert [r["id"] for r in items] == [live["id"]] and total == 1
    items, total = await storage.list_rooms(client["id"], RoomQuery(is_active=False))
    assert [r["id"] for r in items] == [dead["id"]] and total == 1
    assert (await storage.list_rooms(client["id"], RoomQuery()))[1] == 2


async def test_list_rooms_visible_to(storage: Storage, clock: Clock, client: Record) -> None:
    public = await add_room(storage, clock, client, name="public")
    mine = await add_room(storage, clock, client, name="mine", is_private=True)
    await add_room(storage, clock, client, name="theirs", is_private=True)
    assert await join(storage, mine, "alice", clock)
    items, total = await storage.list_rooms(
        client["id"], RoomQuery(visible_to="alice", sort="name"))
    assert [r["id"] for r in items] == [mine["id"], public["id"]] and total == 2
    items, total = await storage.list_rooms(client["id"], RoomQuery(visible_to="bob"))
    assert [r["id"] for r in items] == [public["id"]] and total == 1


async def test_list_rooms_by_ids(storage: Storage, clock: Clock, client: Record) -> None:
    rooms = [await add_room(storage, clock, client, name=f"room-{i}") for i in range(5)]
    wanted = (rooms[3]["id"], rooms[0]["id"], new_id())
    items, total = await storage.list_rooms(
        client["id"], RoomQuery(ids=wanted, sort="name", limit=1))
    assert [r["id"] for r in items] == [rooms[0]["id"]] and total == 2
    items, total = await storage.list_rooms(client["id"], RoomQuery(ids=()))
    assert items == [] and total == 0


async def test_update_room(storage: Storage, room: Record) -> None:
    updated = await storage.update_room(room["client_id"], room["id"], {
        "name": "renamed", "is_private": True, "meta": {"a": 1}, "is_active": False,
        "updated_at": "2030-01-01T00:00:00.000Z"})
    assert updated is not None
    assert updated["name"] == "renamed" and updated["is_private"] is True
    assert updated["is_active"] is False and updated["meta"] == {"a": 1}
    assert updated["updated_at"] == "2030-01-01T00:00:00.000Z"
    assert updated["created_at"] == room["created_at"]
    assert await room_now(storage, room) == updated
    assert await storage.update_room(room["client_id"], new_id(), {"name": "x"}) is None


async def test_delete_room_cascades(storage: Storage, clock: Clock, client: Record) -> None:
    room = await add_room(storage, clock, client)
    other = await add_room(storage, clock, client)
    await join(storage, room, "alice", clock)
    await join(storage, other, "alice", clock)
    msg = await send(storage, room, clock)
    kept = await send(storage, other, clock)
    assert await storage.delete_room(client["id"], room["id"]) is True
    assert await storage.delete_room(client["id"], room["id"]) is False
    assert await storage.get_room(client["id"], room["id"]) is None
    assert await storage.get_message(client["id"], msg["id"]) is None
    assert await storage.get_participant(room["id"], "alice") is None
    assert await storage.list_participants(room["id"], 0, 50) == ([], 0)
    assert await storage.get_message(client["id"], kept["id"]) is not None
    assert await storage.get_participant(other["id"], "alice") is not None


# -- participants -----------------------------------------------------------------------------
async def test_participants(storage: Storage, clock: Clock, room: Record) -> None:
    assert await join(storage, room, "bob", clock, meta={"role": "mod"}) is True
    assert await join(storage, room, "alice", clock) is True
    assert await join(storage, room, "bob", clock, user_name="Other") is False
    assert (await room_now(storage, room))["participant_count"] == 2
    bob = await storage.get_participant(room["id"], "bob")
    assert bob is not None
    assert bob["user_name"] == "Bob" and bob["meta"] == {"role": "mod"}
    assert bob["last_read_seq"] == 0 and bob["room_id"] == room["id"]
    assert await storage.get_participant(room["id"], "carol") is None

    items, total = await storage.list_participants(room["id"], 0, 50)
    assert [p["user_id"] for p in items] == ["bob", "alice"] and total == 2
    items, total = await storage.list_participants(room["id"], 1, 1)
    assert [p["user_id"] for p in items] == ["alice"] and total == 2

    assert await storage.remove_participant(room["id"], "bob") is True
    assert await storage.remove_participant(room["id"], "bob") is False
    assert await storage.remove_participant(room["id"], "nobody") is False
    assert (await room_now(storage, room))["participant_count"] == 1
    assert await join(storage, room, "bob", clock) is True
    assert (await room_now(storage, room))["participant_count"] == 2


async def test_participants_same_join_time_order_by_user(
    storage: Storage, room: Record
) -> None:
    for user in ("zed", "amy", "kim"):
        await storage.add_participant({"room_id": room["id"], "user_id": user, "user_name": None,
                                       "joined_at": "2024-01-01T00:00:00.000Z", "meta": {},
                                       "last_read_seq": 0})
    items, _ = await storage.list_participants(room["id"], 0, 50)
    assert [p["user_id"] for p in items] == ["amy", "kim", "zed"]


async def test_add_participant_unknown_room(storage: Storage, clock: Clock) -> None:
    with pytest.raises(RecordNotFound):
        await join(storage, {"id": new_id()}, "alice", clock)


async def test_last_read_seq_never_lowers(storage: Storage, clock: Clock, room: Record) -> None:
    await join(storage, room, "alice", clock)
    raised = await storage.set_last_read_seq(room["id"], "alice", 5)
    assert raised is not None and raised["last_read_seq"] == 5
    kept = await storage.set_last_read_seq(room["id"], "alice", 3)
    assert kept is not None and kept["last_read_seq"] == 5
    assert (await storage.get_participant(room["id"], "alice"))["last_read_seq"] == 5
    assert await storage.set_last_read_seq(room["id"], "nobody", 1) is None


# -- messages: sending ------------------------------------------------------------------------
async def test_seq_starts_at_one_and_counters_follow(
    storage: Storage, clock: Clock, room: Record
) -> None:
    sent = [await send(storage, room, clock, content=f"m{i}") for i in range(3)]
    assert seqs(sent) == [1, 2, 3]
    first = sent[0]
    assert first["room_id"] == room["id"] and first["client_id"] == room["client_id"]
    assert first["is_deleted"] is False and first["meta"] == {}
    assert await storage.get_message(room["client_id"], first["id"]) == first
    now = await room_now(storage, room)
    assert now["last_seq"] == 3 and now["message_count"] == 3
    assert now["last_message_at"] == sent[-1]["created_at"]


async def test_seqs_are_per_room(storage: Storage, clock: Clock, client: Record) -> None:
    one, two = await add_room(storage, clock, client), await add_room(storage, clock, client)
    assert (await send(storage, one, clock))["seq"] == 1
    assert (await send(storage, two, clock))["seq"] == 1
    assert (await send(storage, one, clock))["seq"] == 2


async def test_concurrent_sends_never_share_or_skip_a_seq(
    storage: Storage, clock: Clock, room: Record
) -> None:
    results = await asyncio.gather(*(
        storage.add_message(message_for(room, clock, sender_id=f"u{i % 7}", content=str(i)))
        for i in range(200)))
    assert all(created for _, created in results)
    assert sorted(m["seq"] for m, _ in results) == list(range(1, 201))
    now = await room_now(storage, room)
    assert now["last_seq"] == 200 and now["message_count"] == 200
    items, total = await storage.list_messages(room["id"], MessageQuery(limit=200, ascending=True))
    assert seqs(items) == list(range(1, 201)) and total == 200


async def test_message_round_trips_every_field(
    storage: Storage, clock: Clock, room: Record
) -> None:
    text = "héllo 👋🏽 <b>bold</b> \n\t 'quotes' \"double\" 中文"
    sent = await send(storage, room, clock, content=text, message_type="custom_kind",
                      meta={"nested": {"list": [1, "two", None, True]}, "emoji": "🎉"},
                      client_msg_id="c-1", sender_name=None)
    stored = await storage.get_message(room["client_id"], sent["id"])
    assert stored == sent
    assert stored["content"] == text and stored["message_type"] == "custom_kind"
    assert stored["meta"] == {"nested": {"list": [1, "two", None, True]}, "emoji": "🎉"}
    assert stored["client_msg_id"] == "c-1" and stored["sender_name"] is None


async def test_idempotent_client_msg_id(storage: Storage, clock: Clock, room: Record) -> None:
    first, created = await storage.add_message(message_for(room, clock, client_msg_id="k1"))
    assert created and first["seq"] == 1
    retry, created = await storage.add_message(
        message_for(room, clock, client_msg_id="k1", content="different body"))
    assert created is False
    assert retry == first
    now = await room_now(storage, room)
    assert now["last_seq"] == 1 and now["message_count"] == 1
    # Another sender, or no client_msg_id, is a new message.
    other, created = await storage.add_message(
        message_for(room, clock, client_msg_id="k1", sender_id="bob"))
    assert created and other["seq"] == 2
    plain, created = await storage.add_message(message_for(room, clock))
    assert created and plain["seq"] == 3
    assert (await storage.list_messages(room["id"], MessageQuery()))[1] == 3


async def test_unstorable_text_is_a_storage_error(
    storage: Storage, clock: Clock, room: Record
) -> None:
    with pytest.raises(StorageError) as caught:
        await storage.add_message(message_for(room, clock, content="lone \ud800 surrogate"))
    assert not isinstance(caught.value, StorageUnavailable)
    now = await room_now(storage, room)
    assert now["last_seq"] == 0 and now["message_count"] == 0
    assert (await send(storage, room, clock))["seq"] == 1


async def test_client_msg_id_is_per_room(storage: Storage, clock: Clock, client: Record) -> None:
    one, two = await add_room(storage, clock, client), await add_room(storage, clock, client)
    _, created = await storage.add_message(message_for(one, clock, client_msg_id="k"))
    assert created
    _, created = await storage.add_message(message_for(two, clock, client_msg_id="k"))
    assert created


async def test_concurrent_duplicates_store_one(
    storage: Storage, clock: Clock, room: Record
) -> None:
    results = await asyncio.gather(*(
        storage.add_message(message_for(room, clock, client_msg_id="same"))
        for _ in range(20)))
    assert sum(created for _, created in results) == 1
    assert len({m["id"] for m, _ in results}) == 1
    assert (await storage.list_messages(room["id"], MessageQuery()))[1] == 1
    assert (await room_now(storage, room))["message_count"] == 1


async def test_add_message_to_unknown_room(storage: Storage, clock: Clock, client: Record) -> None:
    with pytest.raises(RecordNotFound):
        await storage.add_message(
            message_for({"id": new_id(), "client_id": client["id"]}, clock))


async def test_get_message_tenant_isolation(
    storage: Storage, clock: Clock, room: Record
) -> None:
    sent = await send(storage, room, clock)
    other = await add_client(storage, clock)
    assert await storage.get_message(other["id"], sent["id"]) is None
    assert await storage.get_message(room["client_id"], new_id()) is None


# -- messages: history ------------------------------------------------------------------------
@pytest.fixture
async def history(storage: Storage, clock: Clock, room: Record) -> list[Record]:
    """Ten messages: seq 1..10; bob sends the even ones as 'image'."""
    sent = []
    for i in range(1, 11):
        bob = i % 2 == 0
        sent.append(await send(storage, room, clock, sender_id="bob" if bob else "alice",
                               message_type="image" if bob else "text", content=f"msg {i}"))
    return sent


async def test_history_order_and_paging(storage: Storage, room: Record, history: list) -> None:
    items, total = await storage.list_messages(room["id"], MessageQuery())
    assert seqs(items) == list(range(10, 0, -1)) and total == 10
    items, total = await storage.list_messages(room["id"], MessageQuery(ascending=True))
    assert seqs(items) == list(range(1, 11)) and total == 10
    items, total = await storage.list_messages(room["id"], MessageQuery(skip=2, limit=3))
    assert seqs(items) == [8, 7, 6] and total == 10
    items, total = await storage.list_messages(
        room["id"], MessageQuery(skip=8, limit=5, ascending=True))
    assert seqs(items) == [9, 10] and total == 10
    assert await storage.list_messages(new_id(), MessageQuery()) == ([], 0)


@pytest.mark.parametrize(("query", "expected"), [
    (MessageQuery(sender_id="bob"), [10, 8, 6, 4, 2]),
    (MessageQuery(message_type="text"), [9, 7, 5, 3, 1]),
    (MessageQuery(sender_id="bob", message_type="text"), []),
    (MessageQuery(after_seq=7), [10, 9, 8]),
    (MessageQuery(before_seq=4), [3, 2, 1]),
    (MessageQuery(after_seq=3, before_seq=7, ascending=True), [4, 5, 6]),
    (MessageQuery(before_seq=8, limit=2), [7, 6, 5, 4, 3, 2, 1]),
    (MessageQuery(after_seq=2, limit=2, ascending=True), list(range(3, 11))),
    (MessageQuery(after_seq=10), []),
    (MessageQuery(before_seq=1), []),
    (MessageQuery(after_seq=0), list(range(10, 0, -1))),
    (MessageQuery(before_seq=50), list(range(10, 0, -1))),
    (MessageQuery(search="MSG 1"), [10, 1]),
    (MessageQuery(search="msg 1", after_seq=5), [10]),
    (MessageQuery(sender_id="alice", before_seq=6), [5, 3, 1]),
])
async def test_history_filters(
    storage: Storage, room: Record, history: list, query: MessageQuery, expected: list[int]
) -> None:
    items, total = await storage.list_messages(room["id"], query)
    assert seqs(items) == expected[: query.limit]
    assert total == len(expected)


async def test_history_created_window(storage: Storage, room: Record, history: list) -> None:
    after, before = history[2]["created_at"], history[6]["created_at"]
    items, total = await storage.list_messages(
        room["id"], MessageQuery(created_after=after, created_before=before, ascending=True))
    assert seqs(items) == [4, 5, 6] and total == 3  # both bounds exclusive
    items, total = await storage.list_messages(room["id"], MessageQuery(created_after=before))
    assert seqs(items) == [10, 9, 8] and total == 3
    items, total = await storage.list_messages(room["id"], MessageQuery(created_before=after))
    assert seqs(items) == [2, 1] and total == 2


async def test_history_with_deleted(storage: Storage, room: Record, history: list) -> None:
    for seq in (2, 5, 9):
        await storage.set_message_deleted(
            history[seq - 1]["id"], True, "mod", "2025-01-01T00:00:00.000Z")
    cases = [  # (query, page, total)
        (MessageQuery(), [10, 8, 7, 6, 4, 3, 1], 7),
        (MessageQuery(include_deleted=True), list(range(10, 0, -1)), 10),
        (MessageQuery(before_seq=6), [4, 3, 1], 3),
        (MessageQuery(before_seq=6, include_deleted=True), [5, 4, 3, 2, 1], 5),
        (MessageQuery(after_seq=4, ascending=True), [6, 7, 8, 10], 4),
        (MessageQuery(after_seq=1, before_seq=10, limit=2), [8, 7], 5),
        (MessageQuery(after_seq=1, before_seq=10, include_deleted=True, limit=2), [9, 8], 8),
        (MessageQuery(sender_id="bob"), [10, 8, 6, 4], 4),
        (MessageQuery(sender_id="bob", include_deleted=True), [10, 8, 6, 4, 2], 5),
    ]
    for query, page, expected_total in cases:
        items, total = await storage.list_messages(room["id"], query)
        assert (seqs(items), total) == (page, expected_total), query


@pytest.mark.parametrize(("needle", "expected"), [
    ("100%", ["100% sure"]),
    ("%", ["100% sure"]),
    ("_", ["snake_case"]),
    (".*", ["regex .* here"]),
    ("(", ["paren ( open"]),
    ("\\d", ["slash \\d"]),
    ("SURE", ["100% sure", "1000 sure"]),
    ("ÜBER", ["über alles"]),
    ("日本", ["日本語"]),
    ("MAÑANA", ["Mañana BANANA"]),
    ("ñana b", ["Mañana BANANA"]),
])
async def test_history_search_is_literal(
    storage: Storage, clock: Clock, room: Record, needle: str, expected: list[str]
) -> None:
    texts = ["100% sure", "1000 sure", "snake_case", "snakeXcase", "regex .* here",
             "regex ab here", "paren ( open", "slash \\d", "slash 7", "über alles", "日本語",
             "Mañana BANANA", "manana"]
    for text in texts:
        await send(storage, room, clock, content=text)
    items, total = await storage.list_messages(
        room["id"], MessageQuery(search=needle, ascending=True))
    assert [m["content"] for m in items] == expected and total == len(expected)


# -- messages: edits and deletion -------------------------------------------------------------
async def test_update_message(storage: Storage, clock: Clock, room: Record) -> None:
    sent = await send(storage, room, clock, meta={"a": 1})
    at = clock()
    updated = await storage.update_message(sent["id"], {
        "content": "edited", "meta": {"b": 2}, "edited_at": at, "edit_reason": "typo",
        "updated_at": at})
    assert updated is not None
    assert updated["content"] == "edited" and updated["meta"] == {"b": 2}
    assert updated["edited_at"] == at and updated["edit_reason"] == "typo"
    assert updated["updated_at"] == at
    assert updated["seq"] == sent["seq"] and updated["created_at"] == sent["created_at"]
    assert await storage.get_message(room["client_id"], sent["id"]) == updated
    assert await storage.update_message(new_id(), {"content": "x"}) is None


async def test_update_message_refuses_deletion_state(
    storage: Storage, clock: Clock, room: Record
) -> None:
    sent = await send(storage, room, clock)
    with pytest.raises(StorageError):
        await storage.update_message(sent["id"], {"is_deleted": True})
    assert (await room_now(storage, room))["message_count"] == 1


async def test_soft_delete_and_restore(storage: Storage, clock: Clock, room: Record) -> None:
    sent = await send(storage, room, clock)
    await send(storage, room, clock)
    at = clock()
    deleted = await storage.set_message_deleted(sent["id"], True, "mod", at)
    assert deleted is not None
    assert deleted["is_deleted"] is True and deleted["deleted_by"] == "mod"
    assert deleted["deleted_at"] == at and deleted["content"] == sent["content"]
    assert (await room_now(storage, room))["message_count"] == 1
    # Deleting again changes nothing, including the count.
    again = await storage.set_message_deleted(sent["id"], True, "other", clock())
    assert again == deleted
    assert (await room_now(storage, room))["message_count"] == 1
    assert seqs((await storage.list_messages(room["id"], MessageQuery()))[0]) == [2]

    restored = await storage.set_message_deleted(sent["id"], False, None, clock())
    assert restored is not None
    assert restored["is_deleted"] is False and restored["deleted_at"] is None
    assert restored["deleted_by"] is None
    now = await room_now(storage, room)
    assert now["message_count"] == 2 and now["last_seq"] == 2
    again = await storage.set_message_deleted(sent["id"], False, None, clock())
    assert again == restored
    assert (await room_now(storage, room))["message_count"] == 2
    assert await storage.set_message_deleted(new_id(), True, None, at) is None


async def test_seq_not_reused_after_delete(storage: Storage, clock: Clock, room: Record) -> None:
    first = await send(storage, room, clock)
    await storage.set_message_deleted(first["id"], True, None, clock())
    assert (await send(storage, room, clock))["seq"] == 2


# -- notifications ----------------------------------------------------------------------------
async def test_notifications(storage: Storage, clock: Clock, client: Record, room: Record) -> None:
    to_room = await notify(storage, clock, client, room_id=room["id"], priority="high",
                           meta={"k": "v"})
    to_users = await notify(storage, clock, client, user_ids=["alice", "bob"], status="pending")
    to_bob = await notify(storage, clock, client, user_ids=["bob"])
    other_tenant = await add_client(storage, clock)
    await notify(storage, clock, other_tenant, user_ids=["alice"])

    assert await storage.get_notification(client["id"], to_room["id"]) == to_room
    assert to_room["meta"] == {"k": "v"} and to_users["user_ids"] == ["alice", "bob"]
    assert await storage.get_notification(other_tenant["id"], to_room["id"]) is None

    def ids(page: tuple[list[Record], int]) -> tuple[list[str], int]:
        return [n["id"] for n in page[0]], page[1]

    everything = ids(await storage.list_notifications(client["id"], NotificationQuery()))
    assert everything == ([to_bob["id"], to_users["id"], to_room["id"]], 3)
    assert ids(await storage.list_notifications(
        client["id"], NotificationQuery(room_id=room["id"]))) == ([to_room["id"]], 1)
    assert ids(await storage.list_notifications(
        client["id"], NotificationQuery(user_id="alice"))) == ([to_users["id"]], 1)
    assert ids(await storage.list_notifications(
        client["id"], NotificationQuery(user_id="bob"))) == ([to_bob["id"], to_users["id"]], 2)
    assert ids(await storage.list_notifications(
        client["id"], NotificationQuery(status="pending"))) == ([to_users["id"]], 1)
    assert ids(await storage.list_notifications(
        client["id"], NotificationQuery(skip=1, limit=1))) == ([to_users["id"]], 3)

    updated = await storage.update_notification(
        to_users["id"], {"status": "delivered", "recipients_online": 2,
                         "delivered_connections": 3})
    assert updated is not None
    assert updated["status"] == "delivered" and updated["delivered_connections"] == 3
    assert updated["user_ids"] == ["alice", "bob"]
    assert await storage.get_notification(client["id"], to_users["id"]) == updated
    assert await storage.update_notification(new_id(), {"status": "x"}) is None


USER_META = {"$where": 1, "a.b": {"$gt": [1, "x"]}, "nested": {"deep": {"ok": True}}, "é": "ü"}


async def test_meta_keys_are_the_users_own(
    storage: Storage, clock: Clock, client: Record
) -> None:
    """Any JSON object round-trips as meta, `$`-prefixed and dotted keys included."""
    room = await add_room(storage, clock, client, meta=USER_META)
    assert (await storage.get_room(client["id"], room["id"]))["meta"] == USER_META
    updated = await storage.update_room(client["id"], room["id"], {"meta": {"$set": {"x": 1}}})
    assert updated is not None and updated["meta"] == {"$set": {"x": 1}}
    assert await join(storage, room, "bob", clock, meta=USER_META) is True
    assert (await storage.get_participant(room["id"], "bob"))["meta"] == USER_META
    sent = await send(storage, room, clock, meta=USER_META)
    assert (await storage.get_message(client["id"], sent["id"]))["meta"] == USER_META
    edited = await storage.update_message(sent["id"], {"meta": {"$inc": {"seq": 5}}})
    assert edited is not None and edited["meta"] == {"$inc": {"seq": 5}} and edited["seq"] == 1
    note = await notify(storage, clock, client, meta=USER_META)
    assert (await storage.get_notification(client["id"], note["id"]))["meta"] == USER_META
