"""SQLite backend: the embedded default (`sqlite:///chatapi.db`, `sqlite:///:memory:`).

One aiosqlite connection (WAL, synchronous=NORMAL, foreign keys). Every write is a single
SQL statement: room counters are kept by triggers and tenant/room deletion by
`ON DELETE CASCADE`, so each write is atomic on its own, costs one hop to aiosqlite's worker
thread, and can never interleave with another coroutine's statements.

Several processes on one machine may share the file (say two `chatapi serve` behind a local
proxy, or `chatapi create-client`): a write waits up to BUSY_TIMEOUT_S for SQLite's single
write lock, and since a message's seq is read and its row written by one statement under that
lock, no seq is ever shared or skipped across processes.

List and search queries (`list_*`) run on their own read-only connections, each in its
own thread (`Readers`), so however slow one is, no write waits behind it; each is cut off
after `read_timeout` seconds (`QueryTimeout`, a 503). Point lookups and writes share the
main connection, in order. A `:memory:` database is private to one connection, so there
every query runs on the main connection, without the time limit.

Can't do: nodes on different machines (WAL needs the file on a local disk, not a network
share), or more write throughput than one write lock allows. Use MongoDB for that.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiosqlite

from app.timeutil import now_ts
from storage.base import (
    MessageQuery,
    NotificationQuery,
    Page,
    QueryTimeout,
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

# -- schema -----------------------------------------------------------------------------------
# Migration N (1-based) brings PRAGMA user_version from N-1 to N. Append only; never edit a
# step that has shipped. `chatapi serve` applies a step by itself unless its number is in
# MANUAL_MIGRATIONS (a step other processes on the file must not run through, e.g. one that
# rewrites rows or changes a unique index); `chatapi migrate` applies every step.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: tables, indexes, counter triggers
        """CREATE TABLE clients (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            description TEXT,
            api_key_hash TEXT NOT NULL,
            token_secret TEXT NOT NULL,
            is_active INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL)""",
        "CREATE UNIQUE INDEX clients_api_key_hash ON clients (api_key_hash)",
        """CREATE TABLE rooms (
            id TEXT PRIMARY KEY,
            client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            description TEXT,
            is_active INTEGER NOT NULL DEFAULT 1,
            is_private INTEGER NOT NULL DEFAULT 0,
            meta TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            participant_count INTEGER NOT NULL DEFAULT 0,
            message_count INTEGER NOT NULL DEFAULT 0,
            last_seq INTEGER NOT NULL DEFAULT 0,
            last_message_at TEXT)""",
        "CREATE INDEX rooms_client_created ON rooms (client_id, created_at)",
        "CREATE INDEX rooms_client_name ON rooms (client_id, name)",
        """CREATE TABLE participants (
            room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
            user_id TEXT NOT NULL,
            user_name TEXT,
            joined_at TEXT NOT NULL,
            meta TEXT NOT NULL DEFAULT '{}',
            last_read_seq INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (room_id, user_id)) WITHOUT ROWID""",
        """CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
            client_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            sender_id TEXT NOT NULL,
            sender_name TEXT,
            content TEXT NOT NULL,
            message_type TEXT NOT NULL DEFAULT 'text',
            meta TEXT NOT NULL DEFAULT '{}',
            client_msg_id TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT,
            edited_at TEXT,
            edit_reason TEXT,
            is_deleted INTEGER NOT NULL DEFAULT 0,
            deleted_at TEXT,
            deleted_by TEXT)""",
        "CREATE UNIQUE INDEX messages_room_seq ON messages (room_id, seq)",
        """CREATE UNIQUE INDEX messages_idempotency
            ON messages (room_id, sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL""",
        """CREATE TABLE notifications (
            id TEXT PRIMARY KEY,
            client_id TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
            title TEXT,
            content TEXT,
            room_id TEXT,
            user_ids TEXT,
            action_url TEXT,
            priority TEXT,
            icon TEXT,
            meta TEXT NOT NULL DEFAULT '{}',
            status TEXT,
            recipients_online INTEGER NOT NULL DEFAULT 0,
            delivered_connections INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL)""",
        "CREATE INDEX notifications_client_created ON notifications (client_id, created_at)",
        # The room's counters live with the rows that change them, so no write needs a
        # multi-statement transaction.
        """CREATE TRIGGER messages_counters AFTER INSERT ON messages BEGIN
            UPDATE rooms SET last_seq = max(last_seq, NEW.seq),
                message_count = message_count + (NEW.is_deleted = 0),
                last_message_at = max(coalesce(last_message_at, ''), NEW.created_at)
            WHERE id = NEW.room_id;
        END""",
        """CREATE TRIGGER messages_soft_delete AFTER UPDATE OF is_deleted ON messages
            WHEN OLD.is_deleted <> NEW.is_deleted BEGIN
            UPDATE rooms SET message_count = message_count + (CASE WHEN NEW.is_deleted
                THEN -1 ELSE 1 END) WHERE id = NEW.room_id;
        END""",
        """CREATE TRIGGER participants_join AFTER INSERT ON participants BEGIN
            UPDATE rooms SET participant_count = participant_count + 1 WHERE id = NEW.room_id;
        END""",
        """CREATE TRIGGER participants_leave AFTER DELETE ON participants BEGIN
            UPDATE rooms SET participant_count = participant_count - 1 WHERE id = OLD.room_id;
        END""",
    ),
    (  # 2: history totals and list order without scanning
        # Only deleted rows are indexed: a room's live-message total is then
        # (seq range size) - (deleted in range), since seqs are dense 1..last_seq.
        "CREATE INDEX messages_deleted ON messages (room_id, seq) WHERE is_deleted = 1",
        "CREATE INDEX participants_room_joined ON participants (room_id, joined_at, user_id)",
    ),
    (  # 3: records of the deployment itself (the first-start claim)
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
MANUAL_MIGRATIONS: frozenset[int] = frozenset()

BOOL_FIELDS = frozenset({"is_active", "is_private", "is_deleted"})
JSON_FIELDS = frozenset({"meta", "user_ids"})
ROOM_ORDER = {
    "name": "name ASC, id ASC",
    "-name": "name DESC, id DESC",
    "created_at": "created_at ASC, id ASC",
    "-created_at": "created_at DESC, id DESC",
}
_NO_UPPER_BOUND = 2**62
BUSY_TIMEOUT_S = 5.0  # wait this long for another process's write lock
READ_CONNECTIONS = 2
READ_TIMEOUT_S = 2.0
PROGRESS_STEPS = 1000  # SQLite VM steps between two looks at a read's deadline

# -- hot statements, kept constant so sqlite3's statement cache reuses them ------------------
_ADD_MESSAGE = f"""
    INSERT INTO messages ({", ".join(MESSAGE_FIELDS)})
    SELECT :id, id, client_id, last_seq + 1, :sender_id, :sender_name, :content,
           :message_type, :meta, :client_msg_id, :created_at, :updated_at, :edited_at,
           :edit_reason, :is_deleted, :deleted_at, :deleted_by
    FROM rooms WHERE id = :room_id
    ON CONFLICT (room_id, sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL
    DO NOTHING
    RETURNING seq, client_id"""
_FIND_BY_CLIENT_MSG_ID = (
    "SELECT * FROM messages WHERE room_id = ? AND sender_id = ? AND client_msg_id = ?")
# Total of a room's messages within a seq range, from the counters and the deleted-rows index.
_RANGE_TOTAL = """
    SELECT max(0, min(r.last_seq, :hi) - :lo + 1) - CASE WHEN :include_deleted THEN 0 ELSE (
        SELECT count(*) FROM messages m
        WHERE m.room_id = r.id AND m.is_deleted = 1 AND m.seq >= :lo AND m.seq <= :hi) END
    FROM rooms r WHERE r.id = :room_id"""


def _encode(value: Any, field: str) -> Any:
    if field in JSON_FIELDS:
        return None if value is None else json.dumps(value, ensure_ascii=False,
                                                     separators=(",", ":"))
    if field in BOOL_FIELDS:
        return int(bool(value))
    return value


def _encode_record(record: Record, fields: Sequence[str], defaults: Record) -> dict[str, Any]:
    out = {}
    for field in fields:
        value = record.get(field)
        if value is None:
            value = defaults.get(field)
        out[field] = _encode(value, field)
    return out


def _decode(row: sqlite3.Row) -> Record:
    record = dict(row)
    for field in BOOL_FIELDS.intersection(record):
        record[field] = bool(record[field])
    for field in JSON_FIELDS.intersection(record):
        raw = record[field]
        if raw == "{}":
            record[field] = {}
        elif raw is not None:
            record[field] = json.loads(raw)
    return record


def _meta_text(value: Record) -> str:
    """Canonical JSON, so that equal records compare equal as text in swap_meta."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def like_pattern(text: str) -> str:
    """A LIKE pattern (ESCAPE '\\') matching `text` literally as a substring."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _search_clause(columns: Iterable[str], text: str, params: list[Any]) -> str:
    """Case-insensitive literal substring match on any of `columns`.

    SQLite's LIKE folds ASCII only; for a non-ASCII needle both sides go through Python's
    str.lower, a Python call per row. That call is skipped where LIKE alone is exact: a
    needle whose lowered characters come, under lower(), from nothing but themselves (and
    an ASCII letter's capital) needs no call at all (CJK, digits, most symbols), and any
    other is first narrowed by LIKE on its longest run of such characters, so only rows
    holding that run pay for the call.
    """
    if text.isascii():
        return _any_like(columns, "{}", like_pattern(text), params)
    lowered = text.lower()
    run = _literal_run(lowered)
    if run == lowered:
        return _any_like(columns, "{}", like_pattern(lowered), params)
    folded = "chat_lower({}) LIKE ? ESCAPE '\\'"
    if run:
        folded = "{} LIKE ? ESCAPE '\\' AND " + folded  # evaluated first, cheap
    terms = []
    for column in columns:
        terms.append("(" + folded.format(column, column) + ")")
        params.extend([like_pattern(run), like_pattern(lowered)] if run
                      else [like_pattern(lowered)])
    return "(" + " OR ".join(terms) + ")"


def _any_like(columns: Iterable[str], target: str, pattern: str, params: list[Any]) -> str:
    terms = []
    for column in columns:
        terms.append(f"{target.format(column)} LIKE ? ESCAPE '\\'")
        params.append(pattern)
    return "(" + " OR ".join(terms) + ")"


@functools.cache
def _made_by_lower() -> frozenset[str]:
    """Characters str.lower() makes out of another character (an ASCII letter's capital
    aside), and the final sigma it picks by context: where a lowered needle holds one, a
    row may match without holding it, so LIKE alone can't decide. ~0.3 s, once
    (SQLiteStorage.open computes it off the event loop)."""
    made = {"\u03c2"}
    for point in range(sys.maxunicode + 1):
        char = chr(point)
        lowered = char.lower()
        if lowered != char and not (char.isascii() and len(lowered) == 1):
            made.update(lowered)
    return frozenset(made)


def _literal_run(lowered: str) -> str:
    """The longest stretch of `lowered` that LIKE matches exactly as lower() would."""
    made = _made_by_lower()
    best = current = ""
    for char in lowered:
        current = "" if char in made else current + char
        if len(current) > len(best):
            best = current
    return best


def _probe(path: str) -> None:
    sqlite3.connect(path).close()


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class Readers:
    """Read-only connections, one per worker thread, each query time-limited: SQLite calls
    the progress handler every PROGRESS_STEPS steps and stops the query once it returns
    true (past the deadline)."""

    def __init__(self, path: str, count: int, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max(1, count), thread_name_prefix="sqlite-read")
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    async def fetch(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._fetch, sql, params)

    def _fetch(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[Any]:
        local = self._local
        conn = getattr(local, "conn", None) or self._connect()
        local.deadline = time.monotonic() + self.timeout
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            local.deadline = math.inf

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                               check_same_thread=False)  # closed by close(), elsewhere
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only = ON")
        conn.create_function("chat_lower", 1, _lower, deterministic=True)
        local = self._local
        local.deadline = math.inf
        conn.set_progress_handler(lambda: time.monotonic() > local.deadline, PROGRESS_STEPS)
        local.conn = conn
        with self._lock:
            self._opened.append(conn)
        return conn

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.shutdown)
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()


def _check_step(path: str, version: int, manual: bool) -> None:
    """Refuse a schema this code can't run on, or a step `chatapi serve` must not apply."""
    if version > SCHEMA_VERSION:
        raise SchemaMismatch(
            f"SQLite database {path} has schema v{version}, newer than this ChatAPI "
            f"(v{SCHEMA_VERSION}): run a ChatAPI version that knows it")
    if version + 1 in MANUAL_MIGRATIONS and not manual:
        raise SchemaMismatch(
            f"SQLite database {path} is at schema v{version} and step v{version + 1} can't "
            "run while other processes use the file: stop them and run `chatapi migrate`")


def _update_sql(table: str, changes: Record, allowed: frozenset[str]) -> tuple[str, list[Any]]:
    check_changes(table, changes, allowed)
    assignments = ", ".join(f"{field} = ?" for field in changes)
    return assignments, [_encode(value, field) for field, value in changes.items()]


class SQLiteStorage(Storage):
    """SQLite through one aiosqlite connection; processes on one machine may share the file."""

    def __init__(self, path: str, read_connections: int = READ_CONNECTIONS,
                 read_timeout: float = READ_TIMEOUT_S) -> None:
        self.path = path
        self.read_connections = read_connections
        self.read_timeout = read_timeout
        self._db: aiosqlite.Connection | None = None
        self._readers: Readers | None = None
        self.migrated: list[str] = []

    @classmethod
    def from_url(cls, url: str, read_connections: int = READ_CONNECTIONS,
                 read_timeout: float = READ_TIMEOUT_S) -> SQLiteStorage:
        """`sqlite:///relative.db`, `sqlite:////absolute/path.db` or `sqlite:///:memory:`."""
        prefix = "sqlite:///"
        if not url.lower().startswith(prefix) or len(url) == len(prefix):
            raise ValueError(f"bad SQLite URL {url!r} (use sqlite:///file.db or sqlite:///:memory:)")
        return cls(url[len(prefix):], read_connections, read_timeout)

    # -- plumbing ----------------------------------------------------------------------------
    async def _fetch(self, sql: str, params: Sequence[Any] | dict[str, Any] = (),
                     read: bool = False) -> list[Any]:
        """Run one statement in one worker-thread hop; driver errors become storage errors.
        `read`: a list/search query, for the read connections."""
        db = self._db
        if db is None:
            raise StorageUnavailable("SQLite storage is closed")
        try:
            if read and self._readers is not None:
                return await self._readers.fetch(sql, params)
            return await db.execute_fetchall(sql, params)  # type: ignore[return-value]
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise QueryTimeout(f"query took over {self.read_timeout} s") from exc
            raise StorageUnavailable(f"SQLite: {exc}") from exc
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" in str(exc):
                raise RecordNotFound(str(exc)) from exc
            raise StorageError(str(exc)) from exc
        except UnicodeError as exc:  # a lone surrogate can't be stored as UTF-8
            raise StorageError(f"text is not valid UTF-8: {exc}") from exc
        except (sqlite3.Error, ValueError) as exc:  # ValueError: aiosqlite "Connection closed"
            raise StorageUnavailable(f"SQLite: {exc}") from exc

    async def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Record | None:
        rows = await self._fetch(sql, params)
        return _decode(rows[0]) if rows else None

    async def _many(self, sql: str, params: Sequence[Any] = (), read: bool = False
                    ) -> list[Record]:
        return [_decode(row) for row in await self._fetch(sql, params, read)]

    async def _scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = (),
                      read: bool = False) -> Any:
        rows = await self._fetch(sql, params, read)
        return rows[0][0] if rows else None

    async def _insert(self, table: str, values: dict[str, Any]) -> None:
        columns = ", ".join(values)
        marks = ", ".join("?" * len(values))
        await self._fetch(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(values.values()))

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self, *, migrate: bool = False) -> None:
        if self._db is not None:
            return
        try:
            # Probe first: when aiosqlite's own connect fails it leaves its worker thread to
            # finish after the caller has moved on, racing the event loop's shutdown.
            if self.path != ":memory:":
                await asyncio.to_thread(_probe, self.path)
            db = await aiosqlite.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise StorageUnavailable(f"SQLite: cannot open {self.path!r}: {exc}") from exc
        db.row_factory = sqlite3.Row
        self._db = db
        await asyncio.to_thread(_made_by_lower)
        try:
            await self._use_wal()
            for pragma in ("synchronous = NORMAL", "foreign_keys = ON", "cache_size = -32000",
                           "temp_store = MEMORY"):
                await self._fetch(f"PRAGMA {pragma}")
            await db.create_function("chat_lower", 1, _lower, deterministic=True)
            await self._migrate(migrate)
            if self.path != ":memory:" and self.read_connections > 0:
                self._readers = Readers(self.path, self.read_connections, self.read_timeout)
        except BaseException:
            await self.close()
            raise

    async def _use_wal(self) -> None:
        """Switch to WAL (persistent in the file). On a new file another process may hold a
        lock SQLite won't wait for here (busy_timeout doesn't apply), so retry briefly."""
        deadline = asyncio.get_running_loop().time() + BUSY_TIMEOUT_S
        while True:
            try:
                await self._fetch("PRAGMA journal_mode = WAL")
                return
            except StorageUnavailable as exc:
                if "locked" not in str(exc) or asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.02)

    async def _migrate(self, manual: bool) -> None:
        self.migrated = []
        while await self._migrate_step(manual):
            pass

    async def _migrate_step(self, manual: bool) -> bool:
        """Apply the next pending step in its own transaction; False once up to date.

        A crash mid-upgrade leaves the last complete version. The version is read under the
        write lock, so another process opening the same file at once (say `chatapi
        create-client`) waits, then finds the step done.
        """
        await self._fetch("BEGIN IMMEDIATE")
        try:
            version = await self._scalar("PRAGMA user_version")
            _check_step(self.path, version, manual)
            pending = version < SCHEMA_VERSION
            if pending:
                for statement in MIGRATIONS[version]:
                    await self._fetch(statement)
                await self._fetch(f"PRAGMA user_version = {version + 1}")
            await self._fetch("COMMIT")
            if pending:
                self.migrated.append(f"SQLite schema v{version} -> v{version + 1}")
        except BaseException:
            await self._fetch("ROLLBACK")
            raise
        return pending

    async def close(self) -> None:
        readers, self._readers = self._readers, None
        if readers is not None:
            await readers.close()
        db, self._db = self._db, None
        if db is None:
            return
        try:
            await db.close()
        except (sqlite3.Error, ValueError):
            pass  # already gone; nothing left to release

    async def check(self) -> None:
        await self._fetch("SELECT 1")

    # -- meta --------------------------------------------------------------------------------
    async def get_meta(self, key: str) -> Record | None:
        raw = await self._scalar("SELECT value FROM meta WHERE key = ?", (key,))
        return None if raw is None else json.loads(raw)

    async def swap_meta(self, key: str, value: Record, expected: Record | None) -> bool:
        if expected is None:
            rows = await self._fetch(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING "
                "RETURNING key", (key, _meta_text(value)))
        else:
            rows = await self._fetch(
                "UPDATE meta SET value = ? WHERE key = ? AND value = ? RETURNING key",
                (_meta_text(value), key, _meta_text(expected)))
        return bool(rows)

    # -- clients -----------------------------------------------------------------------------
    async def create_client(self, client: Record) -> Record:
        await self._insert("clients", _encode_record(client, CLIENT_FIELDS, CLIENT_DEFAULTS))
        return normalized(client, CLIENT_FIELDS, CLIENT_DEFAULTS)

    async def get_client(self, client_id: str) -> Record | None:
        return await self._one("SELECT * FROM clients WHERE id = ?", (client_id,))

    async def get_client_by_key_hash(self, api_key_hash: str) -> Record | None:
        return await self._one("SELECT * FROM clients WHERE api_key_hash = ?", (api_key_hash,))

    async def list_clients(self, skip: int, limit: int) -> Page:
        items = await self._many(
            "SELECT * FROM clients ORDER BY created_at, id LIMIT ? OFFSET ?", (limit, skip), True)
        return items, await self.count_clients()

    async def update_client(self, client_id: str, changes: Record) -> Record | None:
        if not changes:
            return await self.get_client(client_id)
        assignments, params = _update_sql("clients", changes, CLIENT_MUTABLE)
        return await self._one(
            f"UPDATE clients SET {assignments} WHERE id = ? RETURNING *", [*params, client_id])

    async def delete_client(self, client_id: str) -> bool:
        # Rooms (with their messages and participants) and notifications cascade.
        rows = await self._fetch("DELETE FROM clients WHERE id = ? RETURNING id", (client_id,))
        return bool(rows)

    async def count_clients(self) -> int:
        return await self._scalar("SELECT count(*) FROM clients")

    # -- rooms -------------------------------------------------------------------------------
    async def create_room(self, room: Record) -> Record:
        record = normalized(room, ROOM_FIELDS, ROOM_DEFAULTS)
        record.update(participant_count=0, message_count=0, last_seq=0, last_message_at=None)
        record["updated_at"] = record["updated_at"] or record["created_at"]
        await self._insert("rooms", {f: _encode(v, f) for f, v in record.items()})
        return record

    async def get_room(self, client_id: str, room_id: str) -> Record | None:
        return await self._one(
            "SELECT * FROM rooms WHERE id = ? AND client_id = ?", (room_id, client_id))

    async def list_rooms(self, client_id: str, query: RoomQuery) -> Page:
        order = ROOM_ORDER.get(query.sort)
        if order is None:
            raise ValueError(f"unknown room sort {query.sort!r}")
        where, params = ["client_id = ?"], [client_id]
        if query.is_active is not None:
            where.append("is_active = ?")
            params.append(int(query.is_active))
        if query.search:
            where.append(_search_clause(("name", "description"), query.search, params))
        if query.visible_to is not None:
            where.append("(is_private = 0 OR EXISTS (SELECT 1 FROM participants p "
                         "WHERE p.room_id = rooms.id AND p.user_id = ?))")
            params.append(query.visible_to)
        if query.ids is not None:
            where.append("id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(query.ids)))
        condition = " AND ".join(where)
        items = await self._many(
            f"SELECT * FROM rooms WHERE {condition} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, query.limit, query.skip], True)
        total = await self._scalar(f"SELECT count(*) FROM rooms WHERE {condition}", params,
                                   True)
        return items, total

    async def update_room(self, client_id: str, room_id: str, changes: Record) -> Record | None:
        changes = {"updated_at": now_ts(), **changes}
        assignments, params = _update_sql("rooms", changes, ROOM_MUTABLE)
        return await self._one(
            f"UPDATE rooms SET {assignments} WHERE id = ? AND client_id = ? RETURNING *",
            [*params, room_id, client_id])

    async def delete_room(self, client_id: str, room_id: str) -> bool:
        # Messages and participants cascade.
        rows = await self._fetch(
            "DELETE FROM rooms WHERE id = ? AND client_id = ? RETURNING id", (room_id, client_id))
        return bool(rows)

    # -- participants ------------------------------------------------------------------------
    async def add_participant(self, participant: Record) -> bool:
        values = _encode_record(participant, PARTICIPANT_FIELDS, PARTICIPANT_DEFAULTS)
        columns = ", ".join(values)
        marks = ", ".join("?" * len(values))
        rows = await self._fetch(
            f"INSERT INTO participants ({columns}) VALUES ({marks}) "
            "ON CONFLICT (room_id, user_id) DO NOTHING RETURNING 1", list(values.values()))
        return bool(rows)

    async def remove_participant(self, room_id: str, user_id: str) -> bool:
        rows = await self._fetch(
            "DELETE FROM participants WHERE room_id = ? AND user_id = ? RETURNING 1",
            (room_id, user_id))
        return bool(rows)

    async def get_participant(self, room_id: str, user_id: str) -> Record | None:
        return await self._one(
            "SELECT * FROM participants WHERE room_id = ? AND user_id = ?", (room_id, user_id))

    async def list_participants(self, room_id: str, skip: int, limit: int) -> Page:
        items = await self._many(
            "SELECT * FROM participants WHERE room_id = ? ORDER BY joined_at, user_id "
            "LIMIT ? OFFSET ?", (room_id, limit, skip), True)
        total = await self._scalar(
            "SELECT participant_count FROM rooms WHERE id = ?", (room_id,))
        return items, total or 0

    async def set_last_read_seq(self, room_id: str, user_id: str, seq: int) -> Record | None:
        return await self._one(
            "UPDATE participants SET last_read_seq = max(last_read_seq, ?) "
            "WHERE room_id = ? AND user_id = ? RETURNING *", (seq, room_id, user_id))

    # -- messages ----------------------------------------------------------------------------
    async def add_message(self, message: Record) -> tuple[Record, bool]:
        # One statement: seq = last_seq + 1 read and the row written together, the trigger
        # bumps the room's counters, and a repeated client_msg_id inserts nothing.
        values = _encode_record(message, MESSAGE_FIELDS, MESSAGE_DEFAULTS)
        rows = await self._fetch(_ADD_MESSAGE, values)
        if rows:
            record = normalized(message, MESSAGE_FIELDS, MESSAGE_DEFAULTS)
            record["seq"], record["client_id"] = rows[0]
            return record, True
        if message.get("client_msg_id") is not None:
            stored = await self._one(_FIND_BY_CLIENT_MSG_ID, (
                message["room_id"], message["sender_id"], message["client_msg_id"]))
            if stored is not None:
                return stored, False
        raise RecordNotFound(f"room {message.get('room_id')!r} does not exist")

    async def get_message(self, client_id: str, message_id: str) -> Record | None:
        return await self._one(
            "SELECT * FROM messages WHERE id = ? AND client_id = ?", (message_id, client_id))

    async def list_messages(self, room_id: str, query: MessageQuery) -> Page:
        where, params = ["room_id = ?"], [room_id]
        if not query.include_deleted:
            where.append("is_deleted = 0")
        filtered = False
        for column, op, value in (
            ("sender_id", "=", query.sender_id),
            ("message_type", "=", query.message_type),
            ("created_at", ">", query.created_after),
            ("created_at", "<", query.created_before),
        ):
            if value is not None:
                where.append(f"{column} {op} ?")
                params.append(value)
                filtered = True
        if query.search:
            where.append(_search_clause(("content",), query.search, params))
            filtered = True
        if query.after_seq is not None:
            where.append("seq > ?")
            params.append(query.after_seq)
        if query.before_seq is not None:
            where.append("seq < ?")
            params.append(query.before_seq)
        condition = " AND ".join(where)
        order = "ASC" if query.ascending else "DESC"
        items = await self._many(
            f"SELECT * FROM messages WHERE {condition} ORDER BY seq {order} LIMIT ? OFFSET ?",
            [*params, query.limit, query.skip], True)
        if filtered:
            total = await self._scalar(f"SELECT count(*) FROM messages WHERE {condition}",
                                       params, True)
        else:
            total = await self._range_total(room_id, query)
        return items, total

    async def _range_total(self, room_id: str, query: MessageQuery) -> int:
        """Messages in the query's seq range without counting rows (seqs are dense)."""
        low = 1 if query.after_seq is None else max(1, query.after_seq + 1)
        high = _NO_UPPER_BOUND if query.before_seq is None else query.before_seq - 1
        total = await self._scalar(_RANGE_TOTAL, {
            "room_id": room_id, "lo": low, "hi": high,
            "include_deleted": int(query.include_deleted)}, True)
        return total or 0

    async def update_message(self, message_id: str, changes: Record) -> Record | None:
        changes = {"updated_at": now_ts(), **changes}
        assignments, params = _update_sql("messages", changes, MESSAGE_MUTABLE)
        return await self._one(
            f"UPDATE messages SET {assignments} WHERE id = ? RETURNING *", [*params, message_id])

    async def set_message_deleted(
        self, message_id: str, deleted: bool, deleted_by: str | None, at: str
    ) -> Record | None:
        # The trigger moves the room's message_count; a no-op change leaves the row alone.
        updated = await self._one(
            "UPDATE messages SET is_deleted = ?, deleted_at = ?, deleted_by = ?, updated_at = ? "
            "WHERE id = ? AND is_deleted <> ? RETURNING *",
            (int(deleted), at if deleted else None, deleted_by if deleted else None, at,
             message_id, int(deleted)))
        if updated is not None:
            return updated
        return await self._one("SELECT * FROM messages WHERE id = ?", (message_id,))

    # -- notifications -----------------------------------------------------------------------
    async def add_notification(self, notification: Record) -> Record:
        await self._insert("notifications", _encode_record(
            notification, NOTIFICATION_FIELDS, NOTIFICATION_DEFAULTS))
        return normalized(notification, NOTIFICATION_FIELDS, NOTIFICATION_DEFAULTS)

    async def update_notification(self, notification_id: str, changes: Record) -> Record | None:
        if not changes:
            return await self._one(
                "SELECT * FROM notifications WHERE id = ?", (notification_id,))
        assignments, params = _update_sql("notifications", changes, NOTIFICATION_MUTABLE)
        return await self._one(
            f"UPDATE notifications SET {assignments} WHERE id = ? RETURNING *",
            [*params, notification_id])

    async def get_notification(self, client_id: str, notification_id: str) -> Record | None:
        return await self._one(
            "SELECT * FROM notifications WHERE id = ? AND client_id = ?",
            (notification_id, client_id))

    async def list_notifications(self, client_id: str, query: NotificationQuery) -> Page:
        where, params = ["client_id = ?"], [client_id]
        if query.room_id is not None:
            where.append("room_id = ?")
            params.append(query.room_id)
        if query.status is not None:
            where.append("status = ?")
            params.append(query.status)
        if query.user_id is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(notifications.user_ids) "
                         "WHERE value = ?)")
            params.append(query.user_id)
        condition = " AND ".join(where)
        items = await self._many(
            f"SELECT * FROM notifications WHERE {condition} "
            "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            [*params, query.limit, query.skip], True)
        total = await self._scalar(
            f"SELECT count(*) FROM notifications WHERE {condition}", params, True)
        return items, total

    # -- writes checked and made in one step (a connection pool answers in any order) ------
    async def edit_live_message(self, message_id: str, changes: Record) -> Record | None:
        changes = {"updated_at": now_ts(), **changes}
        assignments, params = _update_sql("messages", changes, MESSAGE_MUTABLE)
        return await self._one(
            f"UPDATE messages SET {assignments} WHERE id = ? AND is_deleted = 0 RETURNING *",
            [*params, message_id])
