"""What only the MongoDB backend promises: URLs, indexes, error mapping, races."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, NetworkTimeout, OperationFailure

from storage import create_storage
from storage.base import MessageQuery, StorageError, StorageUnavailable
from storage.mongo import INDEXES, MongoStorage
from tests.storage.mongomock_async import AsyncMongoMockClient, AsyncMongoMockCollection
from tests.storage.test_contract import Clock, add_client, add_room, message_for, send


@pytest.fixture
async def mock_storage() -> Any:
    store = MongoStorage(AsyncMongoMockClient()["chatapi_test"])
    await store.open()
    yield store
    await store.close()


@pytest.mark.parametrize(("url", "database", "expected"), [
    ("mongodb://127.0.0.1:1", None, "chatapi"),
    ("mongodb://127.0.0.1:1/", None, "chatapi"),
    ("mongodb://127.0.0.1:1/chat_prod?authSource=admin", None, "chat_prod"),
    ("mongodb://127.0.0.1:1/chat_prod", "override", "override"),
])
async def test_from_url_database(url: str, database: str | None, expected: str) -> None:
    store = MongoStorage.from_url(url, database=database)
    assert store._db.name == expected
    await store.close()


async def test_create_storage_picks_mongo() -> None:
    store = create_storage("mongodb://127.0.0.1:1/x")
    assert isinstance(store, MongoStorage)
    await store.close()


def test_bad_url_is_value_error() -> None:
    with pytest.raises(ValueError):
        MongoStorage.from_url("mongodb://host:notaport/")


async def test_unreachable_at_open_fails_fast() -> None:
    store = MongoStorage.from_url("mongodb://127.0.0.1:1/chatapi", timeout_ms=300)
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        await asyncio.wait_for(store.open(), timeout=10)
    assert time.monotonic() - started < 5
    with pytest.raises(StorageUnavailable):
        await store.check()
    await store.close()


async def test_default_timeout_is_short() -> None:
    store = MongoStorage.from_url("mongodb://127.0.0.1:1/")
    options = store._client.options
    assert options.server_selection_timeout <= 3
    assert options.pool_options.connect_timeout <= 3
    await store.close()


async def test_url_timeout_wins() -> None:
    store = MongoStorage.from_url("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=1234")
    assert store._client.options.server_selection_timeout == pytest.approx(1.234)
    await store.close()


async def test_unopened_storage_is_unavailable() -> None:
    store = MongoStorage(AsyncMongoMockClient()["x"])
    with pytest.raises(StorageUnavailable):
        await store.check()


async def test_indexes(mock_storage: MongoStorage) -> None:
    for collection, specs in INDEXES.items():
        info = await mock_storage._db[collection].index_information()
        for keys, options in specs:
            assert info[options["name"]]["key"] == keys
            assert info[options["name"]].get("unique", False) == options.get("unique", False)
    idempotency = (await mock_storage._db["messages"].index_information())["idempotency"]
    assert idempotency["partialFilterExpression"] == {"client_msg_id": {"$type": "string"}}


async def test_ids_are_not_leaked(mock_storage: MongoStorage, clock: Clock) -> None:
    client = await add_client(mock_storage, clock)
    room = await add_room(mock_storage, clock, client)
    sent = await send(mock_storage, room, clock)
    stored = await mock_storage.get_message(client["id"], sent["id"])
    assert stored is not None and "_id" not in stored and stored["id"] == sent["id"]
    assert "_id" not in (await mock_storage.get_room(client["id"], room["id"]))
    raw = await mock_storage._db["messages"].find_one({"_id": sent["id"]})
    assert raw is not None and "id" not in raw


@pytest.mark.parametrize("error", [
    AutoReconnect("connection reset"),
    NetworkTimeout("timed out"),
    OperationFailure("not authorized", code=13),
])
async def test_driver_errors_become_unavailable(
    mock_storage: MongoStorage, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(AsyncMongoMockCollection, "find_one", fail)
    with pytest.raises(StorageUnavailable):
        await mock_storage.get_client("x")
    monkeypatch.setattr(mock_storage._db, "command", fail)
    with pytest.raises(StorageUnavailable):
        await mock_storage.check()


async def test_other_operation_failures_are_storage_errors(
    mock_storage: MongoStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise OperationFailure("bad query", code=2)

    monkeypatch.setattr(AsyncMongoMockCollection, "find_one", fail)
    with pytest.raises(StorageError) as caught:
        await mock_storage.get_client("x")
    assert not isinstance(caught.value, StorageUnavailable)


async def test_duplicate_key_hash_is_storage_error(
    mock_storage: MongoStorage, clock: Clock
) -> None:
    client = await add_client(mock_storage, clock)
    with pytest.raises(StorageError):
        await add_client(mock_storage, clock, api_key_hash=client["api_key_hash"])


async def test_lost_idempotency_race_returns_the_winner(
    mock_storage: MongoStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another node stored the same client_msg_id between our lookup and our insert."""
    client = await add_client(mock_storage, clock)
    room = await add_room(mock_storage, clock, client)
    winner = await send(mock_storage, room, clock, client_msg_id="k")
    real_find = MongoStorage._find_retry
    calls = 0

    async def miss_first(self: MongoStorage, record: dict) -> Any:
        nonlocal calls
        calls += 1
        return None if calls == 1 else await real_find(self, record)

    monkeypatch.setattr(MongoStorage, "_find_retry", miss_first)
    stored, created = await mock_storage.add_message(message_for(room, clock, client_msg_id="k"))
    assert created is False and stored == winner
    fresh = await mock_storage.get_room(client["id"], room["id"])
    assert fresh["message_count"] == 1
    assert fresh["last_seq"] == 2  # the loser's seq stays unused, never reused
    assert (await send(mock_storage, room, clock))["seq"] == 3
    items, total = await mock_storage.list_messages(room["id"], MessageQuery())
    assert [m["seq"] for m in items] == [3, 1] and total == 2
    items, total = await mock_storage.list_messages(room["id"], MessageQuery(before_seq=3))
    assert [m["seq"] for m in items] == [1] and total == 1


async def test_room_locks_are_released(mock_storage: MongoStorage, clock: Clock) -> None:
    client = await add_client(mock_storage, clock)
    room = await add_room(mock_storage, clock, client)
    await asyncio.gather(*(send(mock_storage, room, clock) for _ in range(20)))
    assert mock_storage._room_locks == {}
