"""Checks for client → server event data (raw WebSocket and Socket.IO alike), SPEC §3 limits."""

from __future__ import annotations

import re
from typing import Any

from app import errors, schemas
from app.config import Settings

_USER_ID = re.compile(r"^[\x21-\x7e\u00a0-\U0010ffff]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def invalid(field: str, message: str) -> errors.ApiError:
    return errors.ValidationFailed(f"{field}: {message}",
                                   errors=[{"field": field, "message": message}])


def check_text(field: str, value: Any, max_length: int, required: bool = True) -> str | None:
    """A string without control characters (except \\n and \\t), at most `max_length` long."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise invalid(field, "Not a valid string.")
    if _CONTROL.search(value):
        raise invalid(field, "Control characters are not allowed.")
    if _SURROGATE.search(value):
        raise invalid(field, "Not valid UTF-8.")
    if len(value) > max_length:
        raise invalid(field, f"Longer than maximum length {max_length}.")
    return value


def user_id(value: Any) -> str:
    if not isinstance(value, str) or not _USER_ID.match(value):
        raise invalid("user_id", "1-128 printable characters without spaces.")
    return value


def user_name(value: Any) -> str | None:
    return check_text("user_name", value, 200, required=False)


def room_ref(data: dict[str, Any]) -> str:
    value = data.get("room_id")
    if not isinstance(value, str) or not value:
        raise invalid("room_id", "Missing data for required field.")
    return value


def last_seq(value: Any) -> int | None:
    """`last_seq` from a query string or JSON: a non-negative integer, or None."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    raise invalid("last_seq", "Not a valid non-negative integer.")


def is_typing(data: dict[str, Any]) -> bool:
    value = data.get("is_typing", True)
    if not isinstance(value, bool):
        raise invalid("is_typing", "Not a valid boolean.")
    return value


def read_seq(data: dict[str, Any]) -> int:
    value = data.get("seq")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise invalid("seq", "Not a valid non-negative integer.")
    return value


def message(data: dict[str, Any], settings: Settings, user_id: str) -> dict[str, Any]:
    """`{content, message_type?, meta?, client_msg_id?}`, checked by the REST schema itself."""
    body = {k: v for k, v in data.items() if k != "room_id"}
    fields = schemas.load(schemas.MessageCreate, body, settings)
    if fields.get("sender_id", user_id) != user_id:
        raise errors.InsufficientPermissions("sender_id must be the connected user")
    return fields
