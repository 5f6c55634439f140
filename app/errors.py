"""Domain errors: one class carries the status, the `error_code` of SPEC §3 and the details.

Services raise these; the REST middleware renders them as the error envelope and the
WebSocket layers map them to `error` events or close codes.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status: int = 400
    code: str = "BAD_REQUEST"
    default_detail: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.errors = errors
        self.details = details
        self.headers = headers or {}
        super().__init__(self.detail)


def _error(name: str, status: int, code: str, detail: str) -> type[ApiError]:
    return type(name, (ApiError,), {"status": status, "code": code, "default_detail": detail})


InvalidCredentials = _error("InvalidCredentials", 401, "INVALID_CREDENTIALS", "Invalid credentials")
TokenExpired = _error("TokenExpired", 401, "TOKEN_EXPIRED", "Token has expired")
InsufficientPermissions = _error(
    "InsufficientPermissions", 403, "INSUFFICIENT_PERMISSIONS", "Insufficient permissions")
RoomAccessDenied = _error("RoomAccessDenied", 403, "ROOM_ACCESS_DENIED", "Room access denied")
UnauthorizedEdit = _error(
    "UnauthorizedEdit", 403, "UNAUTHORIZED_EDIT", "You can only change your own messages")
RoomNotFound = _error("RoomNotFound", 404, "ROOM_NOT_FOUND", "Room not found")
MessageNotFound = _error("MessageNotFound", 404, "MESSAGE_NOT_FOUND", "Message not found")
NotificationNotFound = _error(
    "NotificationNotFound", 404, "NOTIFICATION_NOT_FOUND", "Notification not found")
ClientNotFound = _error("ClientNotFound", 404, "CLIENT_NOT_FOUND", "Client not found")
ResourceNotFound = _error("ResourceNotFound", 404, "RESOURCE_NOT_FOUND", "Resource not found")
MethodNotAllowed = _error("MethodNotAllowed", 405, "METHOD_NOT_ALLOWED", "Method not allowed")
AlreadyInRoom = _error("AlreadyInRoom", 409, "ALREADY_IN_ROOM", "User is already in the room")
NotInRoom = _error("NotInRoom", 409, "NOT_IN_ROOM", "User is not in the room")
RoomInactive = _error("RoomInactive", 409, "ROOM_INACTIVE", "Room is deactivated")
UnknownType = _error("UnknownType", 400, "UNKNOWN_TYPE", "Unknown event type")
InvalidJson = _error("InvalidJson", 400, "INVALID_JSON", "Request body must be a JSON object")
PayloadTooLarge = _error("PayloadTooLarge", 413, "PAYLOAD_TOO_LARGE", "Request body is too large")
UnsupportedMediaType = _error(
    "UnsupportedMediaType", 415, "UNSUPPORTED_MEDIA_TYPE", "Body must be application/json")
ValidationFailed = _error("ValidationFailed", 422, "VALIDATION_ERROR", "Validation failed")
ContentTooLong = _error("ContentTooLong", 422, "CONTENT_TOO_LONG", "Content is too long")
RateLimitExceeded = _error("RateLimitExceeded", 429, "RATE_LIMIT_EXCEEDED", "Rate limit exceeded")
InternalError = _error("InternalError", 500, "INTERNAL_ERROR", "Internal server error")
ServiceUnavailable = _error(
    "ServiceUnavailable", 503, "SERVICE_UNAVAILABLE", "Service temporarily unavailable")
