"""Credentials (SPEC §2): the admin key, client API keys (stored as hashes), user JWTs."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from marshmallow import ValidationError

from app import errors, schemas
from storage import Storage

MAX_TOKEN_TTL_SECONDS = 30 * 24 * 3600
_CLOCK_SKEW_SECONDS = 60

# Credential kinds an action takes: each route declares one of these sets, and each
# service method checks it again with `require`.
PUBLIC: frozenset[str] = frozenset()
ADMIN = frozenset({"admin"})
CLIENT_KEY = frozenset({"client"})
TENANT = frozenset({"client", "user"})
_NEEDS = {
    ADMIN: "This needs the admin key",
    CLIENT_KEY: "This needs the client's API key",
    TENANT: "This needs a client API key or user token",
}


@dataclass(frozen=True)
class Principal:
    """Who is calling. `user_id` is set only for user tokens, whose identity is fixed."""

    kind: str  # "admin" | "client" | "user"
    client: dict[str, Any] | None = None
    user_id: str | None = None
    user_name: str | None = None
    rooms: tuple[str, ...] | None = None
    expires_at: float | None = None  # a user token: when it stops being accepted (epoch s)

    @property
    def client_id(self) -> str:
        if self.client is None:
            raise errors.InsufficientPermissions("This needs a client API key or user token")
        return self.client["id"]

    @property
    def is_user(self) -> bool:
        return self.kind == "user"

    def require(self, kinds: frozenset[str]) -> None:
        """403 unless this credential is of one of `kinds`."""
        if kinds and self.kind not in kinds:
            raise errors.InsufficientPermissions(_NEEDS.get(kinds, "Insufficient permissions"))

    @property
    def rate_key(self) -> str:
        """The bucket this credential's requests count against."""
        if self.kind == "admin":
            return "admin"
        if self.kind == "user":
            return f"user:{self.client_id}:{self.user_id}"
        return f"client:{self.client_id}"


def new_api_key(live: bool = True) -> str:
    """A fresh API key: 128 random bits, shaped like the seed's `sk_test_1234567890abcdef`."""
    return ("sk_live_" if live else "sk_test_") + secrets.token_hex(16)


def new_token_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_key(api_key: str) -> str:
    """Keys carry 128 random bits, so a plain SHA-256 is a safe, fast lookup hash."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()


def mint_token(
    client: dict[str, Any],
    user_id: str,
    user_name: str | None = None,
    ttl_seconds: int = 86400,
    rooms: list[str] | None = None,
) -> tuple[str, int]:
    """Sign a user token with the client's token secret; returns (token, exp)."""
    now = int(time.time())
    exp = now + min(int(ttl_seconds), MAX_TOKEN_TTL_SECONDS)
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": exp, "iss": client["id"]}
    if user_name:
        claims["name"] = user_name
    if rooms is not None:
        claims["rooms"] = list(rooms)
    return jwt.encode(claims, client["token_secret"], algorithm="HS256"), exp


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and not credential.startswith("sk_")


async def authenticate(storage: Storage, admin_key: str, credential: str | None) -> Principal:
    """Resolve a raw credential (key or token) to a Principal, or raise a 401 ApiError."""
    if not credential:
        raise errors.InvalidCredentials("Missing API key or token")
    try:  # a header with non-UTF-8 bytes arrives with surrogates; no real credential has them
        credential.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.InvalidCredentials("Invalid API key or token") from None
    if admin_key and hmac.compare_digest(credential.encode(), admin_key.encode()):
        return Principal(kind="admin")
    if looks_like_jwt(credential):
        return await _authenticate_token(storage, credential)
    client = await storage.get_client_by_key_hash(hash_key(credential))
    if client is None or not client.get("is_active", True):
        raise errors.InvalidCredentials("Invalid API key")
    return Principal(kind="client", client=client)


async def _authenticate_token(storage: Storage, token: str) -> Principal:
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise errors.InvalidCredentials("Malformed token") from None
    client_id = unverified.get("iss") or header.get("kid")
    client = await storage.get_client(client_id) if isinstance(client_id, str) else None
    if client is None or not client.get("is_active", True):
        raise errors.InvalidCredentials("Token issuer is not a known client")
    claims = _verify_token(token, client["token_secret"])
    rooms = claims.get("rooms")
    return Principal(
        kind="user",
        client=client,
        user_id=claims["sub"],
        user_name=claims.get("name"),
        rooms=tuple(rooms) if isinstance(rooms, list) else None,
        expires_at=float(claims["exp"]) + _CLOCK_SKEW_SECONDS,
    )


def _verify_token(token: str, secret: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], leeway=_CLOCK_SKEW_SECONDS,
                            options={"require": ["sub", "exp"]})
    except jwt.ExpiredSignatureError:
        raise errors.TokenExpired() from None
    except (jwt.PyJWTError, OverflowError):
        raise errors.InvalidCredentials("Invalid token") from None
    _check_exp(claims["exp"])
    _check_identity(claims)
    rooms = claims.get("rooms")
    if rooms is not None and not (
            isinstance(rooms, list) and all(isinstance(r, str) for r in rooms)):
        raise errors.InvalidCredentials("Token `rooms` must be a list of room ids")
    return claims


def _check_exp(exp: Any) -> None:
    """A JSON number of seconds (PyJWT also takes digit strings), at most 30 days ahead."""
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise errors.InvalidCredentials("Token `exp` must be a number")
    if exp > time.time() + MAX_TOKEN_TTL_SECONDS + _CLOCK_SKEW_SECONDS:  # no int→float
        raise errors.InvalidCredentials("Token lifetime exceeds 30 days")


def _check_identity(claims: dict[str, Any]) -> None:
    """`sub` and `name` follow the REST rules for user ids and names."""
    try:
        schemas.check_user_id(claims["sub"])
        if claims.get("name") is not None:
            schemas.check_user_name(claims["name"])
    except ValidationError:
        raise errors.InvalidCredentials("Token `sub` or `name` is not a valid user") from None
