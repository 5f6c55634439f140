"""Tenants: clients, their API keys and token secrets, and first-start bootstrap."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app import auth, errors
from app.auth import Principal
from app.config import Settings
from app.events import NoRealtime, Realtime
from app.timeutil import format_ts, now_ts, parse_ts
from storage import Storage

PUBLIC_CLIENT_FIELDS = ("id", "name", "description", "is_active", "created_at")
BOOTSTRAP_CLAIM = "bootstrap"
# A claim whose client is still missing after this long was left by a node that died
# mid-bootstrap (or its clients were all deleted since): the next first start takes it over.
BOOTSTRAP_CLAIM_STALE_SECONDS = 60.0
KEY_SOCKETS = ("key",)
TOKEN_SOCKETS = ("tokens",)


def public_client(client: dict[str, Any]) -> dict[str, Any]:
    """A client as the API shows it: never the key hash or the token secret."""
    return {k: client.get(k) for k in PUBLIC_CLIENT_FIELDS}


@dataclass(frozen=True)
class Bootstrap:
    client: dict[str, Any]
    api_key: str
    room: dict[str, Any]


class ClientService:
    def __init__(self, storage: Storage, settings: Settings,
                 realtime: Realtime | None = None) -> None:
        self.storage = storage
        self.settings = settings
        self.realtime: Realtime = realtime or NoRealtime()

    async def create(self, principal: Principal, name: str, description: str | None = None
                     ) -> dict[str, Any]:
        """Create a client (admin key); the result carries `api_key` and `token_secret`,
        shown only now."""
        principal.require(auth.ADMIN)
        return await self._create(name, description)

    async def _create(self, name: str, description: str | None,
                      client_id: str | None = None) -> dict[str, Any]:
        api_key = auth.new_api_key()
        record = {
            "id": client_id or str(uuid.uuid4()),
            "name": name,
            "description": description,
            "api_key_hash": auth.hash_key(api_key),
            "token_secret": auth.new_token_secret(),
            "is_active": True,
            "created_at": now_ts(),
        }
        stored = await self.storage.create_client(record)
        return {**public_client(stored), "api_key": api_key, "token_secret": record["token_secret"]}

    async def list(self, principal: Principal, skip: int, limit: int
                   ) -> tuple[list[dict[str, Any]], int]:
        principal.require(auth.ADMIN)
        items, total = await self.storage.list_clients(skip, limit)
        return [public_client(c) for c in items], total

    async def get(self, principal: Principal, client_id: str) -> dict[str, Any]:
        principal.require(auth.ADMIN)
        return await self._get(client_id)

    async def _get(self, client_id: str) -> dict[str, Any]:
        client = await self.storage.get_client(client_id)
        if client is None:
            raise errors.ClientNotFound()
        return public_client(client)

    async def delete(self, principal: Principal, client_id: str) -> None:
        principal.require(auth.ADMIN)
        if not await self.storage.delete_client(client_id):
            raise errors.ClientNotFound()
        await self.realtime.revoke(client_id, KEY_SOCKETS + TOKEN_SOCKETS,
                                   "Unauthorized: client deleted")

    async def me(self, principal: Principal) -> dict[str, Any]:
        """The caller's own client (client API key only)."""
        principal.require(auth.CLIENT_KEY)
        return await self._get(principal.client_id)

    async def issue_token(self, principal: Principal, fields: dict[str, Any]) -> dict[str, Any]:
        """Mint a user token with the caller's token secret: `{token, user_id, expires_at}`."""
        principal.require(auth.CLIENT_KEY)
        assert principal.client is not None
        token, exp = auth.mint_token(
            principal.client, fields["user_id"], fields.get("user_name"),
            fields.get("ttl_seconds") or 86400, fields.get("rooms"))
        expires = datetime.fromtimestamp(exp, UTC)
        return {"token": token, "user_id": fields["user_id"], "expires_at": format_ts(expires)}

    async def rotate_key(self, principal: Principal) -> dict[str, Any]:
        """A new API key for the caller's client; the old one stops working at once."""
        principal.require(auth.CLIENT_KEY)
        api_key = auth.new_api_key()
        updated = await self.storage.update_client(
            principal.client_id, {"api_key_hash": auth.hash_key(api_key)})
        if updated is None:
            raise errors.ClientNotFound()
        await self.realtime.revoke(principal.client_id, KEY_SOCKETS,
                                   "Unauthorized: API key rotated")
        return {**public_client(updated), "api_key": api_key}

    async def rotate_token_secret(self, principal: Principal) -> dict[str, Any]:
        """A new token secret: every user token signed with the old one stops working."""
        principal.require(auth.CLIENT_KEY)
        secret = auth.new_token_secret()
        updated = await self.storage.update_client(principal.client_id, {"token_secret": secret})
        if updated is None:
            raise errors.ClientNotFound()
        await self.realtime.revoke(principal.client_id, TOKEN_SOCKETS,
                                   "Unauthorized: token secret rotated")
        return {**public_client(updated), "token_secret": secret}

    async def bootstrap(self) -> Bootstrap | None:
        """Empty database, no admin key: create a `default` client and a public `general` room.

        Of nodes starting together on one empty database, only the one that wins the
        first-start claim (a compare-and-set of one meta record) creates them; the others
        return None, so the API key exists, and is shown, once."""
        if self.settings.admin_key or await self.storage.count_clients() > 0:
            return None
        held = await self.storage.get_meta(BOOTSTRAP_CLAIM)
        if held is not None and not _stale(held):
            return None
        claim = {"client_id": str(uuid.uuid4()), "claimed_at": now_ts()}
        if not await self.storage.swap_meta(BOOTSTRAP_CLAIM, claim, held):
            return None
        client = await self._create("default", "Created on first start", claim["client_id"])
        now = now_ts()
        room = await self.storage.create_room({
            "id": str(uuid.uuid4()), "client_id": client["id"], "name": "general",
            "description": "Everyone's room", "is_active": True, "is_private": False,
            "meta": {}, "created_at": now, "updated_at": now,
        })
        return Bootstrap(client=client, api_key=client["api_key"], room=room)



def _stale(claim: dict[str, Any]) -> bool:
    """Only called with no client stored: an old claim is one that never completed."""
    age = datetime.now(UTC) - parse_ts(claim["claimed_at"])
    return age.total_seconds() > BOOTSTRAP_CLAIM_STALE_SECONDS
