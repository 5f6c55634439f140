"""The contract suite's fixtures: one `storage` per backend, opened fresh for every test.

Backends: SQLite file, SQLite in memory, MongoDB through mongomock (an async adapter), and a
real MongoDB when `CHATAPI_TEST_MONGODB_URL` is set (a unique database, dropped afterwards).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.base import Storage
from storage.sqlite import SQLiteStorage

MONGODB_URL = os.environ.get("CHATAPI_TEST_MONGODB_URL", "")
TEST_DATABASE = f"chatapi_test_{uuid.uuid4().hex[:12]}"  # one per test run

BACKENDS = [
    "sqlite-file",
    "sqlite-memory",
    "mongomock",
    pytest.param("mongodb", marks=pytest.mark.skipif(
        not MONGODB_URL, reason="set CHATAPI_TEST_MONGODB_URL to run against real MongoDB")),
]


def make_storage(backend: str, tmp_path: Path) -> Storage:
    """A new, unopened storage of the given backend."""
    if backend == "sqlite-file":
        return SQLiteStorage.from_url(f"sqlite:///{tmp_path / 'contract.db'}")
    if backend == "sqlite-memory":
        return SQLiteStorage.from_url("sqlite:///:memory:")
    if backend == "mongomock":
        from storage.mongo import MongoStorage
        from tests.storage.mongomock_async import AsyncMongoMockClient

        return MongoStorage(AsyncMongoMockClient()["chatapi_test"])
    if backend == "mongodb":
        from storage.mongo import MongoStorage

        return MongoStorage.from_url(MONGODB_URL, database=TEST_DATABASE)
    raise ValueError(backend)


async def drop_storage(backend: str) -> None:
    """Remove what a test left behind where it outlives the process (real MongoDB)."""
    if backend == "mongodb":
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient = AsyncMongoClient(MONGODB_URL, serverSelectionTimeoutMS=3000)
        try:
            await client.drop_database(TEST_DATABASE)
        finally:
            await client.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def storage(backend: str, tmp_path: Path) -> AsyncIterator[Storage]:
    store = make_storage(backend, tmp_path)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        await drop_storage(backend)


@pytest.fixture
def clock() -> Callable[[], str]:
    """Distinct, increasing wire-format timestamps (1 s apart) so orderings are testable."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    counter = itertools.count()

    def tick() -> str:
        moment = start + timedelta(seconds=next(counter))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    return tick
