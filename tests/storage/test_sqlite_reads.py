"""SQLite list/search queries run on their own connections with a time limit:
a slow read never holds up a write, and a runaway one is stopped."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import storage.sqlite
from storage.base import MessageQuery, QueryTimeout, RoomQuery
from storage.sqlite import SQLiteStorage
from tests.storage.test_contract import add_client, add_room, send

WAIT = 5.0
# Counts forever: only the time limit ends it.
RUNAWAY = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
           "SELECT count(*) FROM n")


@pytest.fixture
async def sqlite_file(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    store = SQLiteStorage(str(tmp_path / "reads.db"), read_connections=2, read_timeout=0.3)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class Gate:
    """Stands in for the per-row search function: the first call says so and then waits
    for `release`, holding its read open as long as the test likes."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, value: Any) -> Any:
        self.entered.set()
        self.release.wait(WAIT)
        return value.lower() if isinstance(value, str) else value


async def test_a_write_does_not_wait_for_a_read_in_progress(
        sqlite_file: SQLiteStorage, clock: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = await add_client(sqlite_file, clock)
    room = await add_room(sqlite_file, clock, client)
    await send(sqlite_file, room, clock, content="Ærø")
    gate = Gate()
    monkeypatch.setattr(storage.sqlite, "_lower", gate)  # read connections open lazily
    search = asyncio.ensure_future(
        sqlite_file.list_messages(room["id"], MessageQuery(search="ærø")))
    try:
        assert await asyncio.to_thread(gate.entered.wait, WAIT)
        stored = await asyncio.wait_for(send(sqlite_file, room, clock, content="sent"), WAIT)
        assert stored["seq"] == 2
        assert not search.done()  # the write went through while the read was held
        assert (await asyncio.wait_for(sqlite_file.get_room(client["id"], room["id"]),
                                       WAIT))["last_seq"] == 2
    finally:
        gate.release.set()
    items, total = await asyncio.wait_for(search, WAIT)
    assert [m["content"] for m in items] == ["Ærø"] and total == 1


async def test_a_runaway_read_is_stopped_and_the_store_goes_on(
        sqlite_file: SQLiteStorage, clock: Callable[[], str]) -> None:
    client = await add_client(sqlite_file, clock)
    room = await add_room(sqlite_file, clock, client)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(QueryTimeout):
        await asyncio.wait_for(sqlite_file._fetch(RUNAWAY, read=True), WAIT)
    assert loop.time() - started < 0.3 + 1.0  # stopped at the limit, not run to the end
    await send(sqlite_file, room, clock)
    items, total = await sqlite_file.list_rooms(client["id"], RoomQuery())
    assert total == 1 and items[0]["last_seq"] == 1  # the read connection is usable again


async def test_list_queries_see_writes_at_once(
        sqlite_file: SQLiteStorage, clock: Callable[[], str]) -> None:
    """Reads on other connections still see every write that has returned."""
    client = await add_client(sqlite_file, clock)
    room = await add_room(sqlite_file, clock, client)
    for i in range(20):
        await send(sqlite_file, room, clock, content=f"m{i}")
        items, total = await sqlite_file.list_messages(room["id"], MessageQuery(limit=1))
        assert total == i + 1 and items[0]["content"] == f"m{i}"


async def test_memory_database_keeps_one_connection(clock: Callable[[], str]) -> None:
    store = SQLiteStorage(":memory:", read_connections=2)
    await store.open()
    try:
        client = await add_client(store, clock)
        await add_room(store, clock, client)
        assert (await store.list_rooms(client["id"], RoomQuery()))[1] == 1
        assert store._readers is None  # another connection would see another database
    finally:
        await store.close()


async def test_search_calls_python_only_for_rows_that_may_match(
        sqlite_file: SQLiteStorage, clock: Callable[[], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Same answers as lowering every row, without a Python call per row: a caseless
    needle needs none, a cased one only for rows holding its longest caseless run."""
    client = await add_client(sqlite_file, clock)
    room = await add_room(sqlite_file, clock, client)
    for i in range(30):
        await send(sqlite_file, room, clock, content=f"filler {i}")
    await send(sqlite_file, room, clock, content="MAÑANA 日本")
    calls: list[Any] = []

    def counted(value: Any) -> Any:
        calls.append(value)
        return value.lower() if isinstance(value, str) else value

    monkeypatch.setattr(storage.sqlite, "_lower", counted)
    for needle in ("日本", "mañana"):
        items, total = await sqlite_file.list_messages(room["id"], MessageQuery(search=needle))
        assert [m["content"] for m in items] == ["MAÑANA 日本"] and total == 1
    assert set(calls) == {"MAÑANA 日本"}  # only the one row that holds "ana"
