"""Every route, every kind of caller, and request shapes that must not change who the caller is.

The table below is the documented answer of each route to each credential. A route added to
the app without a row here fails `test_every_route_has_a_row`. A refused call must leave every
table of the database exactly as it was.

SQLite only, by nature: "exactly as it was" is checked by snapshotting every row of every
table of the SQLite file around each call, so this module is not on the MongoDB leg.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from app import errors
from app.auth import Principal
from app.keys import SERVICES, SETTINGS
from compat.http import ROUTES
from tests.conftest import ADMIN_KEY

CREDENTIALS = ("none", "admin", "key", "user", "other_key", "other_user")
SHAPES: dict[str, dict[str, str]] = {
    "plain": {},
    "upgrade": {"Upgrade": "websocket", "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
    "proxy": {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1",
              "Forwarded": "for=127.0.0.1;host=localhost;proto=https",
              "X-Forwarded-Host": "localhost", "X-Original-URL": "/healthz",
              "X-Rewrite-URL": "/healthz", "X-Forwarded-Prefix": "/socket.io"},
}

NO_CREDENTIAL = (401, "INVALID_CREDENTIALS")
FORBIDDEN = (403, "INSUFFICIENT_PERMISSIONS")
ACCESS_DENIED = (403, "ROOM_ACCESS_DENIED")
ROOM_404 = (404, "ROOM_NOT_FOUND")
MESSAGE_404 = (404, "MESSAGE_NOT_FOUND")
NOTIFICATION_404 = (404, "NOTIFICATION_NOT_FOUND")
Outcome = tuple[int, str | None]


def ok(status: int = 200) -> Outcome:
    return (status, None)


def answers(**by_credential: Outcome) -> dict[str, Outcome]:
    """A row: `none` is refused unless given; every credential not named is forbidden."""
    row = {cred: FORBIDDEN for cred in CREDENTIALS}
    row["none"] = NO_CREDENTIAL
    row.update(by_credential)
    return row


PUBLIC_ROW = {cred: ok() for cred in CREDENTIALS}
ADMIN_ONLY = answers(admin=ok())
CLIENT_KEY_ONLY = answers(key=ok(), other_key=ok())
ROOM_READ = answers(key=ok(), user=ok(), other_user=ACCESS_DENIED, other_key=ROOM_404)
ROOM_ADMIN = answers(key=ok(), other_key=ROOM_404)
OWN_MESSAGE = answers(key=ok(), user=ok(), other_user=ACCESS_DENIED, other_key=MESSAGE_404)

# (method, path template) -> (body, {credential: (status, error_code)})
TABLE: dict[tuple[str, str], tuple[Any, dict[str, Outcome]]] = {
    ("POST", "/api/v1/clients"): ({"name": "new"}, answers(admin=ok(201))),
    ("GET", "/api/v1/clients"): (None, ADMIN_ONLY),
    ("GET", "/api/v1/clients/me"): (None, CLIENT_KEY_ONLY),
    ("POST", "/api/v1/clients/me/rotate-key"): (None, CLIENT_KEY_ONLY),
    ("POST", "/api/v1/clients/me/rotate-token-secret"): (None, CLIENT_KEY_ONLY),
    ("GET", "/api/v1/clients/{client_id}"): (None, ADMIN_ONLY),
    ("DELETE", "/api/v1/clients/{client_id}"): (None, ADMIN_ONLY),
    ("POST", "/api/v1/tokens"): ({"user_id": "u9"}, answers(key=ok(201), other_key=ok(201))),
    ("POST", "/api/v1/rooms"): ({"name": "r"}, answers(key=ok(201), other_key=ok(201))),
    ("GET", "/api/v1/rooms"): (None, answers(key=ok(), other_key=ok(), user=ok(),
                                             other_user=ok())),
    ("GET", "/api/v1/rooms/{room_id}"): (None, ROOM_READ),
    ("PUT", "/api/v1/rooms/{room_id}"): ({"name": "renamed"}, ROOM_ADMIN),
    ("DELETE", "/api/v1/rooms/{room_id}"): (None, ROOM_ADMIN),
    ("POST", "/api/v1/rooms/{room_id}/deactivate"): (None, ROOM_ADMIN),
    ("POST", "/api/v1/rooms/{room_id}/activate"): (None, ROOM_ADMIN),
    ("POST", "/api/v1/rooms/{room_id}/join"): (
        {"user_id": "u3"}, answers(key=ok(201), other_key=ROOM_404)),
    ("POST", "/api/v1/rooms/{room_id}/leave"): (
        {"user_id": "u1"}, answers(key=ok(), user=ok(), other_key=ROOM_404)),
    ("GET", "/api/v1/rooms/{room_id}/participants"): (None, ROOM_READ),
    ("GET", "/api/v1/rooms/{room_id}/online"): (None, ROOM_READ),
    ("POST", "/api/v1/rooms/{room_id}/messages"): (
        {"sender_id": "u1", "content": "hi"},
        answers(key=ok(201), user=ok(201), other_key=ROOM_404)),
    ("GET", "/api/v1/rooms/{room_id}/messages"): (None, ROOM_READ),
    ("GET", "/api/v1/messages/{message_id}"): (None, OWN_MESSAGE),
    ("PUT", "/api/v1/messages/{message_id}"): ({"content": "edited"}, OWN_MESSAGE),
    ("DELETE", "/api/v1/messages/{message_id}"): (None, OWN_MESSAGE),
    ("POST", "/api/v1/messages/{message_id}/restore"): (None, OWN_MESSAGE),
    ("POST", "/api/v1/notifications"): (
        {"title": "t", "content": "c", "user_ids": ["u1"]},
        answers(key=ok(201), other_key=ok(201))),
    ("GET", "/api/v1/notifications"): (None, answers(key=ok(), other_key=ok(), user=ok(),
                                                     other_user=ok())),
    ("GET", "/api/v1/notifications/{notification_id}"): (
        None, answers(key=ok(), user=ok(), other_user=NOTIFICATION_404,
                      other_key=NOTIFICATION_404)),
    ("GET", "/healthz"): (None, PUBLIC_ROW),
    ("GET", "/readyz"): (None, PUBLIC_ROW),
    ("GET", "/metrics"): (None, PUBLIC_ROW),
    ("GET", "/openapi.json"): (None, PUBLIC_ROW),
    ("GET", "/docs"): (None, PUBLIC_ROW),
}


@dataclass
class World:
    """Tenant A (a private room with u1 in it, u1's message, a notification to u1) and
    tenant B; `keys` maps each credential of CREDENTIALS to its header value."""

    ids: dict[str, str]
    keys: dict[str, str | None]


async def _call(http: aiohttp.ClientSession, base: str, method: str, path: str,
                key: str | None, body: Any = None, headers: dict[str, str] | None = None
                ) -> tuple[int, Any]:
    sent = dict(headers or {})
    if key:
        sent["X-API-Key"] = key
    async with http.request(method, base + path, json=body, headers=sent) as resp:
        if resp.content_type == "application/json":
            return resp.status, await resp.json()
        return resp.status, None


async def _build_world(http: aiohttp.ClientSession, base: str) -> World:
    async def must(method: str, path: str, key: str, body: Any = None) -> dict[str, Any]:
        status, payload = await _call(http, base, method, path, key, body)
        assert status in (200, 201), (method, path, payload)
        return payload["data"]

    tenant_a = await must("POST", "/api/v1/clients", ADMIN_KEY, {"name": "a"})
    tenant_b = await must("POST", "/api/v1/clients", ADMIN_KEY, {"name": "b"})
    key_a, key_b = tenant_a["api_key"], tenant_b["api_key"]
    room = await must("POST", "/api/v1/rooms", key_a, {"name": "secret", "is_private": True})
    await must("POST", f"/api/v1/rooms/{room['id']}/join", key_a, {"user_id": "u1"})
    message = await must("POST", f"/api/v1/rooms/{room['id']}/messages", key_a,
                         {"sender_id": "u1", "content": "mine"})
    note = await must("POST", "/api/v1/notifications", key_a,
                      {"title": "t", "content": "c", "user_ids": ["u1"]})
    user = await must("POST", "/api/v1/tokens", key_a, {"user_id": "u1"})
    other_user = await must("POST", "/api/v1/tokens", key_a, {"user_id": "u2"})
    ids = {"client_id": tenant_a["id"], "room_id": room["id"], "message_id": message["id"],
           "notification_id": note["id"]}
    keys = {"none": None, "admin": ADMIN_KEY, "key": key_a, "user": user["token"],
            "other_key": key_b, "other_user": other_user["token"]}
    return World(ids, keys)


def _snapshot(db_path: str) -> dict[str, list[str]]:
    """Every row of every table, in a stable order."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        tables = [row[0] for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {table: sorted(repr(row) for row in db.execute(f'SELECT * FROM "{table}"'))
                for table in tables}


