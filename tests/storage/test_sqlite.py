"""What only the SQLite backend promises: URLs, durability, migrations, query plans."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import pytest

from storage import create_storage
from storage.base import MessageQuery, RoomQuery, StorageError, StorageUnavailable
from storage.sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteStorage
from tests.storage.test_contract import Clock, add_client, add_room, message_for, send


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:///chatapi.db", "chatapi.db"),
    ("sqlite:///data/chat.db", "data/chat.db"),
    ("sqlite:////abs/path.db", "/abs/path.db"),
    ("sqlite:///:memory:", ":memory:"),
])
def test_from_url(url: str, path: str) -> None:
    assert SQLiteStorage.from_url(url).path == path
    store = create_storage(url)
    assert isinstance(store, SQLiteStorage) and store.path == path


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "postgres:///x"])
def test_from_url_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        SQLiteStorage.from_url(url)


async def test_unopenable_file_is_unavailable(tmp_path: Path) -> None:
    store = SQLiteStorage(str(tmp_path / "missing-dir" / "x.db"))
    with pytest.raises(StorageUnavailable):
        await store.open()
    with pytest.raises(StorageUnavailable):
        await store.check()
    await store.close()


async def test_pragmas(tmp_path: Path) -> None:
    store = SQLiteStorage(str(tmp_path / "p.db"))
    await store.open()
    try:
        assert await store._scalar("PRAGMA journal_mode") == "wal"
        assert await store._scalar("PRAGMA foreign_keys") == 1
        assert await store._scalar("PRAGMA synchronous") == 1  # NORMAL
        assert await store._scalar("PRAGMA user_version") == SCHEMA_VERSION
    finally:
        await store.close()


async def test_data_survives_reopen(tmp_path: Path, clock: Clock) -> None:
    url = f"sqlite:///{tmp_path / 'durable.db'}"
    store = SQLiteStorage.from_url(url)
    await store.open()
    client = await add_client(store, clock)
    room = await add_room(store, clock, client, meta={"k": [1]})
    sent = [await send(store, room, clock, content=f"m{i}") for i in range(3)]
    await store.close()

    again = SQLiteStorage.from_url(url)
    await again.open()
    try:
        assert await again.get_client(client["id"]) == client
        fresh = await again.get_room(client["id"], room["id"])
        assert fresh is not None and fresh["last_seq"] == 3 and fresh["meta"] == {"k": [1]}
        items, total = await again.list_messages(room["id"], MessageQuery(ascending=True))
        assert items == sent and total == 3
        assert (await send(again, room, clock))["seq"] == 4
    finally:
        await again.close()


def _make_v1_database(path: Path) -> dict[str, str]:
    """A database as the first schema version left it, with one room and two messages."""
    ids = {"client": str(uuid.uuid4()), "room": str(uuid.uuid4())}
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA foreign_keys = ON")
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        ts = "2024-01-01T00:00:00.000Z"
        db.execute("INSERT INTO clients VALUES (?, 'old', NULL, 'hash', 'secret', 1, ?)",
                   (ids["client"], ts))
        db.execute("INSERT INTO rooms (id, client_id, name, created_at, updated_at) "
                   "VALUES (?, ?, 'old room', ?, ?)", (ids["room"], ids["client"], ts, ts))
        for seq, deleted in ((1, 1), (2, 0)):
            db.execute(
                "INSERT INTO messages (id, room_id, client_id, seq, sender_id, content, "
                "created_at, is_deleted) VALUES (?, ?, ?, ?, 'alice', ?, ?, ?)",
                (str(uuid.uuid4()), ids["room"], ids["client"], seq, f"old {seq}", ts, deleted))
    finally:
        db.close()
    return ids


async def test_v1_database_upgrades_on_open(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "v1.db"
    ids = _make_v1_database(path)
    store = SQLiteStorage(str(path))
    await store.open()
    try:
        assert await store._scalar("PRAGMA user_version") == SCHEMA_VERSION
        indexes = {row[0] for row in await store._fetch(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"messages_deleted", "participants_room_joined"} <= indexes
        room = await store.get_room(ids["client"], ids["room"])
        assert room is not None and room["last_seq"] == 2 and room["message_count"] == 1
        items, total = await store.list_messages(ids["room"], MessageQuery())
        assert [m["content"] for m in items] == ["old 2"] and total == 1
        assert (await send(store, room, clock))["seq"] == 3
    finally:
        await store.close()
    # Opening an up-to-date file again migrates nothing.
    store = SQLiteStorage(str(path))
    await store.open()
    await store.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    store = SQLiteStorage(str(path))
    with pytest.raises(StorageError, match="newer"):
        await store.open()
    with pytest.raises(StorageUnavailable):
        await store.check()


async def _plan(store: SQLiteStorage, sql: str, params: list) -> str:
    rows = await store._fetch(f"EXPLAIN QUERY PLAN {sql}", params)
    return " | ".join(row["detail"] for row in rows)


async def _captured(store: SQLiteStorage, call) -> list[str]:
    """The SELECT statements (values bound) that `call` runs."""
    statements: list[str] = []
    await store._db.set_trace_callback(statements.append)
    try:
        await call()
    finally:
        await store._db.set_trace_callback(None)
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


@pytest.mark.parametrize("query", [
    MessageQuery(limit=50),
    MessageQuery(limit=50, before_seq=500),
    MessageQuery(limit=50, after_seq=500, ascending=True),
    MessageQuery(limit=50, before_seq=500, include_deleted=True),
])
async def test_history_uses_room_seq_index(clock: Clock, query: MessageQuery) -> None:
    store = SQLiteStorage(":memory:")
    await store.open()
    try:
        client = await add_client(store, clock)
        room = await add_room(store, clock, client)
        statements = await _captured(store, lambda: store.list_messages(room["id"], query))
        assert len(statements) == 2  # the page and its total
        page_plan = await _plan(store, statements[0], [])
        assert "messages_room_seq" in page_plan and "TEMP B-TREE" not in page_plan
        total_plan = await _plan(store, statements[1], [])
        assert "SCAN messages" not in total_plan
    finally:
        await store.close()


async def test_room_list_uses_tenant_index(clock: Clock) -> None:
    store = SQLiteStorage(":memory:")
    await store.open()
    try:
        client = await add_client(store, clock)
        for sort, index in (("-created_at", "rooms_client_created"),
                            ("name", "rooms_client_name")):
            statements = await _captured(
                store, lambda s=sort: store.list_rooms(client["id"], RoomQuery(sort=s)))
            assert index in await _plan(store, statements[0], [])
    finally:
        await store.close()


async def test_integrity_errors_are_storage_errors(clock: Clock) -> None:
    store = SQLiteStorage(":memory:")
    await store.open()
    try:
        client = await add_client(store, clock)
        with pytest.raises(StorageError) as caught:
            await add_client(store, clock, api_key_hash=client["api_key_hash"])
        assert not isinstance(caught.value, sqlite3.Error)
        room = await add_room(store, clock, client)
        msg = message_for(room, clock)
        await store.add_message(msg)
        with pytest.raises(StorageError):
            await store.add_message(msg)  # same id
    finally:
        await store.close()


async def test_two_processes_opening_a_new_file_at_once(tmp_path: Path) -> None:
    """Both migrate safely: the second waits for the first's step, then finds it done."""
    path = str(tmp_path / "race.db")
    stores = [SQLiteStorage(path) for _ in range(3)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        for store in stores:
            assert await store._scalar("PRAGMA user_version") == SCHEMA_VERSION
    finally:
        for store in stores:
            await store.close()
