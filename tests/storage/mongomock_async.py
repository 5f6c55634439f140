"""mongomock behind the async subset of PyMongo's API that `MongoStorage` uses.

mongomock is synchronous and in-memory, so each call simply runs inline; the adapter only
gives it the shapes of `AsyncMongoClient`/`AsyncDatabase`/`AsyncCollection`/`AsyncCursor`:
awaitable methods, chainable cursors with `to_list`, and `async for`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import mongomock


class AsyncMongoMockCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def sort(self, *args: Any, **kwargs: Any) -> AsyncMongoMockCursor:
        self._cursor.sort(*args, **kwargs)
        return self

    def skip(self, count: int) -> AsyncMongoMockCursor:
        self._cursor.skip(count)
        return self

    def limit(self, count: int) -> AsyncMongoMockCursor:
        self._cursor.limit(count)
        return self

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        docs = list(self._cursor)
        return docs if length is None else docs[:length]

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        for doc in self._cursor:
            yield doc


class AsyncMongoMockCollection:
    def __init__(self, collection: Any) -> None:
        self._collection = collection
        self.name = collection.name

    def find(self, *args: Any, **kwargs: Any) -> AsyncMongoMockCursor:
        return AsyncMongoMockCursor(self._collection.find(*args, **kwargs))

    async def find_one(self, *args: Any, **kwargs: Any) -> Any:
        return self._collection.find_one(*args, **kwargs)

    async def insert_one(self, *args: Any, **kwargs: Any) -> Any:
        return self._collection.insert_one(*args, **kwargs)

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        return self._collection.update_one(*args, **kwargs)

    async def find_one_and_update(self, *args: Any, **kwargs: Any) -> Any:
        return self._collection.find_one_and_update(*args, **kwargs)

    async def delete_one(self, *args: Any, **kwargs: Any) -> Any:
        return self._collection.delete_one(*args, **kwargs)

    async def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._collection.delete_many(*args, **kwargs)

    async def count_documents(self, *args: Any, **kwargs: Any) -> int:
        return self._collection.count_documents(*args, **kwargs)

    async def distinct(self, *args: Any, **kwargs: Any) -> list[Any]:
        return self._collection.distinct(*args, **kwargs)

    async def create_index(self, *args: Any, **kwargs: Any) -> str:
        return self._collection.create_index(*args, **kwargs)

    async def drop_index(self, *args: Any, **kwargs: Any) -> None:
        self._collection.drop_index(*args, **kwargs)

    async def index_information(self) -> dict[str, Any]:
        return self._collection.index_information()


class AsyncMongoMockDatabase:
    def __init__(self, database: Any, client: AsyncMongoMockClient) -> None:
        self._database = database
        self.client = client
        self.name = database.name

    def __getitem__(self, name: str) -> AsyncMongoMockCollection:
        return self.get_collection(name)

    def get_collection(self, name: str) -> AsyncMongoMockCollection:
        return AsyncMongoMockCollection(self._database[name])

    async def command(self, command: str | dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._database.command(command, **kwargs)


class AsyncMongoMockClient:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._client = mongomock.MongoClient(*args, **kwargs)

    def __getitem__(self, name: str) -> AsyncMongoMockDatabase:
        return self.get_database(name)

    def get_database(self, name: str) -> AsyncMongoMockDatabase:
        return AsyncMongoMockDatabase(self._client[name], self)

    def get_default_database(self, default: str | None = None) -> AsyncMongoMockDatabase:
        return self.get_database(default or "test")

    async def drop_database(self, name: str) -> None:
        self._client.drop_database(name)

    async def close(self) -> None:
        self._client.close()
