"""Storage backends, chosen by URL scheme; drivers are imported only when chosen."""

from __future__ import annotations

from typing import Any

from storage.base import (
    MessageQuery,
    NotificationQuery,
    QueryTimeout,
    RecordNotFound,
    RoomQuery,
    SchemaMismatch,
    Storage,
    StorageError,
    StorageUnavailable,
)

__all__ = [
    "MessageQuery",
    "NotificationQuery",
    "QueryTimeout",
    "RecordNotFound",
    "RoomQuery",
    "SchemaMismatch",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "create_storage",
]


def create_storage(url: str, **sqlite_options: Any) -> Storage:
    """`sqlite:///path.db`, `sqlite:///:memory:`, `mongodb://…` or `mongodb+srv://…`.
    `sqlite_options`: SQLiteStorage's `read_connections` and `read_timeout`."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from storage.sqlite import SQLiteStorage

        return SQLiteStorage.from_url(url, **sqlite_options)
    if scheme in ("mongodb", "mongodb+srv"):
        from storage.mongo import MongoStorage

        return MongoStorage.from_url(url)
    raise ValueError(f"unsupported database URL scheme {scheme!r} (use sqlite:// or mongodb://)")
