"""Who is connecting and whether they may enter a room, with the seed's close codes.

Shared by the raw `/ws/{room_id}` adapter and the Socket.IO handlers, so both refuse the same
things for the same reasons.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass, replace
from typing import Any

from app import auth, errors
from app.auth import Principal
from app.config import Settings
from app.ratelimit import RateLimiter, charge_all, principal_charges
from app.realtime import validation
from app.services import Services
from storage import Storage

UNAUTHORIZED = 4001
ROOM_NOT_FOUND = 4002
ACCESS_DENIED = 4003
RATE_LIMITED = 4004

REASONS = {
    UNAUTHORIZED: "Unauthorized",
    ROOM_NOT_FOUND: "Room not found",
    ACCESS_DENIED: "Room access denied",
    RATE_LIMITED: "Rate limit exceeded",
}


class Refusal(Exception):
    """The connection (or join) is refused with a close code and a short reason."""

    def __init__(self, code: int, reason: str | None = None) -> None:
        self.code = code
        self.reason = reason or REASONS.get(code, "Refused")
        super().__init__(f"{code} {self.reason}")

    def as_error(self) -> dict[str, Any]:
        """`{code, message}` with the table's message; the specific reason as `detail`."""
        error: dict[str, Any] = {"code": self.code, "message": REASONS.get(self.code, self.reason)}
        if self.reason != error["message"]:
            error["detail"] = self.reason
        return error


@dataclass(frozen=True)
class Identity:
    principal: Principal
    user_id: str
    user_name: str
    expires_at: float | None = None  # when a user token stops being accepted (epoch seconds)
    checked_at: float | None = None  # loop time just before the credential was looked up

    @property
    def client_id(self) -> str:
        return self.principal.client_id


async def identify(storage: Storage, admin_key: str, token: Any, user_id: Any = None,
                   user_name: Any = None) -> Identity:
    """Resolve the credential and the user it acts as (SPEC §2), or raise a Refusal."""
    checked_at = asyncio.get_running_loop().time()
    identity = await _identify(storage, admin_key, token, user_id, user_name)
    return replace(identity, checked_at=checked_at)


async def _identify(storage: Storage, admin_key: str, token: Any, user_id: Any,
                    user_name: Any) -> Identity:
    if not isinstance(token, str) or not token:
        raise Refusal(UNAUTHORIZED)
    try:
        principal = _shared(await auth.authenticate(storage, admin_key, token))
    except errors.TokenExpired as exc:  # correctly signed: says nothing a guesser could use
        raise Refusal(UNAUTHORIZED, f"Unauthorized: {exc.detail}") from None
    except errors.InvalidCredentials:
        raise Refusal(UNAUTHORIZED) from None  # one answer for every wrong credential
    if principal.client is None:  # the admin key has no rooms: refused like a wrong key
        raise Refusal(UNAUTHORIZED)
    if principal.is_user:
        identity = _token_identity(principal, user_id, user_name)
        return replace(identity, expires_at=principal.expires_at)
    try:
        uid = validation.user_id(user_id) if user_id not in (None, "") else _anonymous()
        name = validation.user_name(user_name if user_name != "" else None) or uid
    except errors.ApiError as exc:
        raise Refusal(ACCESS_DENIED, f"Room access denied: {exc.detail}") from None
    return Identity(principal, uid, name)


async def identify_limited(limiter: RateLimiter, settings: Settings, storage: Storage,
                           ip: str | None, token: Any, user_id: Any = None,
                           user_name: Any = None) -> Identity:
    """`identify` behind the handshake limits, kept in the REST limiter's buckets: the
    caller's IP bucket must not be empty (asked before the credential is looked at, so the
    answer says nothing about it), a refused credential spends from it as a failed REST
    request does, and an accepted one pays its credential's and its tenant's buckets."""
    ip_key = f"ip:{ip}"
    if not (await limiter.take(ip_key, 0.0)).allowed:
        raise Refusal(RATE_LIMITED)
    try:
        identity = await identify(storage, settings.admin_key, token, user_id, user_name)
    except Refusal as refusal:
        if refusal.code == UNAUTHORIZED:
            await limiter.take(ip_key)
        raise
    await charge(limiter, settings, identity, 1.0)
    return identity


