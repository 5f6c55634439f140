"""MongoDB backend through PyMongo's async API (`pymongo.AsyncMongoClient`).

`mongodb://host/dbname` (database from the URL path, default `chatapi`). Tests may pass a
ready client or database (e.g. mongomock behind an async adapter) to the constructor.

Records keep their id as Mongo's `_id`. A message's seq comes from `$inc` on its room
(find_one_and_update, AFTER), then the message is inserted: two round trips, serialized per
room within this process, so this node never stores seq N+1 before N and a repeated
client_msg_id is caught by a lookup before any seq is taken.

Can't do (no multi-document transactions are used, so it also runs on a standalone server):
- across nodes, a reader may briefly see seq N+1 before another node's N is inserted;
- two nodes storing the same client_msg_id at the same instant: the unique index keeps one
  message, and the loser's seq stays unused (seqs are never reused; gaps are harmless to
  `after_seq` paging);
- a crash between the room update and the insert likewise leaves a seq unused.

Failures: a lost connection, a primary stepping down or a server shutting down (the
driver's ConnectionFailure family, or an OperationFailure labelled RetryableWriteError or
carrying one of _TRANSIENT_CODES) is StorageUnavailable, a retryable 503. PyMongo retries
each write once by itself on a replica set (retryable writes, on by default), and the
server's default write concern (majority, since MongoDB 5.0) keeps an acknowledged write
through a failover. A send whose reply was lost may still have been stored: the client's
retry with the same client_msg_id finds it (lookup first, else the idempotency index), so
the message is stored once.

Schema: SCHEMA_VERSION, kept in the `meta` collection (`_id: "schema_version"`), is the
version of INDEXES; a database from before versions were recorded counts as v0. `open()`
creates missing indexes and replaces by name those whose spec changed when neither the old
nor the new one is unique (dropping and re-creating a non-unique index only slows queries
for a moment); a changed unique index leaves a window for duplicates, so only `chatapi
migrate` (`open(migrate=True)`) replaces it. Bump SCHEMA_VERSION with every INDEXES change.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import bson
from bson.errors import BSONError
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import (
    ConfigurationError,
    ConnectionFailure,
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
)

from app.timeutil import now_ts
from storage.base import (
    MessageQuery,
    NotificationQuery,
    Page,
    Record,
    RecordNotFound,
    RoomQuery,
    SchemaMismatch,
    Storage,
    StorageError,
    StorageUnavailable,
)
from storage.records import (
    CLIENT_DEFAULTS,
    CLIENT_FIELDS,
    CLIENT_MUTABLE,
    MESSAGE_DEFAULTS,
    MESSAGE_FIELDS,
    MESSAGE_MUTABLE,
    NOTIFICATION_DEFAULTS,
    NOTIFICATION_FIELDS,
    NOTIFICATION_MUTABLE,
    PARTICIPANT_DEFAULTS,
    PARTICIPANT_FIELDS,
    ROOM_DEFAULTS,
    ROOM_FIELDS,
    ROOM_MUTABLE,
    check_changes,
    normalized,
)

DEFAULT_DATABASE = "chatapi"
DEFAULT_TIMEOUT_MS = 3000
_AUTH_ERROR_CODES = frozenset({13, 18})  # Unauthorized, AuthenticationFailed
# Server answers that mean "not now, try again": HostUnreachable, HostNotFound,
# NetworkTimeout, ShutdownInProgress, PrimarySteppedDown, WriteConcernFailed (the write may
# or may not stand: retried with its client_msg_id it is stored once), SocketException,
# NotWritablePrimary, InterruptedAtShutdown, InterruptedDueToReplStateChange,
# NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary.
_TRANSIENT_CODES = frozenset({6, 7, 89, 91, 189, 64, 9001, 10107, 11600, 11602, 13435, 13436})
_INDEX_BUILD_CODES = frozenset({67, 85, 86, 11000})  # CannotCreateIndex, the two conflicts, dup
_INDEX_NOT_FOUND = 27
SCHEMA_VERSION = 1
SCHEMA_KEY = "schema_version"

# collection -> [(keys, options)]
INDEXES: dict[str, list[tuple[list[tuple[str, int]], dict[str, Any]]]] = {
    "clients": [([("api_key_hash", ASCENDING)], {"unique": True, "name": "api_key_hash"})],
    "rooms": [
        # _id last: the tie-break of every room sort, so no sort happens in memory.
        ([("client_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)],
         {"name": "client_created"}),
        ([("client_id", ASCENDING), ("name", ASCENDING), ("_id", ASCENDING)],
         {"name": "client_name"}),
    ],
    "participants": [
        ([("room_id", ASCENDING), ("user_id", ASCENDING)], {"unique": True, "name": "room_user"}),
        ([("room_id", ASCENDING), ("joined_at", ASCENDING), ("user_id", ASCENDING)],
         {"name": "room_joined"}),
        ([("user_id", ASCENDING), ("room_id", ASCENDING)], {"name": "user_rooms"}),
    ],
    "messages": [
        ([("room_id", ASCENDING), ("seq", ASCENDING)], {"unique": True, "name": "room_seq"}),
        ([("room_id", ASCENDING), ("sender_id", ASCENDING), ("client_msg_id", ASCENDING)],
         {"unique": True, "name": "idempotency",
          "partialFilterExpression": {"client_msg_id": {"$type": "string"}}}),
        # Deleted rows only: history totals = seq range size - deleted in range.
        ([("room_id", ASCENDING), ("is_deleted", ASCENDING), ("seq", ASCENDING)],
         {"name": "room_deleted", "partialFilterExpression": {"is_deleted": True}}),
    ],
    "notifications": [
        ([("client_id", ASCENDING), ("created_at", ASCENDING)], {"name": "client_created"}),
    ],
}
_ROOM_ORDER = {
    "name": [("name", ASCENDING), ("_id", ASCENDING)],
    "-name": [("name", DESCENDING), ("_id", DESCENDING)],
    "created_at": [("created_at", ASCENDING), ("_id", ASCENDING)],
    "-created_at": [("created_at", DESCENDING), ("_id", DESCENDING)],
}


def _doc(record: Record) -> dict[str, Any]:
    """A record as stored: the id becomes `_id`, `meta` becomes JSON text."""
    doc = _encoded(record)
    doc["_id"] = doc.pop("id")
    return doc


def _encoded(fields: Record) -> dict[str, Any]:
    """`meta` is kept as JSON text: its keys are the user's, and MongoDB refuses `$`-prefixed
    or dotted field names in updates, where mongomock does not."""
    doc = dict(fields)
    if isinstance(doc.get("meta"), dict):
        doc["meta"] = json.dumps(doc["meta"], separators=(",", ":"), ensure_ascii=False)
    return doc


def _set(changes: Record) -> dict[str, Any]:
    return {"$set": _encoded(changes)}


def _record(doc: dict[str, Any] | None, fields: tuple[str, ...], defaults: Record) -> Record | None:
    return None if doc is None else normalized(_renamed(doc, fields), fields, defaults)


def _records(docs: list[dict[str, Any]], fields: tuple[str, ...], defaults: Record
             ) -> list[Record]:
    return [normalized(_renamed(doc, fields), fields, defaults) for doc in docs]


def _renamed(doc: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    if "_id" in doc and "id" in fields:
        doc["id"] = doc.pop("_id")
    if isinstance(doc.get("meta"), str):
        doc["meta"] = json.loads(doc["meta"])
    return doc


def _unavailable(exc: OperationFailure) -> bool:
    """A server answer meaning it can't serve now: denied, timed out or changing primary."""
    return (exc.code in _AUTH_ERROR_CODES or exc.code in _TRANSIENT_CODES or exc.timeout
            or exc.has_error_label("RetryableWriteError"))


