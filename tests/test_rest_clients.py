"""Clients, credentials and user tokens over real HTTP (SPEC §2, §3 Clients/Tokens)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest

from app.config import Settings
from tests.conftest import ADMIN_KEY, Api

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage


def bearer(api: Api, token: str) -> Api:
    """The same client, authenticating with `Authorization: Bearer <token>`."""
    user = Api(api.session, api.base, None)
    user.headers = lambda key=None: {"Authorization": f"Bearer {key or token}"}  # type: ignore
    return user


async def mint(api: Api, user_id: str, **extra: Any) -> str:
    status, body = await api.call("POST", "/tokens", {"user_id": user_id, **extra})
    assert status == 201, body
    return body["data"]["token"]


def pyjwt_token(tenant: dict[str, Any], sub: str, ttl: int = 3600, **claims: Any) -> str:
    payload = {"sub": sub, "exp": int(time.time()) + ttl, "iss": tenant["id"], **claims}
    return jwt.encode(payload, tenant["token_secret"], algorithm="HS256")


async def test_create_client_returns_secrets_once(admin: Api) -> None:
    status, body = await admin.call("POST", "/clients", {"name": "acme", "description": "d"})
    assert status == 201
    data = body["data"]
    assert data["api_key"].startswith("sk_") and len(data["api_key"]) >= 32 + 8
    assert data["token_secret"] and data["is_active"] is True and data["name"] == "acme"
    status, got = await admin.call("GET", f"/clients/{data['id']}")
    assert status == 200
    assert "api_key" not in got["data"] and "token_secret" not in got["data"]
    assert got["data"]["description"] == "d"


async def test_list_and_delete_clients(admin: Api, tenant: dict) -> None:
    status, body = await admin.call("GET", "/clients?limit=1")
    assert status == 200 and len(body["data"]) == 1
    assert body["pagination"]["limit"] == 1 and body["pagination"]["total"] >= 1
    status, body = await admin.call("DELETE", f"/clients/{tenant['id']}")
    assert (status, body["status"]) == (200, "success") and body["message"]
    status, body = await admin.call("GET", f"/clients/{tenant['id']}")
    assert (status, body["error_code"]) == (404, "CLIENT_NOT_FOUND")
    status, body = await admin.call("GET", "/rooms", key=tenant["api_key"])
    assert (status, body["error_code"]) == (401, "INVALID_CREDENTIALS")


async def test_client_key_cannot_manage_clients(api: Api) -> None:
    status, body = await api.call("GET", "/clients")
    assert (status, body["error_code"]) == (403, "INSUFFICIENT_PERMISSIONS")
    status, body = await api.call("POST", "/clients", {"name": "x"})
    assert (status, body["error_code"]) == (403, "INSUFFICIENT_PERMISSIONS")


async def test_admin_key_cannot_act_inside_a_tenant(admin: Api) -> None:
    status, body = await admin.call("GET", "/rooms")
    assert (status, body["error_code"]) == (403, "INSUFFICIENT_PERMISSIONS")


async def test_clients_me(api: Api, tenant: dict) -> None:
    status, body = await api.call("GET", "/clients/me")
    assert status == 200 and body["data"]["id"] == tenant["id"]
    assert "api_key" not in body["data"]


async def test_bearer_api_key_works(api: Api, tenant: dict) -> None:
    status, body = await bearer(api, tenant["api_key"]).call("GET", "/clients/me")
    assert status == 200 and body["data"]["id"] == tenant["id"]


async def test_rotate_key_old_key_fails_at_once(api: Api, tenant: dict) -> None:
    status, body = await api.call("POST", "/clients/me/rotate-key")
    assert status == 200
    new_key = body["data"]["api_key"]
    assert new_key != tenant["api_key"]
    status, body = await api.call("GET", "/rooms")
    assert (status, body["error_code"]) == (401, "INVALID_CREDENTIALS")
    status, _ = await api.as_key(new_key).call("GET", "/rooms")
    assert status == 200


async def test_rotate_token_secret_invalidates_old_tokens(api: Api, room: dict) -> None:
    token = await mint(api, "alice")
    user = bearer(api, token)
    assert (await user.call("GET", f"/rooms/{room['id']}"))[0] == 200
    status, body = await api.call("POST", "/clients/me/rotate-token-secret")
    assert status == 200 and body["data"]["token_secret"]
    status, body = await user.call("GET", f"/rooms/{room['id']}")
    assert (status, body["error_code"]) == (401, "INVALID_CREDENTIALS")
    fresh = bearer(api, await mint(api, "alice"))
    assert (await fresh.call("GET", f"/rooms/{room['id']}"))[0] == 200


async def test_key_stored_only_as_hash(admin: Api, settings: Settings) -> None:
    status, body = await admin.call("POST", "/clients", {"name": "hashcheck"})
    assert status == 201
    key = body["data"]["api_key"]
    if settings.database_url.startswith("mongodb"):
        blob = mongodb_dump(settings.database_url)
    else:
        db = Path(settings.database_url.removeprefix("sqlite:///"))
        files = [db, *db.parent.glob(db.name + "-*")]  # WAL and shared-memory files too
        blob = b"".join(f.read_bytes() for f in files if f.exists())
    assert blob and key.encode() not in blob


def mongodb_dump(url: str) -> bytes:
    """Every document of every collection of the URL's database, as BSON."""
    import bson
    from pymongo import MongoClient

    with MongoClient(url, serverSelectionTimeoutMS=5000, socketTimeoutMS=20_000) as client:
        db = client.get_default_database()
        return b"".join(bson.encode(doc) for name in db.list_collection_names()
                        for doc in db[name].find())