def _db_path(server: TestServer) -> str:
    return server.app[SETTINGS].database_url.removeprefix("sqlite:///")


def _route_keys(server: TestServer) -> set[tuple[str, str]]:
    return {(route.method, route.path) for route in server.app[ROUTES]}


async def test_every_route_has_a_row(server: TestServer) -> None:
    assert _route_keys(server) == set(TABLE)


def _denied_first(row: dict[str, Outcome]) -> list[str]:
    return sorted(CREDENTIALS, key=lambda cred: row[cred][0] < 300)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize(("method", "template"), sorted(TABLE), ids=lambda v: str(v))
async def test_route_answers_each_credential_as_documented(
        server: TestServer, http: aiohttp.ClientSession, method: str, template: str,
        shape: str) -> None:
    base = str(server.make_url("")).rstrip("/")
    body, row = TABLE[(method, template)]
    db = _db_path(server)
    world = await _build_world(http, base)
    for cred in _denied_first(row):
        if row[cred][0] < 300:  # allowed calls change data: each gets a world of its own
            world = await _build_world(http, base)
        path = template.format(**world.ids)
        before = _snapshot(db)
        status, payload = await _call(http, base, method, path, world.keys[cred], body,
                                      SHAPES[shape])
        expected_status, expected_code = row[cred]
        seen = (status, payload.get("error_code") if isinstance(payload, dict) else None)
        assert seen == (expected_status, expected_code), (cred, shape, payload)
        if expected_status >= 400:
            assert _snapshot(db) == before, (cred, shape)


