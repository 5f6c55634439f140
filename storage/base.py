"""The storage interface every backend implements, and the errors it speaks.

Records are plain dicts whose keys are the API's field names (SPEC §3). Timestamps are
wire-format strings (`app.timeutil`), ids are UUID strings, `meta` is a JSON object.
Backends never let driver exceptions escape: a lost connection is `StorageUnavailable`.

Shapes:
- client: id, name, description, api_key_hash, token_secret, is_active, created_at
- room: id, client_id, name, description, is_active, is_private, meta, created_at,
  updated_at, participant_count, message_count, last_seq, last_message_at
- participant: room_id, user_id, user_name, joined_at, meta, last_read_seq
- message: id, room_id, client_id, seq, sender_id, sender_name, content, message_type,
  meta, client_msg_id, created_at, updated_at, edited_at, edit_reason, is_deleted,
  deleted_at, deleted_by
- notification: id, client_id, title, content, room_id, user_ids, action_url, priority,
  icon, meta, status, recipients_online, delivered_connections, created_at

Counters kept on the room: `participant_count` (participants now), `message_count`
(messages not deleted), `last_seq` (highest seq ever assigned; never reused).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
Page = tuple[list[Record], int]  # (items, total matching)


class StorageError(Exception):
    """Base of every error a backend raises."""


class StorageUnavailable(StorageError):
    """The backend cannot be reached (connection refused, timed out, closed)."""


class QueryTimeout(StorageUnavailable):
    """A read ran past the backend's time limit and was stopped (answered as a 503)."""


class SchemaMismatch(StorageError):
    """The database's schema can't be used as it is: it is newer than this code, or an
    upgrade step is unsafe while other nodes run (`chatapi migrate` applies it). One line."""


class RecordNotFound(StorageError):
    """A write names a parent that does not exist (e.g. add_message to an unknown room)."""


@dataclass(frozen=True)
class MessageQuery:
    """History filters. `ascending` orders by seq (= commit order) from oldest."""

    skip: int = 0
    limit: int = 50
    ascending: bool = False
    sender_id: str | None = None
    message_type: str | None = None
    created_after: str | None = None
    created_before: str | None = None
    search: str | None = None
    include_deleted: bool = False
    after_seq: int | None = None
    before_seq: int | None = None


@dataclass(frozen=True)
class RoomQuery:
    """Room list filters. `visible_to` limits to public rooms plus private rooms that user is in;
    `ids` (when not None) to those room ids.

    `sort` is one of `name`, `-name`, `created_at`, `-created_at`.
    """

    skip: int = 0
    limit: int = 50
    search: str | None = None
    is_active: bool | None = None
    sort: str = "-created_at"
    visible_to: str | None = None
    ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class NotificationQuery:
    skip: int = 0
    limit: int = 50
    room_id: str | None = None
    user_id: str | None = None
    status: str | None = None


