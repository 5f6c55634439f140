"""Checks for client → server event data (raw WebSocket and Socket.IO alike), SPEC §3 limits."""

from __future__ import annotations

import json
import re
from typing import Any

from app import errors
from app.config import Settings

_MESSAGE_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_USER_ID = re.compile(r"^[\x21-\x7e\u00a0-\U0010ffff]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_CLIENT_MSG_ID = 128
_MESSAGE_FIELDS = {"content", "message_type", "meta", "client_msg_id", "room_id"}


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
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
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


def message(data: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """`{content, message_type?, meta?, client_msg_id?}` → fields for MessageService.send."""
    unknown = sorted(set(data) - _MESSAGE_FIELDS)
    if unknown:
        raise invalid(unknown[0], "Unknown field.")
    content = data.get("content")
    if not isinstance(content, str) or not content.strip():
        raise invalid("content", "Missing data for required field.")
    check_text("content", content, max(len(content), 1))
    fields: dict[str, Any] = {"content": content}
    kind = data.get("message_type", "text")
    if not isinstance(kind, str) or not _MESSAGE_TYPE.match(kind):
        raise invalid("message_type", "Must match ^[a-z][a-z0-9_]{0,31}$.")
    fields["message_type"] = kind
    fields["meta"] = meta(data.get("meta"), settings)
    fields["client_msg_id"] = check_text(
        "client_msg_id", data.get("client_msg_id"), _MAX_CLIENT_MSG_ID, required=False)
    return fields


def meta(value: Any, settings: Settings) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid("meta", "Not a valid mapping type.")
    if _depth(value) > settings.max_meta_depth:
        raise invalid("meta", f"Deeper than {settings.max_meta_depth} levels.")
    if len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")) > (
            settings.max_meta_bytes):
        raise invalid("meta", f"Larger than {settings.max_meta_bytes} bytes as JSON.")
    return value


def _depth(value: Any, level: int = 1) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level - 1