def _meta_text(value: Record) -> str:
    """Canonical JSON, so that equal records compare equal in swap_meta's filter."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _index_spec(info: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two indexes the same, from index_information() or INDEXES options."""
    keys = tuple((field, int(direction)) for field, direction in info["key"])
    return (keys, bool(info.get("unique")), bool(info.get("sparse")),
            info.get("partialFilterExpression"), info.get("expireAfterSeconds"))


def _clashing(existing: dict[str, Any], keys: list[tuple[str, int]],
              options: dict[str, Any]) -> list[str]:
    """Existing indexes in the way of this one: its name with another spec (mongod error
    86), or its keys under another name (error 85)."""
    wanted = _index_spec({"key": keys, **options})
    clashing = []
    for name, info in existing.items():
        spec = _index_spec(info)
        if name == options["name"] and spec != wanted:
            clashing.append(name)
        elif name not in (options["name"], "_id_") and spec[0] == wanted[0]:
            clashing.append(name)
    return clashing


def _replaceable(existing: dict[str, Any], clashing: list[str], options: dict[str, Any]) -> bool:
    return not options.get("unique") and not any(
        existing[name].get("unique") for name in clashing)


def _one_line(exc: OperationFailure) -> str:
    message = (exc.details or {}).get("errmsg") or str(exc)
    return " ".join(str(message).split())