class Storage(ABC):
    """A chat store. One instance is shared by the whole process; methods are coroutine-safe."""

    migrated: list[str]  # what the last open() changed in the schema, one line each

    # -- lifecycle -------------------------------------------------------------------------
    @abstractmethod
    async def open(self, *, migrate: bool = False) -> None:
        """Connect, create or upgrade the schema and indexes. Raises StorageUnavailable.

        Upgrade steps that are safe while other nodes run are applied always; the others
        only with `migrate` (else SchemaMismatch naming what and `chatapi migrate`). A
        schema newer than this code is SchemaMismatch either way. What was changed is
        left in `self.migrated` (one line each)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections. Safe to call twice."""

    @abstractmethod
    async def check(self) -> None:
        """Cheap round trip for `/readyz`; raises StorageUnavailable when unreachable."""

    # -- meta: records of the deployment itself (first-start claim) -------------------------
    @abstractmethod
    async def get_meta(self, key: str) -> Record | None: ...

    @abstractmethod
    async def swap_meta(self, key: str, value: Record, expected: Record | None) -> bool:
        """Compare-and-set: store `value` under `key` if what is stored equals `expected`
        (None: nothing stored). Atomic across processes and nodes: of concurrent callers
        expecting the same value, exactly one gets True."""

    # -- clients (tenants) ---------------------------------------------------------------
    @abstractmethod
    async def create_client(self, client: Record) -> Record: ...

    @abstractmethod
    async def get_client(self, client_id: str) -> Record | None: ...

    @abstractmethod
    async def get_client_by_key_hash(self, api_key_hash: str) -> Record | None: ...

    @abstractmethod
    async def list_clients(self, skip: int, limit: int) -> Page: ...

    @abstractmethod
    async def update_client(self, client_id: str, changes: Record) -> Record | None:
        """Apply `changes` (e.g. a new api_key_hash or token_secret); None if unknown."""

    @abstractmethod
    async def delete_client(self, client_id: str) -> bool:
        """Delete the client and everything of its tenant. False if unknown."""

    @abstractmethod
    async def count_clients(self) -> int: ...

    # -- rooms -----------------------------------------------------------------------------
    @abstractmethod
    async def create_room(self, room: Record) -> Record:
        """Store a room; counters are initialised by the backend."""

    @abstractmethod
    async def get_room(self, client_id: str, room_id: str) -> Record | None:
        """The room if it belongs to `client_id`, else None (tenant isolation)."""

    @abstractmethod
    async def list_rooms(self, client_id: str, query: RoomQuery) -> Page:
        """`search` matches name or description, case-insensitive substring, taken literally."""

    @abstractmethod
    async def update_room(self, client_id: str, room_id: str, changes: Record) -> Record | None: ...

    @abstractmethod
    async def delete_room(self, client_id: str, room_id: str) -> bool:
        """Delete the room with its messages and participants. False if unknown."""

    # -- participants ----------------------------------------------------------------------
    @abstractmethod
    async def add_participant(self, participant: Record) -> bool:
        """Add; False (and nothing changed) if the user is already in the room."""

    @abstractmethod
    async def remove_participant(self, room_id: str, user_id: str) -> bool:
        """Remove; False if the user was not in the room."""

    @abstractmethod
    async def get_participant(self, room_id: str, user_id: str) -> Record | None: ...

    @abstractmethod
    async def list_participants(self, room_id: str, skip: int, limit: int) -> Page:
        """Ordered by joined_at, then user_id."""

    @abstractmethod
    async def set_last_read_seq(self, room_id: str, user_id: str, seq: int) -> Record | None:
        """Raise the participant's last_read_seq to `seq` (never lowers it); None if absent."""

    # -- messages --------------------------------------------------------------------------
    @abstractmethod
    async def add_message(self, message: Record) -> tuple[Record, bool]:
        """Store a message, assigning the room's next `seq` atomically.

        `message` has every field but `seq`. If it carries a `client_msg_id` already stored
        for the same room and sender, nothing is written and `(stored, False)` is returned;
        otherwise `(stored, True)`. Updates the room's last_seq, message_count and
        last_message_at in the same atomic step.
        """

    @abstractmethod
    async def get_message(self, client_id: str, message_id: str) -> Record | None: ...

    @abstractmethod
    async def list_messages(self, room_id: str, query: MessageQuery) -> Page:
        """Messages by seq; `search` is a case-insensitive literal substring of content."""

    @abstractmethod
    async def update_message(self, message_id: str, changes: Record) -> Record | None:
        """Change content/meta/edit fields (not deletion state). None if unknown."""

    @abstractmethod
    async def set_message_deleted(
        self, message_id: str, deleted: bool, deleted_by: str | None, at: str
    ) -> Record | None:
        """Soft-delete or restore, keeping the room's message_count right. None if unknown."""

    # -- notifications ---------------------------------------------------------------------
    @abstractmethod
    async def add_notification(self, notification: Record) -> Record: ...

    @abstractmethod
    async def update_notification(self, notification_id: str, changes: Record) -> Record | None: ...

    @abstractmethod
    async def get_notification(self, client_id: str, notification_id: str) -> Record | None: ...

    @abstractmethod
    async def list_notifications(self, client_id: str, query: NotificationQuery) -> Page:
        """Newest first. `user_id` matches notifications addressed to that user."""

    # -- writes checked and made in one step (a connection pool answers in any order) ------
    @abstractmethod
    async def edit_live_message(self, message_id: str, changes: Record) -> Record | None:
        """`update_message` only if the message is not deleted, checked and written in one
        atomic step (an edit must not land on a message deleted meanwhile). None if unknown
        or deleted."""
