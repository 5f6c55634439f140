"""Storage backends, chosen by URL scheme; drivers are imported only when chosen."""

from __future__ import annotations

from storage.base import (
    MessageQuery,
    NotificationQuery,
    RecordNotFound,
    RoomQuery,
    Storage,
    StorageError,
    StorageUnavailable,
)

__all__ = [
    "MessageQuery",
    "NotificationQuery",
    "RecordNotFound",
    "RoomQuery",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "create_storage",
]


def create_storage(url: str) -> Storage:
    """`sqlite:///path.db`, `sqlite:///:memory:`, `mongodb://…` or `mongodb+srv://…`."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from storage.sqlite import SQLiteStorage

        return SQLiteStorage.from_url(url)
    if scheme in ("mongodb", "mongodb+srv"):
        from storage.mongo import MongoStorage

        return MongoStorage.from_url(url)
    raise ValueError(f"unsupported database URL scheme {scheme!r} (use sqlite:// or mongodb://)")