async def test_token_endpoint_and_claims(api: Api, tenant: dict, room: dict) -> None:
    status, body = await api.call("POST", "/tokens", {
        "user_id": "bob", "user_name": "Bob", "ttl_seconds": 600, "rooms": [room["id"]]})
    assert status == 201
    data = body["data"]
    assert data["user_id"] == "bob" and data["expires_at"].endswith("Z")
    claims = jwt.decode(data["token"], tenant["token_secret"], algorithms=["HS256"])
    assert claims["sub"] == "bob" and claims["name"] == "Bob" and claims["iss"] == tenant["id"]
    assert claims["rooms"] == [room["id"]] and claims["exp"] - time.time() <= 600


async def test_user_token_cannot_mint_tokens(api: Api) -> None:
    user = bearer(api, await mint(api, "carol"))
    status, body = await user.call("POST", "/tokens", {"user_id": "carol"})
    assert (status, body["error_code"]) == (403, "INSUFFICIENT_PERMISSIONS")


async def test_pyjwt_token_acts_as_its_user(api: Api, tenant: dict, room: dict) -> None:
    user = bearer(api, pyjwt_token(tenant, "dave", name="Dave"))
    path = f"/rooms/{room['id']}/messages"
    status, body = await user.call("POST", path, {"content": "mine"})
    assert status == 201
    assert body["data"]["sender_id"] == "dave" and body["data"]["sender_name"] == "Dave"
    status, body = await user.call("POST", path, {"sender_id": "dave", "content": "ok"})
    assert status == 201
    status, body = await user.call("POST", path, {"sender_id": "eve", "content": "spoof"})
    assert (status, body["error_code"]) == (403, "INSUFFICIENT_PERMISSIONS")


async def test_expired_token(api: Api, tenant: dict, room: dict) -> None:
    user = bearer(api, pyjwt_token(tenant, "old", ttl=-3600))
    status, body = await user.call("GET", f"/rooms/{room['id']}")
    assert (status, body["error_code"]) == (401, "TOKEN_EXPIRED")


async def test_token_signed_with_wrong_secret(api: Api, tenant: dict, room: dict) -> None:
    forged = pyjwt_token({**tenant, "token_secret": "x" * 43}, "mallory")
    status, body = await bearer(api, forged).call("GET", f"/rooms/{room['id']}")
    assert (status, body["error_code"]) == (401, "INVALID_CREDENTIALS")


async def test_token_rooms_claim_limits_access(api: Api, tenant: dict, room: dict) -> None:
    _, other = await api.call("POST", "/rooms", {"name": "other"})
    user = bearer(api, pyjwt_token(tenant, "frank", rooms=[room["id"]]))
    assert (await user.call("GET", f"/rooms/{room['id']}"))[0] == 200
    status, body = await user.call("GET", f"/rooms/{other['data']['id']}")
    assert (status, body["error_code"]) == (403, "ROOM_ACCESS_DENIED")
    status, body = await user.call("POST", f"/rooms/{other['data']['id']}/messages",
                                   {"content": "x"})
    assert (status, body["error_code"]) == (403, "ROOM_ACCESS_DENIED")
    status, body = await user.call("GET", "/rooms")
    assert status == 200 and [r["id"] for r in body["data"]] == [room["id"]]
    for name in ("newer-1", "newer-2"):
        await api.call("POST", "/rooms", {"name": name})
    status, body = await user.call("GET", "/rooms?limit=1")  # the limit applies before paging
    assert [r["id"] for r in body["data"]] == [room["id"]]
    assert body["pagination"] == {"skip": 0, "limit": 1, "total": 1, "has_more": False}


async def test_admin_key_is_never_bootstrap_printed(admin: Api) -> None:
    status, body = await admin.call("GET", "/clients")
    assert status == 200
    assert all(c["name"] != "default" for c in body["data"])  # admin key set: no bootstrap
    assert ADMIN_KEY not in str(body)


async def test_non_utf8_credential_header_is_401(api: Api) -> None:
    """aiohttp hands over undecodable header bytes as surrogates: 401, never a 500."""
    host, port = api.base.split("//")[1].split("/")[0].split(":")
    for value in (b"\xff\xfe", b"sk_live_\xff", b"a.b\xff.c"):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"GET /api/v1/rooms HTTP/1.1\r\nHost: x\r\nX-API-Key: " + value
                     + b"\r\nConnection: close\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 401"), raw
        assert json.loads(payload)["error_code"] == "INVALID_CREDENTIALS"
