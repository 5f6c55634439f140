"""marshmallow schemas for every REST body, query string and response (SPEC §3 limits).

Handlers load input through `load()`, render through the response schemas, and
`app.openapi` documents the very same classes, so validation and docs cannot drift.
Content length is left to `MessageService.check_content` (CONTENT_TOO_LONG with details).
"""

from __future__ import annotations

import json
import re
import uuid
from functools import lru_cache
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app import errors
from app.config import Settings
from app.timeutil import format_ts, parse_ts

MAX_SKIP = 1_000_000
MAX_SEQ = 2**62  # fits every backend's 64-bit integers
MAX_STORED_INT = 2**63 - 1  # BSON and SQLite integers are signed 64-bit
MAX_USER_ID_LENGTH = 128
MAX_USER_NAME_LENGTH = 200
MAX_TTL_SECONDS = 30 * 24 * 3600
MESSAGE_TYPE_RE = r"^[a-z][a-z0-9_]{0,31}$"
PRIORITIES = ("low", "normal", "high", "urgent")
NOTIFICATION_STATUSES = ("pending", "delivered", "undelivered")
ROOM_SORTS = ("name", "-name", "created_at", "-created_at")
MESSAGE_SORTS = ("created_at", "-created_at", "seq", "-seq")

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_EXTRA_DIGITS = re.compile(r"(\.\d{6})\d+")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def check_text(value: str) -> None:
    """Valid UTF-8 (no lone surrogates) and no control characters except newline and tab."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Must be valid UTF-8 text.") from None
    if _CONTROL.search(value):
        raise ValidationError("Control characters are not allowed (except \\n and \\t).")


class Text(fields.String):
    """A string checked for UTF-8 validity and control characters, with optional bounds."""

    def __init__(self, *, min_length: int | None = None, max_length: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.min_length = min_length
        self.max_length = max_length
        if min_length is not None or max_length is not None:
            self.validators.append(validate.Length(min=min_length, max=max_length))

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        check_text(text)
        return text


def check_user_id(value: Any) -> str:
    """The one user id rule (REST fields, token `sub`, socket identities): 1-128 printable
    characters without whitespace; NBSP, bidi overrides and lone surrogates are refused."""
    if not isinstance(value, str):
        raise ValidationError("Not a valid string.")
    if not 1 <= len(value) <= MAX_USER_ID_LENGTH:
        raise ValidationError(f"Length must be between 1 and {MAX_USER_ID_LENGTH}.")
    check_text(value)
    if not value.isprintable() or any(ch.isspace() for ch in value):
        raise ValidationError("Must be printable characters without spaces.")
    return value


def check_user_name(value: Any) -> str:
    """The one user name rule: text (see `check_text`) of at most 200 characters."""
    if not isinstance(value, str):
        raise ValidationError("Not a valid string.")
    if len(value) > MAX_USER_NAME_LENGTH:
        raise ValidationError(f"Longer than maximum length {MAX_USER_NAME_LENGTH}.")
    check_text(value)
    return value


class UserId(fields.String):
    """1-128 printable characters without whitespace (`check_user_id`)."""

    def __init__(self, **kwargs: Any) -> None:  # the validator documents the bounds
        super().__init__(validate=validate.Length(min=1, max=MAX_USER_ID_LENGTH), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return check_user_id(super()._deserialize(value, attr, data, **kwargs))


class UserName(fields.String):
    """At most 200 characters of text (`check_user_name`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=validate.Length(max=MAX_USER_NAME_LENGTH), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return check_user_name(super()._deserialize(value, attr, data, **kwargs))


class UUIDStr(fields.String):
    """A UUID, returned in canonical lowercase form."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return str(uuid.UUID(text))
        except ValueError:
            raise ValidationError("Not a valid UUID.") from None


class Timestamp(fields.String):
    """An RFC 3339 date-time, returned in the wire format (UTC, milliseconds, `Z`)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not _RFC3339.match(text):
            raise ValidationError("Not an RFC 3339 timestamp (e.g. 2024-01-01T12:00:00Z).")
        try:
            return format_ts(parse_ts(_EXTRA_DIGITS.sub(r"\1", text)))
        except (ValueError, OverflowError):
            raise ValidationError("Not a valid date and time.") from None


class StrictBoolean(fields.Boolean):
    """JSON `true`/`false` only."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class QueryBoolean(fields.Boolean):
    """The strings `true`/`false` only."""

    truthy = {"true"}
    falsy = {"false"}


class Meta(fields.Dict):
    """A JSON object bounded in size and depth (`max_meta_bytes`, `max_meta_depth`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=fields.String(), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        result = super()._deserialize(value, attr, data, **kwargs)
        limits: Settings = getattr(self.root, "limits", None) or Settings()
        check_nesting(result, limits.max_meta_depth)
        try:
            size = len(json.dumps(result, ensure_ascii=False, allow_nan=False).encode("utf-8"))
        except (UnicodeEncodeError, ValueError):
            raise ValidationError("Must be valid UTF-8 JSON without NaN or Infinity.") from None
        if size > limits.max_meta_bytes:
            raise ValidationError(f"Larger than {limits.max_meta_bytes} bytes as JSON.")
        return result


def check_nesting(value: Any, max_depth: int) -> None:
    """At most `max_depth` levels of objects and arrays, integers that fit storage.

    Iterative, and it stops at the first level too deep: hostile input nested thousands
    of levels must not reach a recursive walk (RecursionError) first."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                raise ValidationError(f"Nested deeper than {max_depth} levels.")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, int) and not isinstance(item, bool) \
                and not -MAX_STORED_INT - 1 <= item <= MAX_STORED_INT:
            raise ValidationError("Integers must fit in 64 bits.")


def _int(low: int, high: int, **kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=low, max=high), **kwargs)


def _qint(low: int, high: int, **kwargs: Any) -> fields.Integer:
    return fields.Integer(validate=validate.Range(min=low, max=high), **kwargs)


# -- loading -------------------------------------------------------------------------------

def parse_json(text: str | bytes, limits: Settings, what: str = "Request body") -> Any:
    """JSON from a client: INVALID_JSON (400) when it is not UTF-8 JSON or too deep for the
    parser itself; VALIDATION_ERROR (422) when nested deeper than `max_json_depth` or
    holding an integer beyond 64 bits."""
    try:
        data = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text,
                          parse_constant=_no_constants)
        check_nesting(data, limits.max_json_depth)
    except RecursionError:
        raise errors.InvalidJson(f"{what} is nested too deeply to parse") from None
    except ValidationError as exc:
        message = str(exc.messages[0])
        raise errors.ValidationFailed(f"{what}: {message}",
                                      errors=[{"field": "body", "message": message}]) from None
    except ValueError:
        raise errors.InvalidJson(f"{what} is not valid JSON (UTF-8)") from None
    return data


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


@lru_cache(maxsize=256)
def _instance(schema: type[Schema], limits: Settings) -> Schema:
    instance = schema()
    instance.limits = limits  # type: ignore[attr-defined]
    return instance


def load(schema: type[Schema], data: Any, limits: Settings) -> dict[str, Any]:
    """Validate `data`; a failure is a 422 VALIDATION_ERROR with per-field `errors`."""
    try:
        return _instance(schema, limits).load(data)
    except ValidationError as exc:
        raise errors.ValidationFailed(errors=flatten(exc.messages)) from None


def flatten(messages: Any, prefix: str = "") -> list[dict[str, str]]:
    """marshmallow's nested message dict as `[{field, message}]`, paths joined with dots."""
    if isinstance(messages, dict):
        out: list[dict[str, str]] = []
        for key, value in messages.items():
            name = "body" if key == "_schema" else str(key)
            out.extend(flatten(value, f"{prefix}.{name}" if prefix else name))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [{"field": prefix or "body", "message": m} for m in messages]
    if isinstance(messages, list):
        return [item for m in messages for item in flatten(m, prefix)]
    return [{"field": prefix or "body", "message": str(messages)}]


# -- path and query ------------------------------------------------------------------------

class PathIds(Schema):
    """Every id a path can carry; each is a UUID."""

    room_id = UUIDStr()
    message_id = UUIDStr()
    client_id = UUIDStr()
    notification_id = UUIDStr()


class EmptyQuery(Schema):
    pass


class PageQuery(Schema):
    skip = _qint(0, MAX_SKIP, load_default=0, metadata={"description": "Items to skip"})
    limit = _qint(1, 100, load_default=50, metadata={"description": "Page size, 1-100"})


class RoomListQuery(PageQuery):
    search = Text(max_length=200, metadata={"description": "Substring of name or description"})
    is_active = QueryBoolean()
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(ROOM_SORTS))


class MessageListQuery(PageQuery):
    sort = fields.String(
        validate=validate.OneOf(MESSAGE_SORTS),
        metadata={"description": "Default -created_at (newest first); when after_seq is given "
                                 "and sort is not, oldest first so catch-up pages are contiguous"})
    sender_id = UserId()
    message_type = fields.String(validate=validate.Regexp(MESSAGE_TYPE_RE))
    created_after = Timestamp()
    created_before = Timestamp()
    search = Text(max_length=200, metadata={"description": "Substring of content"})
    include_deleted = QueryBoolean(load_default=False)
    after_seq = _qint(0, MAX_SEQ, metadata={"description": "Only messages with seq > after_seq"})
    before_seq = _qint(0, MAX_SEQ, metadata={"description": "Only messages with seq < before_seq"})


class NotificationListQuery(PageQuery):
    room_id = UUIDStr()
    user_id = UserId()
    status = fields.String(validate=validate.OneOf(NOTIFICATION_STATUSES))


class DeleteMessageQuery(Schema):
    user_id = UserId(metadata={"description": "With a client key: the user who deletes"})


# -- request bodies ------------------------------------------------------------------------

class ClientCreate(Schema):
    name = Text(required=True, min_length=1, max_length=200)
    description = Text(max_length=2000, allow_none=True)


class TokenCreate(Schema):
    user_id = UserId(required=True)
    user_name = UserName(allow_none=True)
    ttl_seconds = _int(1, MAX_TTL_SECONDS, load_default=86400)
    rooms = fields.List(UUIDStr(), validate=validate.Length(max=1000), allow_none=True)


class RoomCreate(Schema):
    name = Text(required=True, min_length=1, max_length=200)
    description = Text(max_length=2000, allow_none=True)
    is_private = StrictBoolean(load_default=False)
    meta = Meta()


class RoomUpdate(Schema):
    name = Text(min_length=1, max_length=200)
    description = Text(max_length=2000, allow_none=True)
    is_private = StrictBoolean()
    meta = Meta()


class JoinRoom(Schema):
    user_id = UserId(metadata={"description": "Required with a client key"})
    user_name = UserName(allow_none=True)
    meta = Meta()


class LeaveRoom(Schema):
    user_id = UserId(metadata={"description": "Required with a client key"})


class MessageCreate(Schema):
    sender_id = UserId(metadata={"description": "Required with a client key"})
    sender_name = Text(max_length=200, allow_none=True)
    content = Text(required=True, min_length=1)
    message_type = fields.String(load_default="text", validate=validate.Regexp(MESSAGE_TYPE_RE))
    meta = Meta()
    client_msg_id = UserId(allow_none=True, metadata={"description": "Idempotency key"})


class MessageUpdate(Schema):
    content = Text(min_length=1)
    meta = Meta()
    edit_reason = Text(max_length=500, allow_none=True)

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if "content" not in data and "meta" not in data:
            raise ValidationError("Give content or meta.", field_name="content")


class NotificationCreate(Schema):
    title = Text(required=True, min_length=1, max_length=200)
    content = Text(required=True, min_length=1, max_length=10_000)
    room_id = UUIDStr(allow_none=True)
    user_ids = fields.List(UserId(), validate=validate.Length(min=1, max=1000), allow_none=True)
    action_url = Text(max_length=2048, allow_none=True)
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    icon = Text(max_length=2048, allow_none=True)
    meta = Meta()


# -- responses -----------------------------------------------------------------------------

class ClientOut(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    is_active = fields.Boolean()
    created_at = fields.String()


class ClientSecretsOut(ClientOut):
    api_key = fields.String(metadata={"description": "Shown only in this response"})
    token_secret = fields.String(metadata={"description": "Shown only in this response"})


class TokenOut(Schema):
    token = fields.String()
    user_id = fields.String()
    expires_at = fields.String()


class RoomOut(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    client_id = fields.String()
    is_active = fields.Boolean()
    is_private = fields.Boolean()
    meta = fields.Dict()
    created_at = fields.String()
    updated_at = fields.String()
    participant_count = fields.Integer()
    message_count = fields.Integer()
    last_seq = fields.Integer()
    last_message_at = fields.String(allow_none=True)


class ParticipantOut(Schema):
    user_id = fields.String()
    user_name = fields.String(allow_none=True)
    joined_at = fields.String()
    meta = fields.Dict()
    last_read_seq = fields.Integer()


class OnlineOut(Schema):
    online_users = fields.List(fields.String())
    total_online = fields.Integer()


class MessageOut(Schema):
    id = fields.String()
    room_id = fields.String()
    client_id = fields.String()
    seq = fields.Integer()
    sender_id = fields.String()
    sender_name = fields.String(allow_none=True)
    content = fields.String()
    message_type = fields.String()
    meta = fields.Dict()
    client_msg_id = fields.String(allow_none=True)
    created_at = fields.String()
    updated_at = fields.String(allow_none=True)
    edited_at = fields.String(allow_none=True)
    edit_reason = fields.String(allow_none=True)
    is_deleted = fields.Boolean()
    deleted_at = fields.String(allow_none=True)
    deleted_by = fields.String(allow_none=True)


class NotificationOut(Schema):
    id = fields.String()
    title = fields.String()
    content = fields.String()
    room_id = fields.String(allow_none=True)
    user_ids = fields.List(fields.String())
    action_url = fields.String(allow_none=True)
    priority = fields.String()
    icon = fields.String(allow_none=True)
    meta = fields.Dict()
    status = fields.String()
    recipients_online = fields.Integer()
    delivered_connections = fields.Integer()
    created_at = fields.String()


class StatusOut(Schema):
    status = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String())


class Pagination(Schema):
    skip = fields.Integer()
    limit = fields.Integer()
    total = fields.Integer()
    has_more = fields.Boolean()


class FieldError(Schema):
    field = fields.String()
    message = fields.String()


class ErrorOut(Schema):
    status = fields.String(metadata={"example": "error"})
    detail = fields.String()
    error_code = fields.String()
    status_code = fields.Integer()
    timestamp = fields.String()
    errors = fields.List(fields.Nested(FieldError))
    details = fields.Dict()


class ActionOut(Schema):
    message = fields.String()
    status = fields.String(metadata={"example": "success"})
    timestamp = fields.String()


@lru_cache(maxsize=64)
def _dumper(schema: type[Schema], many: bool) -> Schema:
    return schema(many=many)


def dump(schema: type[Schema], data: Any, many: bool = False) -> Any:
    """Render records through a response schema (only its fields leave the server)."""
    return _dumper(schema, many).dump(data)
