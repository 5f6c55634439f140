"""First start on an empty database creates one `default` client and one `general` room,
however many nodes start on it together."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app.config import Settings
from app.services.clients import (
    BOOTSTRAP_CLAIM,
    BOOTSTRAP_CLAIM_STALE_SECONDS,
    ClientService,
)
from app.timeutil import format_ts
from storage.mongo import MongoStorage
from storage.sqlite import SQLiteStorage
from tests.ports import free_port
from tests.storage.mongomock_async import AsyncMongoMockClient, AsyncMongoMockCollection
from tests.test_cli import CHATAPI, DRAIN_SECONDS, Served, clean_env

NODES = 6


def _settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'boot.db'}", admin_key="")


def _counts(path: Path) -> tuple[list[str], list[str]]:
    db = sqlite3.connect(path)
    try:
        clients = [row[0] for row in db.execute("SELECT name FROM clients")]
        rooms = [row[0] for row in db.execute("SELECT name FROM rooms")]
    finally:
        db.close()
    return clients, rooms


async def test_nodes_bootstrapping_one_sqlite_file_together_create_one_client(
        tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    stores = [SQLiteStorage(str(tmp_path / "boot.db")) for _ in range(NODES)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        made = await asyncio.gather(*(
            ClientService(store, settings).bootstrap() for store in stores))
    finally:
        for store in stores:
            await store.close()
    winners = [m for m in made if m is not None]
    assert len(winners) == 1
    assert _counts(tmp_path / "boot.db") == (["default"], ["general"])


def _yielding(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)  # a round trip: other nodes run meanwhile
        return await method(*args, **kwargs)

    return call


async def test_nodes_bootstrapping_one_mongodb_together_create_one_client(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("find_one", "count_documents", "insert_one", "update_one"):
        monkeypatch.setattr(AsyncMongoMockCollection, name,
                            _yielding(getattr(AsyncMongoMockCollection, name)))
    db = AsyncMongoMockClient()["chatapi_boot"]
    stores = [MongoStorage(db) for _ in range(NODES)]
    for store in stores:
        await store.open()
    settings = Settings(admin_key="")
    made = await asyncio.gather(*(ClientService(s, settings).bootstrap() for s in stores))
    assert len([m for m in made if m is not None]) == 1
    assert await stores[0].count_clients() == 1
    assert await db["rooms"].count_documents({}) == 1


async def _claimed(tmp_path: Path, age_seconds: float) -> tuple[SQLiteStorage, ClientService]:
    store = SQLiteStorage(str(tmp_path / "boot.db"))
    await store.open()
    claimed_at = format_ts(datetime.now(UTC) - timedelta(seconds=age_seconds))
    assert await store.swap_meta(
        BOOTSTRAP_CLAIM, {"client_id": "gone", "claimed_at": claimed_at}, None)
    return store, ClientService(store, _settings(tmp_path))


async def test_a_fresh_claim_of_another_node_is_left_alone(tmp_path: Path) -> None:
    store, clients = await _claimed(tmp_path, 1)
    try:
        assert await clients.bootstrap() is None
        assert await store.count_clients() == 0
    finally:
        await store.close()


async def test_a_claim_that_never_completed_is_taken_over(tmp_path: Path) -> None:
    """A node died between its claim and its client (or every client was deleted since)."""
    store, clients = await _claimed(tmp_path, BOOTSTRAP_CLAIM_STALE_SECONDS + 5)
    try:
        made = await clients.bootstrap()
        assert made is not None
        assert (await store.get_meta(BOOTSTRAP_CLAIM))["client_id"] == made.client["id"]
        assert await clients.bootstrap() is None  # a client exists now
    finally:
        await store.close()


async def test_admin_key_means_no_claim(tmp_path: Path) -> None:
    store = SQLiteStorage(str(tmp_path / "boot.db"))
    await store.open()
    try:
        settings = replace(_settings(tmp_path), admin_key="x" * 32)
        assert await ClientService(store, settings).bootstrap() is None
        assert await store.get_meta(BOOTSTRAP_CLAIM) is None
    finally:
        await store.close()


async def _start_together(db_path: Path, count: int) -> list[Served]:
    ports = [free_port() for _ in range(count)]
    procs = await asyncio.gather(*(asyncio.create_subprocess_exec(
        CHATAPI, "serve", "--host", "127.0.0.1", "--port", str(port),
        "--database-url", f"sqlite:///{db_path}", "--drain-seconds", str(DRAIN_SECONDS),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=clean_env()) for port in ports))
    return [Served(proc, port) for proc, port in zip(procs, ports, strict=True)]


@pytest.mark.parametrize("attempt", range(2))
async def test_two_serve_processes_started_together_bootstrap_once(
        tmp_path: Path, http: aiohttp.ClientSession, attempt: int) -> None:
    db_path = tmp_path / f"together{attempt}.db"
    nodes = await _start_together(db_path, 2)
    try:
        await asyncio.gather(*(node.read_until(
            rf"(?:Running on|http://127\.0\.0\.1:{node.port})") for node in nodes))
        printed = [node for node in nodes if "API key" in node.output]
        assert len(printed) == 1, [node.output for node in nodes]
        key = (await printed[0].read_until(r"API key[^:]*: (sk_\S+)")).group(1)
        for node in nodes:  # the key works on both nodes: one tenant, one room
            url = f"http://127.0.0.1:{node.port}/api/v1/rooms"
            async with http.get(url, headers={"X-API-Key": key}) as resp:
                assert resp.status == 200
                assert [r["name"] for r in (await resp.json())["data"]] == ["general"]
        assert sum("sk_" in node.output for node in nodes) == 1
    finally:
        codes = await asyncio.gather(*(node.stop() for node in nodes))
    assert codes == [0, 0]
    assert _counts(db_path) == (["default"], ["general"])
