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
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= schemas.MAX_SEQ:
        return value
    raise invalid("last_seq", "Not a valid non-negative integer.")


def is_typing(data: dict[str, Any]) -> bool:
    value = data.get("is_typing", True)
    if not isinstance(value, bool):
        raise invalid("is_typing", "Not a valid boolean.")
    return value


def read_seq(data: dict[str, Any]) -> int:
    value = data.get("seq")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < schemas.MAX_SEQ:
        raise invalid("seq", "Not a valid non-negative integer.")
    return value


def message(data: dict[str, Any], settings: Settings, user_id: str) -> dict[str, Any]:
    """`{content, message_type?, meta?, client_msg_id?}`, checked by the REST schema itself."""
    body = {k: v for k, v in data.items() if k != "room_id"}
    fields = schemas.load(schemas.MessageCreate, body, settings)
    if fields.get("sender_id", user_id) != user_id:
        raise errors.InsufficientPermissions("sender_id must be the connected user")
    return fields


class Unreadable(str):
    """What a Socket.IO payload that is valid JSON but cannot be read becomes (nested too
    deep for the parser, an integer of over 100 digits): not an object, so the event's
    handler answers with a VALIDATION_ERROR ack (and a CONNECT with it has no token)."""


_EVENT_NAME = re.compile(r'\[\s*("(?:[^"\\]|\\.){0,200}")\s*,')
_TOO_LARGE = "Integer is too large"  # engine.io's JSON refuses integers of over 100 digits


class PacketJson:
    """engine.io's JSON for Socket.IO packets, except that a payload it cannot read although
    it is JSON keeps its event name and gets an error ack, instead of a RecursionError or a
    closed connection and no answer."""

    dumps = staticmethod(engineio_json.dumps)

    @staticmethod
    def loads(text: str, **kwargs: Any) -> Any:
        try:
            return engineio_json.loads(text, **kwargs)
        except RecursionError:
            return _unreadable(text, "JSON nested too deeply")
        except ValueError as exc:
            if str(exc) != _TOO_LARGE:
                raise
            return _unreadable(text, "Integer too large")


def _unreadable(text: str, why: str) -> Any:
    marker = Unreadable(why)
    name = _EVENT_NAME.match(text)
    return [json.loads(name.group(1)), marker] if name else marker
