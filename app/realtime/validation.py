"""Checks for client → server event data (raw WebSocket and Socket.IO alike), SPEC §3 limits."""

from __future__ import annotations

import json
import re
from typing import Any

from engineio import json as engineio_json
from marshmallow import ValidationError

from app import errors, schemas
from app.config import Settings


def invalid(field: str, message: str) -> errors.ApiError:
    return errors.ValidationFailed(f"{field}: {message}",
                                   errors=[{"field": field, "message": message}])


def user_id(value: Any) -> str:
    """The REST user id rule (`schemas.check_user_id`), as an ApiError."""
    try:
        return schemas.check_user_id(value)
    except ValidationError as exc:
        raise invalid("user_id", _message(exc)) from None


def user_name(value: Any) -> str | None:
    """The REST user name rule (`schemas.check_user_name`); None stays None."""
    if value is None:
        return None
    try:
        return schemas.check_user_name(value)
    except ValidationError as exc:
        raise invalid("user_name", _message(exc)) from None


def _message(exc: ValidationError) -> str:
    messages = exc.messages
    return messages[0] if isinstance(messages, list) and messages else str(messages)


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


class TooDeep(str):
    """What a Socket.IO payload too deep to parse becomes: not an object, so the event's
    handler answers with a VALIDATION_ERROR ack (and a CONNECT with it has no token)."""


_EVENT_NAME = re.compile(r'\[\s*("(?:[^"\\]|\\.){0,200}")\s*,')


class PacketJson:
    """engine.io's JSON (integers of at most 100 digits) for Socket.IO packets, except that
    input nested too deep for the parser keeps its event name and gets an error ack instead
    of a RecursionError and no answer."""

    dumps = staticmethod(engineio_json.dumps)

    @staticmethod
    def loads(text: str, **kwargs: Any) -> Any:
        try:
            return engineio_json.loads(text, **kwargs)
        except RecursionError:
            marker = TooDeep("JSON nested too deeply")
            name = _EVENT_NAME.match(text)
            return [json.loads(name.group(1)), marker] if name else marker