def _contains(text: str) -> dict[str, str]:
    """Case-insensitive literal substring: the user's text never acts as a pattern."""
    return {"$regex": re.escape(text), "$options": "i"}


class MongoStorage(Storage):
    """MongoDB; any number of server processes may share it (see module docstring)."""

    # A server that is down at start is waited for: the app retries `open()` in the
    # background and answers 503 meanwhile (`open()` keeps the client for the next try).
    reconnects = True

    def __init__(self, target: Any, *, database: str | None = None,
                 owns_client: bool = False) -> None:
        """`target`: an AsyncMongoClient (database `database`, else the URL's, else
        `chatapi`) or an AsyncDatabase. A client passed in is closed only if `owns_client`."""
        if hasattr(type(target), "get_database"):  # a database answers any attribute
            self._client = target
            self._db = (target.get_database(database) if database
                        else target.get_default_database(default=DEFAULT_DATABASE))
        else:
            self._client = getattr(target, "client", None)
            self._db = target
        self._owns_client = owns_client
        self._open = False
        self._closed = False
        self._room_locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._clients = self._db["clients"]
        self._rooms = self._db["rooms"]
        self._participants = self._db["participants"]
        self._messages = self._db["messages"]
        self._notifications = self._db["notifications"]
        self._meta = self._db["meta"]
        self.migrated: list[str] = []

    @classmethod
    def from_url(cls, url: str, *, database: str | None = None,
                 timeout_ms: int = DEFAULT_TIMEOUT_MS) -> MongoStorage:
        """`mongodb://…` or `mongodb+srv://…`; timeouts given in the URL win over `timeout_ms`."""
        from pymongo import AsyncMongoClient

        options = {"serverSelectionTimeoutMS": timeout_ms, "connectTimeoutMS": timeout_ms,
                   "socketTimeoutMS": max(timeout_ms, 20_000)}
        lowered = url.lower()
        options = {k: v for k, v in options.items() if k.lower() not in lowered}
        try:
            client: Any = AsyncMongoClient(url, **options)
        except (ConfigurationError, ValueError, TypeError) as exc:
            raise ValueError(f"bad MongoDB URL: {exc}") from exc
        return cls(client, database=database, owns_client=True)

    # -- plumbing ----------------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Driver errors become storage errors; a lost or closed server is StorageUnavailable."""
        if not self._open:
            raise StorageUnavailable("MongoDB storage is closed")
        try:
            yield
        except (ConnectionFailure, InvalidOperation) as exc:  # incl. timeouts, AutoReconnect
            raise StorageUnavailable(f"MongoDB: {exc}") from exc
        except OperationFailure as exc:
            if _unavailable(exc):
                raise StorageUnavailable(f"MongoDB: {exc}") from exc
            raise StorageError(f"MongoDB: {exc}") from exc
        except PyMongoError as exc:
            if exc.timeout:
                raise StorageUnavailable(f"MongoDB: {exc}") from exc
            raise StorageError(f"MongoDB: {exc}") from exc
        except (BSONError, UnicodeError) as exc:  # e.g. a lone surrogate in a string
            raise StorageError(f"cannot store as BSON: {exc}") from exc

    @asynccontextmanager
    async def _room_lock(self, room_id: str) -> AsyncIterator[None]:
        """Serialize this process's sends to one room (seq order of inserts, idempotency)."""
        lock, users = self._room_locks.setdefault(room_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._room_locks[room_id]

    async def _page(self, collection: Any, filter_: dict[str, Any], sort: list[tuple[str, int]],
                    skip: int, limit: int, projection: dict[str, Any] | None = None
                    ) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        cursor = collection.find(filter_, projection).sort(sort).skip(skip).limit(limit)
        return await cursor.to_list()

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self, *, migrate: bool = False) -> None:
        """Bring the indexes to this code's schema (module docstring); until that succeeds
        every call is StorageUnavailable."""
        if self._closed:
            raise StorageUnavailable("MongoDB storage is closed")
        self._open = True
        try:
            with self._errors():
                self.migrated = await self._upgrade(migrate)
        except BaseException:
            self._open = False
            raise

    async def _upgrade(self, manual: bool) -> list[str]:
        stored = await self._meta.find_one({"_id": SCHEMA_KEY})
        version = stored["version"] if stored else 0
        if version > SCHEMA_VERSION:
            raise SchemaMismatch(
                f"MongoDB database {self._db.name} has schema v{version}, newer than this "
                f"ChatAPI (v{SCHEMA_VERSION}): run a ChatAPI version that knows it")
        done: list[str] = []
        for collection, specs in INDEXES.items():
            existing = await self._db[collection].index_information()
            for keys, options in specs:
                done += await self._sync_index(collection, existing, keys, options, manual)
        if version < SCHEMA_VERSION:
            await self._record_version()
            done.append(f"MongoDB schema v{version} -> v{SCHEMA_VERSION}")
        return done

    async def _record_version(self) -> None:
        # $max: a node with older code starting meanwhile never lowers the version.
        try:
            await self._meta.update_one(
                {"_id": SCHEMA_KEY}, {"$max": {"version": SCHEMA_VERSION}}, upsert=True)
        except DuplicateKeyError:  # another node's upsert of the same record won
            await self._meta.update_one(
                {"_id": SCHEMA_KEY}, {"$max": {"version": SCHEMA_VERSION}})

    async def _sync_index(self, collection: str, existing: dict[str, Any],
                          keys: list[tuple[str, int]], options: dict[str, Any],
                          manual: bool) -> list[str]:
        """Create one index of INDEXES, or replace the ones in its way (same name or keys)."""
        name = options["name"]
        clashing = _clashing(existing, keys, options)
        if name in existing and not clashing:
            return []
        where = f"MongoDB index {collection}.{name}"
        if clashing and not manual and not _replaceable(existing, clashing, options):
            raise SchemaMismatch(
                f"{where} differs from this ChatAPI's ({', '.join(clashing)} in the way) and "
                "is unique, so it can't be replaced while other nodes write: stop every node "
                "and run `chatapi migrate`")
        for other in clashing:
            await self._drop_index(collection, other)
        try:
            await self._db[collection].create_index(keys, **options)
        except OperationFailure as exc:
            if exc.code not in _INDEX_BUILD_CODES:
                raise
            raise SchemaMismatch(
                f"{where} can't be built ({_one_line(exc)}): fix what is in the way, then run "
                "`chatapi migrate`") from exc
        return [f"{where} {'replaced' if clashing else 'created'}"]

    async def _drop_index(self, collection: str, name: str) -> None:
        try:
            await self._db[collection].drop_index(name)
        except OperationFailure as exc:
            if exc.code != _INDEX_NOT_FOUND:  # another node dropped it first
                raise

    async def close(self) -> None:
        self._open = False
        if self._owns_client and self._client is not None and not self._closed:
            self._closed = True  # a closed AsyncMongoClient cannot be used again
            try:
                await self._client.close()
            except PyMongoError:
                pass  # closing anyway

    async def check(self) -> None:
        with self._errors():
            await self._db.command("ping")

    # -- meta --------------------------------------------------------------------------------
    async def get_meta(self, key: str) -> Record | None:
        with self._errors():
            doc = await self._meta.find_one({"_id": key, "value": {"$type": "string"}})
        return None if doc is None else json.loads(doc["value"])

    async def swap_meta(self, key: str, value: Record, expected: Record | None) -> bool:
        with self._errors():
            if expected is None:
                try:
                    await self._meta.insert_one({"_id": key, "value": _meta_text(value)})
                except DuplicateKeyError:
                    return False
                return True
            swapped = await self._meta.update_one(
                {"_id": key, "value": _meta_text(expected)},
                {"$set": {"value": _meta_text(value)}})
        return bool(swapped.matched_count)

    # -- clients -----------------------------------------------------------------------------
    async def create_client(self, client: Record) -> Record:
        record = normalized(client, CLIENT_FIELDS, CLIENT_DEFAULTS)
        with self._errors():
            await self._clients.insert_one(_doc(record))
        return record

    async def get_client(self, client_id: str) -> Record | None:
        with self._errors():
            doc = await self._clients.find_one({"_id": client_id})
        return _record(doc, CLIENT_FIELDS, CLIENT_DEFAULTS)

    async def get_client_by_key_hash(self, api_key_hash: str) -> Record | None:
        with self._errors():
            doc = await self._clients.find_one({"api_key_hash": api_key_hash})
        return _record(doc, CLIENT_FIELDS, CLIENT_DEFAULTS)

    async def list_clients(self, skip: int, limit: int) -> Page:
        with self._errors():
            docs = await self._page(self._clients, {}, [("created_at", ASCENDING),
                                                        ("_id", ASCENDING)], skip, limit)
            total = await self._clients.count_documents({})
        return _records(docs, CLIENT_FIELDS, CLIENT_DEFAULTS), total

    async def update_client(self, client_id: str, changes: Record) -> Record | None:
        check_changes("client", changes, CLIENT_MUTABLE)
        if not changes:
            return await self.get_client(client_id)
        with self._errors():
            doc = await self._clients.find_one_and_update(
                {"_id": client_id}, {"$set": changes}, return_document=ReturnDocument.AFTER)
        return _record(doc, CLIENT_FIELDS, CLIENT_DEFAULTS)

    async def delete_client(self, client_id: str) -> bool:
        with self._errors():
            # The client goes first, so its key stops working before its data is swept.
            if not (await self._clients.delete_one({"_id": client_id})).deleted_count:
                return False
            room_ids = await self._rooms.distinct("_id", {"client_id": client_id})
            await self._rooms.delete_many({"client_id": client_id})
            await self._messages.delete_many({"room_id": {"$in": room_ids}})
            await self._participants.delete_many({"room_id": {"$in": room_ids}})
            await self._notifications.delete_many({"client_id": client_id})
        return True

    async def count_clients(self) -> int:
        with self._errors():
            return await self._clients.count_documents({})

    # -- rooms -------------------------------------------------------------------------------
    async def create_room(self, room: Record) -> Record:
        record = normalized(room, ROOM_FIELDS, ROOM_DEFAULTS)
        record.update(participant_count=0, message_count=0, last_seq=0, last_message_at=None)
        record["updated_at"] = record["updated_at"] or record["created_at"]
        doc = _doc(record)
        del doc["last_message_at"]  # absent until the first message ($max needs no null)
        with self._errors():
            if await self._clients.find_one({"_id": record["client_id"]}, {"_id": 1}) is None:
                raise RecordNotFound(f"client {record['client_id']!r} does not exist")
            await self._rooms.insert_one(doc)
        return record

    async def get_room(self, client_id: str, room_id: str) -> Record | None:
        with self._errors():
            doc = await self._rooms.find_one({"_id": room_id, "client_id": client_id})
        return _record(doc, ROOM_FIELDS, ROOM_DEFAULTS)

    async def list_rooms(self, client_id: str, query: RoomQuery) -> Page:
        order = _ROOM_ORDER.get(query.sort)
        if order is None:
            raise ValueError(f"unknown room sort {query.sort!r}")
        with self._errors():
            filter_ = await self._room_filter(client_id, query)
            docs = await self._page(self._rooms, filter_, order, query.skip, query.limit)
            total = await self._rooms.count_documents(filter_)
        return _records(docs, ROOM_FIELDS, ROOM_DEFAULTS), total

    async def _room_filter(self, client_id: str, query: RoomQuery) -> dict[str, Any]:
        clauses: list[dict[str, Any]] = [{"client_id": client_id}]
        if query.is_active is not None:
            clauses.append({"is_active": query.is_active})
        if query.search:
            needle = _contains(query.search)
            clauses.append({"$or": [{"name": needle}, {"description": needle}]})
        if query.visible_to is not None:
            member_of = await self._participants.distinct(
                "room_id", {"user_id": query.visible_to})
            clauses.append({"$or": [{"is_private": False}, {"_id": {"$in": member_of}}]})
        if query.ids is not None:
            clauses.append({"_id": {"$in": list(query.ids)}})
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    async def update_room(self, client_id: str, room_id: str, changes: Record) -> Record | None:
        changes = {"updated_at": now_ts(), **changes}
        check_changes("room", changes, ROOM_MUTABLE)
        with self._errors():
            doc = await self._rooms.find_one_and_update(
                {"_id": room_id, "client_id": client_id}, _set(changes),
                return_document=ReturnDocument.AFTER)
        return _record(doc, ROOM_FIELDS, ROOM_DEFAULTS)

    async def delete_room(self, client_id: str, room_id: str) -> bool:
        with self._errors():
            deleted = await self._rooms.delete_one({"_id": room_id, "client_id": client_id})
            if not deleted.deleted_count:
                return False
            await self._messages.delete_many({"room_id": room_id})
            await self._participants.delete_many({"room_id": room_id})
        return True

    # -- participants ------------------------------------------------------------------------
    async def add_participant(self, participant: Record) -> bool:
        record = normalized(participant, PARTICIPANT_FIELDS, PARTICIPANT_DEFAULTS)
        room_id = record["room_id"]
        with self._errors():
            try:
                await self._participants.insert_one(_encoded(record))
            except DuplicateKeyError:
                return False
            counted = await self._rooms.update_one(
                {"_id": room_id}, {"$inc": {"participant_count": 1}})
            if not counted.matched_count:
                await self._participants.delete_one(
                    {"room_id": room_id, "user_id": record["user_id"]})
                raise RecordNotFound(f"room {room_id!r} does not exist")
        return True

    async def remove_participant(self, room_id: str, user_id: str) -> bool:
        with self._errors():
            removed = await self._participants.delete_one({"room_id": room_id, "user_id": user_id})
            if not removed.deleted_count:
                return False
            await self._rooms.update_one({"_id": room_id}, {"$inc": {"participant_count": -1}})
        return True

    async def get_participant(self, room_id: str, user_id: str) -> Record | None:
        with self._errors():
            doc = await self._participants.find_one(
                {"room_id": room_id, "user_id": user_id}, {"_id": 0})
        return _record(doc, PARTICIPANT_FIELDS, PARTICIPANT_DEFAULTS)

    async def list_participants(self, room_id: str, skip: int, limit: int) -> Page:
        with self._errors():
            docs = await self._page(
                self._participants, {"room_id": room_id},
                [("joined_at", ASCENDING), ("user_id", ASCENDING)], skip, limit, {"_id": 0})
            total = await self._participants.count_documents({"room_id": room_id})
        return _records(docs, PARTICIPANT_FIELDS, PARTICIPANT_DEFAULTS), total

    async def set_last_read_seq(self, room_id: str, user_id: str, seq: int) -> Record | None:
        with self._errors():
            doc = await self._participants.find_one_and_update(
                {"room_id": room_id, "user_id": user_id}, {"$max": {"last_read_seq": seq}},
                projection={"_id": 0}, return_document=ReturnDocument.AFTER)
        return _record(doc, PARTICIPANT_FIELDS, PARTICIPANT_DEFAULTS)

    # -- messages ----------------------------------------------------------------------------
    async def add_message(self, message: Record) -> tuple[Record, bool]:
        record = normalized(message, MESSAGE_FIELDS, MESSAGE_DEFAULTS)
        room_id = record["room_id"]
        async with self._room_lock(room_id):
            with self._errors():
                if record["client_msg_id"] is not None:
                    stored = await self._find_retry(record)
                    if stored is not None:
                        return stored, False
                bson.encode(record)  # refuse unstorable text before a seq is taken
                room = await self._rooms.find_one_and_update(
                    {"_id": room_id},
                    {"$inc": {"last_seq": 1, "message_count": 0 if record["is_deleted"] else 1},
                     "$max": {"last_message_at": record["created_at"]}},
                    projection={"last_seq": 1, "client_id": 1},
                    return_document=ReturnDocument.AFTER)
                if room is None:
                    raise RecordNotFound(f"room {room_id!r} does not exist")
                record["seq"], record["client_id"] = room["last_seq"], room["client_id"]
                try:
                    await self._messages.insert_one(_doc(record))
                except DuplicateKeyError:
                    return await self._lost_race(record)
        return record, True

    async def _find_retry(self, record: Record) -> Record | None:
        doc = await self._messages.find_one({
            "room_id": record["room_id"], "sender_id": record["sender_id"],
            "client_msg_id": record["client_msg_id"]})
        return _record(doc, MESSAGE_FIELDS, MESSAGE_DEFAULTS)

    async def _lost_race(self, record: Record) -> tuple[Record, bool]:
        """The insert hit a unique index after the seq was taken: give back the count, note
        the seq as unused (history totals subtract it), and return the message another node
        stored, if that was it."""
        await self._rooms.update_one(
            {"_id": record["room_id"]},
            {"$inc": {"message_count": 0 if record["is_deleted"] else -1},
             "$push": {"unused_seqs": record["seq"]}})
        stored = await self._find_retry(record) if record["client_msg_id"] else None
        if stored is None:
            raise StorageError(f"message {record['id']!r} already exists")
        return stored, False

    async def get_message(self, client_id: str, message_id: str) -> Record | None:
        with self._errors():
            doc = await self._messages.find_one({"_id": message_id, "client_id": client_id})
        return _record(doc, MESSAGE_FIELDS, MESSAGE_DEFAULTS)

    async def list_messages(self, room_id: str, query: MessageQuery) -> Page:
        filter_: dict[str, Any] = {"room_id": room_id}
        if not query.include_deleted:
            filter_["is_deleted"] = False
        for field, value in (("sender_id", query.sender_id),
                             ("message_type", query.message_type)):
            if value is not None:
                filter_[field] = value
        created: dict[str, str] = {}
        if query.created_after is not None:
            created["$gt"] = query.created_after
        if query.created_before is not None:
            created["$lt"] = query.created_before
        if created:
            filter_["created_at"] = created
        if query.search:
            filter_["content"] = _contains(query.search)
        filtered = len(filter_) > 1 + (not query.include_deleted)
        seq: dict[str, int] = {}
        if query.after_seq is not None:
            seq["$gt"] = query.after_seq
        if query.before_seq is not None:
            seq["$lt"] = query.before_seq
        if seq:
            filter_["seq"] = seq
        order = ASCENDING if query.ascending else DESCENDING
        with self._errors():
            docs = await self._page(
                self._messages, filter_, [("seq", order)], query.skip, query.limit)
            if filtered:
                total = await self._messages.count_documents(filter_)
            else:
                total = await self._range_total(room_id, query)
        return _records(docs, MESSAGE_FIELDS, MESSAGE_DEFAULTS), total

    async def _range_total(self, room_id: str, query: MessageQuery) -> int:
        """Messages in the query's seq range from the room's last_seq, minus deleted ones
        and seqs lost to an idempotency race (a crash mid-send may still leave one counted)."""
        room = await self._rooms.find_one({"_id": room_id}, {"last_seq": 1, "unused_seqs": 1})
        if room is None:
            return 0
        low = 1 if query.after_seq is None else max(1, query.after_seq + 1)
        high = room["last_seq"] if query.before_seq is None else min(
            room["last_seq"], query.before_seq - 1)
        if high < low:
            return 0
        total = high - low + 1 - sum(low <= s <= high for s in room.get("unused_seqs", ()))
        if not query.include_deleted:
            total -= await self._messages.count_documents(
                {"room_id": room_id, "is_deleted": True, "seq": {"$gte": low, "$lte": high}})
        return total

    async def update_message(self, message_id: str, changes: Record) -> Record | None:
        changes = {"updated_at": now_ts(), **changes}
        check_changes("message", changes, MESSAGE_MUTABLE)
        with self._errors():
            doc = await self._messages.find_one_and_update(
                {"_id": message_id}, _set(changes), return_document=ReturnDocument.AFTER)
        return _record(doc, MESSAGE_FIELDS, MESSAGE_DEFAULTS)

    async def set_message_deleted(
        self, message_id: str, deleted: bool, deleted_by: str | None, at: str
    ) -> Record | None:
        state = {"is_deleted": deleted, "deleted_at": at if deleted else None,
                 "deleted_by": deleted_by if deleted else None, "updated_at": at}
        with self._errors():
            # Only the call that flips the flag moves the room's count.
            doc = await self._messages.find_one_and_update(
                {"_id": message_id, "is_deleted": not deleted}, {"$set": state},
                return_document=ReturnDocument.AFTER)
            if doc is None:
                doc = await self._messages.find_one({"_id": message_id})
            else:
                await self._rooms.update_one(
                    {"_id": doc["room_id"]}, {"$inc": {"message_count": -1 if deleted else 1}})
        return _record(doc, MESSAGE_FIELDS, MESSAGE_DEFAULTS)

    # -- notifications -----------------------------------------------------------------------
    async def add_notification(self, notification: Record) -> Record:
        record = normalized(notification, NOTIFICATION_FIELDS, NOTIFICATION_DEFAULTS)
        with self._errors():
            await self._notifications.insert_one(_doc(record))
        return record

    async def update_notification(self, notification_id: str, changes: Record) -> Record | None:
        check_changes("notification", changes, NOTIFICATION_MUTABLE)
        with self._errors():
            if changes:
                doc = await self._notifications.find_one_and_update(
                    {"_id": notification_id}, _set(changes),
                    return_document=ReturnDocument.AFTER)
            else:
                doc = await self._notifications.find_one({"_id": notification_id})
        return _record(doc, NOTIFICATION_FIELDS, NOTIFICATION_DEFAULTS)

    async def get_notification(self, client_id: str, notification_id: str) -> Record | None:
        with self._errors():
            doc = await self._notifications.find_one(
                {"_id": notification_id, "client_id": client_id})
        return _record(doc, NOTIFICATION_FIELDS, NOTIFICATION_DEFAULTS)

    async def list_notifications(self, client_id: str, query: NotificationQuery) -> Page:
        filter_: dict[str, Any] = {"client_id": client_id}
        if query.room_id is not None:
            filter_["room_id"] = query.room_id
        if query.status is not None:
            filter_["status"] = query.status
        if query.user_id is not None:
            filter_["user_ids"] = query.user_id  # matches an element of the list
        with self._errors():
            docs = await self._page(
                self._notifications, filter_, [("created_at", DESCENDING), ("_id", DESCENDING)],
                query.skip, query.limit)
            total = await self._notifications.count_documents(filter_)
        return _records(docs, NOTIFICATION_FIELDS, NOTIFICATION_DEFAULTS), total

    # -- writes checked and made in one step (a connection pool answers in any order) ------
    async def edit_live_message(self, message_id: str, changes: Record) -> Record | None:
        changes = {"updated_at": now_ts(), **changes}
        check_changes("message", changes, MESSAGE_MUTABLE)
        with self._errors():
            doc = await self._messages.find_one_and_update(
                {"_id": message_id, "is_deleted": False}, _set(changes),
                return_document=ReturnDocument.AFTER)
        return _record(doc, MESSAGE_FIELDS, MESSAGE_DEFAULTS)
