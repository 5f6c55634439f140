"""Schema versions and the first-start claim, on the contract suite's backends.

The claim tests run on every backend; the index tests on the MongoDB ones (mongomock, and a
real server when the fixtures provide one), each building an "old" database by hand first.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import storage.sqlite
from storage.base import SchemaMismatch, Storage, StorageUnavailable
from storage.mongo import INDEXES, SCHEMA_KEY, SCHEMA_VERSION, MongoStorage
from storage.sqlite import MIGRATIONS, SQLiteStorage
from tests.storage.conftest import make_storage

CLAIMS = 8


def _sibling(backend: str, store: Storage, tmp_path: Path, url: str) -> Storage:
    """Another storage on the same database (another node), where the backend has one."""
    if backend == "mongomock":
        assert isinstance(store, MongoStorage)
        return MongoStorage(store._db)
    if backend == "sqlite-memory":
        return store  # a :memory: database is private to its connection
    return make_storage(backend, tmp_path, url)


async def test_concurrent_claims_have_one_winner(
        storage: Storage, backend: str, backend_url: str, tmp_path: Path) -> None:
    others = [_sibling(backend, storage, tmp_path, backend_url) for _ in range(CLAIMS - 1)]
    for other in others:
        if other is not storage:
            await other.open()
    try:
        won = await asyncio.gather(*(
            store.swap_meta("claim", {"node": i}, None)
            for i, store in enumerate([storage, *others])))
        assert sum(won) == 1
        winner = {"node": won.index(True)}
        assert await storage.get_meta("claim") == winner
        retaken = await asyncio.gather(*(
            store.swap_meta("claim", {"node": 100 + i}, winner)
            for i, store in enumerate([storage, *others])))
        assert sum(retaken) == 1
        assert await storage.get_meta("claim") == {"node": 100 + retaken.index(True)}
    finally:
        for other in others:
            if other is not storage:
                await other.close()


async def test_swap_meta_compares_the_whole_record(storage: Storage) -> None:
    assert await storage.get_meta("k") is None
    assert await storage.swap_meta("k", {"a": 1, "b": "x"}, None)
    assert not await storage.swap_meta("k", {"a": 2}, None)
    assert not await storage.swap_meta("k", {"a": 2}, {"a": 1})
    assert await storage.swap_meta("k", {"a": 2}, {"b": "x", "a": 1})  # key order is no matter
    assert await storage.get_meta("k") == {"a": 2}
    assert await storage.get_meta("other") is None


# -- MongoDB indexes ------------------------------------------------------------------------
@pytest.fixture
async def old_mongo(backend: str, backend_url: str, tmp_path: Path) -> Any:
    """An unopened MongoStorage whose database a test fills as an older version left it (the
    `mongodb_url` fixture drops a real server's database afterwards)."""
    if backend not in ("mongomock", "mongodb"):
        pytest.skip("MongoDB index schema")
    store = make_storage(backend, tmp_path, backend_url)
    try:
        yield store
    finally:
        await store.close()


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


async def _assert_current(store: MongoStorage) -> None:
    for collection, specs in INDEXES.items():
        info = await store._db[collection].index_information()
        for keys, options in specs:
            index = info[options["name"]]
            assert [(f, int(d)) for f, d in index["key"]] == keys
            assert bool(index.get("unique")) == bool(options.get("unique"))
            assert index.get("partialFilterExpression") == options.get("partialFilterExpression")
    assert (await store._meta.find_one({"_id": SCHEMA_KEY}))["version"] == SCHEMA_VERSION


async def test_older_index_set_is_upgraded_on_start(old_mongo: MongoStorage) -> None:
    db = old_mongo._db
    await db["rooms"].insert_one({"_id": "r1", "client_id": "c1", "name": "old"})
    # v0: the room list index without its tie-break, the participants index under
    # another name, and the deleted-rows index not there yet.
    await db["rooms"].create_index([("client_id", 1), ("created_at", 1)], name="client_created")
    await db["participants"].create_index(
        [("room_id", 1), ("joined_at", 1), ("user_id", 1)], name="by_join")
    await old_mongo.open()
    assert "MongoDB index rooms.client_created replaced" in old_mongo.migrated
    assert "MongoDB index participants.room_joined replaced" in old_mongo.migrated
    assert "MongoDB index messages.room_deleted created" in old_mongo.migrated
    assert old_mongo.migrated[-1] == f"MongoDB schema v0 -> v{SCHEMA_VERSION}"
    await _assert_current(old_mongo)
    assert "by_join" not in await db["participants"].index_information()
    assert (await db["rooms"].find_one({"_id": "r1"}))["name"] == "old"
    again = MongoStorage(db)  # the next start, or another node
    await again.open()
    assert again.migrated == []
    await again.close()


async def test_changed_unique_index_needs_migrate(old_mongo: MongoStorage) -> None:
    db = old_mongo._db
    await db["messages"].create_index(
        [("room_id", 1), ("client_msg_id", 1)], name="idempotency", unique=True)
    with pytest.raises(SchemaMismatch) as refused:
        await old_mongo.open()
    text = _one_line(refused.value)
    assert "messages.idempotency" in text and "`chatapi migrate`" in text
    with pytest.raises(StorageUnavailable):
        await old_mongo.check()
    assert await db["meta"].find_one({"_id": SCHEMA_KEY}) is None  # version not claimed
    await old_mongo.open(migrate=True)
    assert "MongoDB index messages.idempotency replaced" in old_mongo.migrated
    await _assert_current(old_mongo)


async def test_newer_mongo_schema_is_refused(old_mongo: MongoStorage) -> None:
    await old_mongo._db["meta"].insert_one({"_id": SCHEMA_KEY, "version": SCHEMA_VERSION + 1})
    for migrate in (False, True):
        with pytest.raises(SchemaMismatch) as refused:
            await old_mongo.open(migrate=migrate)
        assert "newer" in _one_line(refused.value)
    assert "room_seq" not in await old_mongo._db["messages"].index_information()


# -- SQLite steps that `serve` does not apply ------------------------------------------------
def _v2_file(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for statements in MIGRATIONS[:2]:
            for statement in statements:
                db.execute(statement)
        db.execute("PRAGMA user_version = 2")
    finally:
        db.close()


async def test_sqlite_manual_step_needs_migrate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v2.db"
    _v2_file(path)
    monkeypatch.setattr(storage.sqlite, "MANUAL_MIGRATIONS", frozenset({3}))
    store = SQLiteStorage(str(path))
    with pytest.raises(SchemaMismatch) as refused:
        await store.open()
    assert "v3" in _one_line(refused.value) and "`chatapi migrate`" in str(refused.value)
    await store.open(migrate=True)
    try:
        assert store.migrated == ["SQLite schema v2 -> v3"]
        assert await store.swap_meta("k", {"v": 1}, None)
    finally:
        await store.close()