SPELLINGS: list[tuple[str, Callable[[dict[str, str]], str]]] = [
    ("GET", lambda ids: "//api/v1/clients"),
    ("GET", lambda ids: "/socket.io/../api/v1/clients"),
    ("GET", lambda ids: "/ws/../api/v1/clients"),
    ("GET", lambda ids: "/api/v1/%63lients"),
    ("GET", lambda ids: "/api/v1//clients"),
    ("GET", lambda ids: "/API/V1/CLIENTS"),
    ("GET", lambda ids: "/api/v1/clients/"),
    ("GET", lambda ids: "/api/v1/clients;x=1"),
    ("DELETE", lambda ids: f"/api/v1/clients/{ids['client_id']}"),
    ("DELETE", lambda ids: f"/socket.io/../api/v1/clients/{ids['client_id']}"),
    ("DELETE", lambda ids: f"//api/v1/clients/{ids['client_id']}/"),
    ("DELETE", lambda ids: f"/api/v1/clients/{ids['client_id']}%2F"),
    ("POST", lambda ids: "/socket.io/../api/v1/clients"),
]


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("cred", ["none", "key", "user", "other_key"])
async def test_path_spellings_never_reach_an_admin_route(
        server: TestServer, http: aiohttp.ClientSession, cred: str, shape: str) -> None:
    """However the path is spelled, only the admin key reaches client administration."""
    base = str(server.make_url("")).rstrip("/")
    world = await _build_world(http, base)
    db = _db_path(server)
    before = _snapshot(db)
    for method, spell in SPELLINGS:
        path = spell(world.ids)
        body = {"name": f"x-{uuid.uuid4().hex[:6]}"} if method == "POST" else None
        status, payload = await _call(http, base, method, path, world.keys[cred], body,
                                      SHAPES[shape])
        assert status in (400, 401, 403, 404, 405), (method, path, status, payload)
        assert isinstance(payload, dict) and payload["status"] == "error", (path, payload)
    assert _snapshot(db) == before


@pytest.mark.parametrize("kind", ["client", "user", "anonymous"])
async def test_client_administration_checks_the_admin_principal_itself(
        server: TestServer, tenant: dict[str, Any], kind: str) -> None:
    """The service refuses too, so no route, CLI or future caller can skip the check."""
    services = server.app[SERVICES]
    client = await services.clients.storage.get_client(tenant["id"])
    principal = Principal(kind=kind, client=None if kind == "anonymous" else client,
                          user_id="u1" if kind == "user" else None)
    attempts = [services.clients.create(principal, "sneaky"),
                services.clients.list(principal, 0, 10),
                services.clients.get(principal, tenant["id"]),
                services.clients.delete(principal, tenant["id"])]
    for attempt in attempts:
        with pytest.raises(errors.InsufficientPermissions):
            await attempt
    assert await services.clients.storage.get_client(tenant["id"]) is not None
    assert await services.clients.storage.count_clients() == 1
