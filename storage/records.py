"""Record shapes shared by the backends: field lists, defaults, and what updates may change."""

from __future__ import annotations

from collections.abc import Sequence

from storage.base import Record, StorageError

CLIENT_FIELDS = (
    "id", "name", "description", "api_key_hash", "token_secret", "is_active", "created_at")
ROOM_FIELDS = (
    "id", "client_id", "name", "description", "is_active", "is_private", "meta", "created_at",
    "updated_at", "participant_count", "message_count", "last_seq", "last_message_at")
PARTICIPANT_FIELDS = ("room_id", "user_id", "user_name", "joined_at", "meta", "last_read_seq")
MESSAGE_FIELDS = (
    "id", "room_id", "client_id", "seq", "sender_id", "sender_name", "content", "message_type",
    "meta", "client_msg_id", "created_at", "updated_at", "edited_at", "edit_reason",
    "is_deleted", "deleted_at", "deleted_by")
NOTIFICATION_FIELDS = (
    "id", "client_id", "title", "content", "room_id", "user_ids", "action_url", "priority",
    "icon", "meta", "status", "recipients_online", "delivered_connections", "created_at")

# Values used when a record leaves a field out (or passes None).
CLIENT_DEFAULTS: Record = {"is_active": True}
ROOM_DEFAULTS: Record = {
    "is_active": True, "is_private": False, "meta": {}, "participant_count": 0,
    "message_count": 0, "last_seq": 0}
PARTICIPANT_DEFAULTS: Record = {"meta": {}, "last_read_seq": 0}
MESSAGE_DEFAULTS: Record = {"message_type": "text", "meta": {}, "is_deleted": False}
NOTIFICATION_DEFAULTS: Record = {"meta": {}, "recipients_online": 0, "delivered_connections": 0}

# Fields each update may touch (ids, ownership, counters and deletion state are not).
CLIENT_MUTABLE = frozenset({"name", "description", "api_key_hash", "token_secret", "is_active"})
ROOM_MUTABLE = frozenset(
    {"name", "description", "is_active", "is_private", "meta", "updated_at"})
MESSAGE_MUTABLE = frozenset(
    {"sender_name", "content", "message_type", "meta", "updated_at", "edited_at", "edit_reason"})
NOTIFICATION_MUTABLE = frozenset(set(NOTIFICATION_FIELDS) - {"id", "client_id", "created_at"})

ROOM_SORTS = ("name", "-name", "created_at", "-created_at")


def normalized(record: Record, fields: Sequence[str], defaults: Record) -> Record:
    """`record` with exactly `fields`, defaults filled in where missing or None."""
    out = {}
    for field in fields:
        value = record.get(field)
        out[field] = defaults.get(field) if value is None else value
    return out


def check_changes(kind: str, changes: Record, allowed: frozenset[str]) -> None:
    """Refuse an update that names a field it may not change."""
    unknown = set(changes) - allowed
    if unknown:
        raise StorageError(f"cannot change {', '.join(sorted(unknown))} of a {kind}")
