"""A real server's failures during a send: connection resets, primary stepdowns, lost replies.

Faults are injected into mongomock's async adapter: every one is StorageUnavailable (a
retryable 503), and a client's retry with its client_msg_id stores the message once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

from app.config import Settings
from app.main import create_app
from storage.base import MessageQuery, StorageError, StorageUnavailable
from storage.mongo import MongoStorage
from tests.conftest import Api
from tests.storage.mongomock_async import AsyncMongoMockClient, AsyncMongoMockCollection
from tests.storage.test_contract import Clock, add_client, add_room, message_for

FAILURES = [
    AutoReconnect("connection reset by peer"),
    NotPrimaryError("not primary"),
    ConnectionFailure("connection closed"),
    NetworkTimeout("timed out"),
    ServerSelectionTimeoutError("no primary available"),
    OperationFailure("PrimarySteppedDown", code=189),
    OperationFailure("ShutdownInProgress", code=91),
    OperationFailure("InterruptedDueToReplStateChange", code=11602),
    OperationFailure("NotWritablePrimary", code=10107),
    OperationFailure("labelled", code=1, details={"errorLabels": ["RetryableWriteError"]}),
    WriteConcernError("waiting for replication timed out", code=64, details={}),
]


@pytest.fixture
async def mock_storage() -> AsyncIterator[MongoStorage]:
    store = MongoStorage(AsyncMongoMockClient()["chatapi_faults"])
    await store.open()
    yield store
    await store.close()


def _fail_on(monkeypatch: pytest.MonkeyPatch, method: str, collection: str,
             error: Exception, after: bool = False) -> None:
    """Make `collection.method` raise `error` once: before doing anything, or `after` doing
    it (the server applied the write, its reply was lost)."""
    real = getattr(AsyncMongoMockCollection, method)
    state = {"armed": True}

    async def faulty(self: AsyncMongoMockCollection, *args: Any, **kwargs: Any) -> Any:
        if self.name != collection or not state["armed"]:
            return await real(self, *args, **kwargs)
        state["armed"] = False
        if after:
            await real(self, *args, **kwargs)
        raise error

    monkeypatch.setattr(AsyncMongoMockCollection, method, faulty)


@pytest.mark.parametrize("error", FAILURES, ids=lambda e: type(e).__name__ + str(
    getattr(e, "code", "") or ""))
@pytest.mark.parametrize(("method", "collection"), [
    ("find_one", "messages"),              # the client_msg_id lookup
    ("find_one_and_update", "rooms"),      # taking the seq
    ("insert_one", "messages"),            # storing the message
])
async def test_failures_during_a_send_are_unavailable(
        mock_storage: MongoStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        error: Exception, method: str, collection: str) -> None:
    client = await add_client(mock_storage, clock)
    room = await add_room(mock_storage, clock, client)
    _fail_on(monkeypatch, method, collection, error)
    with pytest.raises(StorageUnavailable):
        await mock_storage.add_message(message_for(room, clock, client_msg_id="k1"))
    assert mock_storage._room_locks == {}


async def test_other_server_errors_stay_storage_errors(
        mock_storage: MongoStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    client = await add_client(mock_storage, clock)
    room = await add_room(mock_storage, clock, client)
    _fail_on(monkeypatch, "insert_one", "messages", OperationFailure("BadValue", code=2))
    with pytest.raises(StorageError) as caught:
        await mock_storage.add_message(message_for(room, clock))
    assert not isinstance(caught.value, StorageUnavailable)


@pytest.mark.parametrize("error", [AutoReconnect("reset"), NotPrimaryError("stepped down")])
async def test_retry_after_a_lost_reply_stores_once(
        mock_storage: MongoStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch,
        error: Exception) -> None:
    """The insert reached the server but its reply did not: the client saw a 503 and sends
    again with the same client_msg_id; the message is stored once, with its first seq."""
    client = await add_client(mock_storage, clock)
    room = await add_room(mock_storage, clock, client)
    _fail_on(monkeypatch, "insert_one", "messages", error, after=True)
    first = message_for(room, clock, client_msg_id="k1")
    with pytest.raises(StorageUnavailable):
        await mock_storage.add_message(first)
    stored, created = await mock_storage.add_message({**first, "id": "retry-id"})
    assert created is False and stored["id"] == first["id"] and stored["seq"] == 1
    items, total = await mock_storage.list_messages(room["id"], MessageQuery())
    assert [m["id"] for m in items] == [first["id"]] and total == 1


async def test_retry_after_a_failed_seq_stores_once(
        mock_storage: MongoStorage, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The primary stepped down before taking the seq: nothing was written; the retry is
    the message's only copy."""
    client = await add_client(mock_storage, clock)
    room = await add_room(mock_storage, clock, client)
    _fail_on(monkeypatch, "find_one_and_update", "rooms", NotPrimaryError("stepped down"))
    first = message_for(room, clock, client_msg_id="k1")
    with pytest.raises(StorageUnavailable):
        await mock_storage.add_message(first)
    stored, created = await mock_storage.add_message(first)
    assert created is True and stored["seq"] == 1
    items, total = await mock_storage.list_messages(room["id"], MessageQuery())
    assert len(items) == 1 and total == 1


# -- through REST --------------------------------------------------------------------------
@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[TestServer]:
    """The app on MongoDB storage (mongomock), instead of the suite's SQLite."""
    store = MongoStorage(AsyncMongoMockClient()["chatapi_rest_faults"])
    served = TestServer(create_app(settings, storage=store), host="127.0.0.1")
    await served.start_server()
    yield served
    await served.close()


async def test_a_stepdown_during_a_send_is_a_retryable_503(
        api: Api, room: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    path = f"/rooms/{room['id']}/messages"
    body = {"sender_id": "alice", "content": "hi", "client_msg_id": "c-1"}
    _fail_on(monkeypatch, "insert_one", "messages", NotPrimaryError("stepped down"),
             after=True)
    status, refused = await api.call("POST", path, body)
    assert status == 503, refused
    assert refused["error_code"] == "SERVICE_UNAVAILABLE"
    status, sent = await api.call("POST", path, body)
    assert status in (200, 201), sent
    assert sent["data"]["seq"] == 1
    status, history = await api.call("GET", path)
    assert status == 200 and [m["content"] for m in history["data"]] == ["hi"]