async def charge(limiter: RateLimiter, settings: Settings, identity: Identity,
                 cost: float) -> None:
    """Spend `cost` from the identity's credential and tenant buckets, or refuse (4004)."""
    if cost <= 0:
        return
    decision = await charge_all(limiter, principal_charges(identity.principal, settings), cost)
    if not decision.allowed:
        raise Refusal(RATE_LIMITED)


def replay_cost(settings: Settings, room: dict[str, Any], last_seq: int | None) -> float:
    """What resuming after `last_seq` costs: the messages it will replay (the room's
    counter bounds them, the recovery limit caps them), one token per
    `recovery_messages_per_token`."""
    if last_seq is None:
        return 0.0
    count = min(max(0, int(room.get("last_seq", 0)) - last_seq), settings.recovery_limit)
    return count / max(1, settings.recovery_messages_per_token)


_CLIENT_RECORDS: dict[str, dict[str, Any]] = {}  # client id -> the record live sockets share


def _shared(principal: Principal) -> Principal:
    """Live sockets of one client share one (equal, never mutated) client record instead of
    ~1 KB of their own each; a changed record replaces the shared one."""
    client = principal.client
    if client is None or not isinstance(client.get("id"), str):
        return principal
    known = _CLIENT_RECORDS.get(client["id"])
    if known is not None and known == client:
        return replace(principal, client=known)
    _CLIENT_RECORDS[client["id"]] = client
    return principal


def _token_identity(principal: Principal, user_id: Any, user_name: Any) -> Identity:
    assert principal.user_id is not None
    if user_id not in (None, "") and user_id != principal.user_id:
        raise Refusal(ACCESS_DENIED, "Room access denied: user_id does not match the token")
    name = principal.user_name or principal.user_id
    if user_name not in (None, "") and user_name != name:
        raise Refusal(ACCESS_DENIED, "Room access denied: user_name does not match the token")
    return Identity(principal, principal.user_id, name)


def _anonymous() -> str:
    return "anon-" + secrets.token_hex(4)


@dataclass(frozen=True)
class Admitted:
    """What admission read: the room (its `participant_count` counting this user) and the
    user's participant record. `connection_status` is built from this room as read BEFORE
    the connection entered the room, so its `last_seq` never names a message the
    connection did not get: one it missed in the instant before entering has a higher
    `seq`, which `last_seq` recovery or `after_seq` paging brings."""

    room: dict[str, Any]
    participant: dict[str, Any]

    @property
    def meta(self) -> dict[str, Any] | None:
        return self.participant.get("meta")


async def admit(services: Services, identity: Identity, room_id: Any) -> Admitted:
    """The room and the user's participant record if this identity may listen in it; makes
    the user a participant of a public room."""
    if not isinstance(room_id, str) or not _is_uuid(room_id):
        raise Refusal(ROOM_NOT_FOUND)
    try:
        room = await services.rooms.access(identity.principal, room_id)
    except errors.RoomNotFound:
        raise Refusal(ROOM_NOT_FOUND) from None
    except errors.RoomAccessDenied as exc:
        raise Refusal(ACCESS_DENIED, f"Room access denied: {exc.detail}") from None
    if not room.get("is_active", True):
        raise Refusal(ACCESS_DENIED, "Room access denied: room is deactivated")
    storage = services.rooms.storage
    if room.get("is_private"):
        participant = await storage.get_participant(room_id, identity.user_id)
        if participant is None:
            raise Refusal(ACCESS_DENIED, "Room access denied: private room")
    else:
        participant, added = await services.rooms.ensure_participant(
            room_id, identity.user_id, identity.user_name)
        if added:
            room = {**room, "participant_count": room.get("participant_count", 0) + 1}
    return Admitted(room, participant)


def _is_uuid(text: str) -> bool:
    if len(text) != 36:
        return False
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False
