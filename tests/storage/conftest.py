"""The contract suite's fixtures: one `storage` per backend, opened fresh for every test.

Backends: SQLite file, SQLite in memory, MongoDB through mongomock (an async adapter), and a
real MongoDB-wire server: SecantusDB started for the test process, or the server that
`CHATAPI_TEST_MONGODB_URL` names (tests/mongo_server.py); a database per test, dropped
afterwards.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.base import Storage
from storage.sqlite import SQLiteStorage

BACKENDS = ["sqlite-file", "sqlite-memory", "mongomock", "mongodb"]


def make_storage(backend: str, tmp_path: Path, mongodb_url: str = "") -> Storage:
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

        return MongoStorage.from_url(mongodb_url)
    raise ValueError(backend)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def backend_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The real server's URL with a database of the test's own (dropped afterwards)."""
    return str(request.getfixturevalue("mongodb_url")) if backend == "mongodb" else ""


@pytest.fixture
async def storage(backend: str, backend_url: str, tmp_path: Path) -> AsyncIterator[Storage]:
    store = make_storage(backend, tmp_path, backend_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def clock() -> Callable[[], str]:
    """Distinct, increasing wire-format timestamps (1 s apart) so orderings are testable."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    counter = itertools.count()

    def tick() -> str:
        moment = start + timedelta(seconds=next(counter))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    return tick
