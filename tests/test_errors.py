"""Bad requests: the documented status and `error_code`, the one envelope, nothing changed.

Also rate limiting (429 + Retry-After) and CORS (preflight and exposed headers).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from compat.rest import ROUTES as REST_ROUTES
from tests.conftest import ADMIN_KEY, Api, ServerFactory

pytestmark = pytest.mark.mongodb  # on SQLite and MongoDB storage

MISSING = object()
BIG = 300 * 1024
ZERO_UUID = "00000000-0000-4000-8000-000000000000"


@dataclass
class Case:
    method: str
    path: str
    status: int
    code: str
    json: Any = MISSING
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    auth: str | None = "key"  # "key", None (no credential), or a literal credential header
    field: str | None = None  # a validation error must name this field


def case(id_: str, method: str, path: str, status: int, code: str, **kw: Any) -> Any:
    return pytest.param(Case(method, path, status, code, **kw), id=id_)


MSGS = "/api/v1/rooms/{room}/messages"
ROOMS = "/api/v1/rooms"
JSON = {"Content-Type": "application/json"}


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"x": value}
    return value


async def chunked_big() -> AsyncIterator[bytes]:
    yield b'{"name": "'
    for _ in range(BIG // 4096):
        yield b"a" * 4096
    yield b'"}'


CASES = [
    # routing
    case("unknown-api-route", "GET", "/api/v1/nope", 404, "RESOURCE_NOT_FOUND"),
    case("unknown-root-route", "GET", "/no/such/page", 404, "RESOURCE_NOT_FOUND", auth=None),
    case("room-404", "GET", f"{ROOMS}/{ZERO_UUID}", 404, "ROOM_NOT_FOUND"),
    case("message-404", "GET", f"/api/v1/messages/{ZERO_UUID}", 404, "MESSAGE_NOT_FOUND"),
    case("notification-404", "GET", f"/api/v1/notifications/{ZERO_UUID}", 404,
         "NOTIFICATION_NOT_FOUND"),
    case("client-404", "GET", f"/api/v1/clients/{ZERO_UUID}", 404, "CLIENT_NOT_FOUND",
         auth=ADMIN_KEY),
    case("patch-rooms", "PATCH", ROOMS, 405, "METHOD_NOT_ALLOWED", json={"name": "x"}),
    case("delete-rooms", "DELETE", ROOMS, 405, "METHOD_NOT_ALLOWED"),
    case("put-messages", "PUT", MSGS, 405, "METHOD_NOT_ALLOWED", json={"content": "x"}),
    case("post-healthz", "POST", "/healthz", 405, "METHOD_NOT_ALLOWED", auth=None),
    # bodies
    case("not-json", "POST", ROOMS, 400, "INVALID_JSON", data="not json", headers=JSON),
    case("json-array", "POST", ROOMS, 400, "INVALID_JSON", data='[{"name": "x"}]',
         headers=JSON),
    case("json-string", "POST", ROOMS, 400, "INVALID_JSON", data='"x"', headers=JSON),
    case("json-null", "POST", MSGS, 400, "INVALID_JSON", data="null", headers=JSON),
    case("empty-body", "POST", ROOMS, 400, "INVALID_JSON", data=b"", headers=JSON),
    case("truncated-json", "POST", ROOMS, 400, "INVALID_JSON", data='{"name": ',
         headers=JSON),
    case("nan-in-json", "POST", ROOMS, 400, "INVALID_JSON",
         data='{"name": "x", "meta": {"a": NaN}}', headers=JSON),
    case("invalid-utf8", "POST", MSGS, 400, "INVALID_JSON",
         data=b'{"sender_id": "u", "content": "\xff\xfe"}', headers=JSON),
    case("utf16-body", "POST", ROOMS, 400, "INVALID_JSON",
         data='{"name": "x"}'.encode("utf-16"), headers=JSON),
    case("deeply-nested", "POST", ROOMS, 400, "INVALID_JSON", data="[" * 100_000,
         headers=JSON),
    case("text-plain", "POST", ROOMS, 415, "UNSUPPORTED_MEDIA_TYPE",
         data='{"name": "x"}', headers={"Content-Type": "text/plain"}),
    case("form-encoded", "POST", MSGS, 415, "UNSUPPORTED_MEDIA_TYPE",
         data="sender_id=u&content=x",
         headers={"Content-Type": "application/x-www-form-urlencoded"}),
    case("too-large", "POST", ROOMS, 413, "PAYLOAD_TOO_LARGE",
         json={"name": "x", "description": "a" * BIG}),
    case("too-large-chunked", "POST", ROOMS, 413, "PAYLOAD_TOO_LARGE", data=chunked_big,
         headers=JSON),
    # body validation
    case("unknown-field-room", "POST", ROOMS, 422, "VALIDATION_ERROR",
         json={"name": "x", "colour": "red"}, field="colour"),
    case("unknown-field-message", "POST", MSGS, 422, "VALIDATION_ERROR",
         json={"sender_id": "u", "content": "x", "admin": True}, field="admin"),
    case("room-name-missing", "POST", ROOMS, 422, "VALIDATION_ERROR", json={}, field="name"),
    case("room-name-empty", "POST", ROOMS, 422, "VALIDATION_ERROR", json={"name": ""},
         field="name"),
    case("room-name-too-long", "POST", ROOMS, 422, "VALIDATION_ERROR",
         json={"name": "n" * 201}, field="name"),
    case("room-name-number", "POST", ROOMS, 422, "VALIDATION_ERROR", json={"name": 123},
         field="name"),
    case("description-too-long", "POST", ROOMS, 422, "VALIDATION_ERROR",
         json={"name": "x", "description": "d" * 2001}, field="description"),
    case("is-private-string", "POST", ROOMS, 422, "VALIDATION_ERROR",
         json={"name": "x", "is_private": "yes"}, field="is_private"),
    case("meta-not-object", "POST", ROOMS, 422, "VALIDATION_ERROR",
         json={"name": "x", "meta": [1, 2]}, field="meta"),
    case("meta-too-deep", "POST", ROOMS, 422, "VALIDATION_ERROR",
         json={"name": "x", "meta": deep(9)}, field="meta"),
    case("meta-too-big", "POST", MSGS, 422, "VALIDATION_ERROR",
         json={"sender_id": "u", "content": "x", "meta": {"k": "v" * 17_000}}, field="meta"),
    case("content-too-long", "POST", MSGS, 422, "CONTENT_TOO_LONG",
         json={"sender_id": "u", "content": "c" * 12_000}),
    case("content-missing", "POST", MSGS, 422, "VALIDATION_ERROR", json={"sender_id": "u"},
         field="content"),
    case("content-empty", "POST", MSGS, 422, "VALIDATION_ERROR",
         json={"sender_id": "u", "content": ""}, field="content"),
    case("content-not-string", "POST", MSGS, 422, "VALIDATION_ERROR",
         json={"sender_id": "u", "content": {"x": 1}}, field="content"),
    case("content-nul", "POST", MSGS, 422, "VALIDATION_ERROR",
         json={"sender_id": "u", "content": "a\x00b"}, field="content"),
    case("content-escape", "POST", MSGS, 422, "VALIDATION_ERROR",
         json={"sender_id": "u", "content": "\x1b[31mred"}, field="content"),
    case("content-c1", "POST", MSGS, 422, "VALIDATION_ERROR",
         json={"sender_id": "u", "content": "next\x85line"}, field="content"),
    case("content-lone-surrogate", "POST", MSGS, 422, "VALIDATION_ERROR",
         data='{"sender_id": "u", "content": "bad \\ud800 half"}', headers=JSON,
         field="content"),
    case("sender-name-bell", "POST", MSGS, 422, "VALIDATION_ERROR",
         json={"sender_id": "u", "sender_name": "ding\x07", "content": "x"},
         field="sender_name"),
    case("sender-id-space", "POST", MSGS, 422, "VALIDATION_ERROR",
         json={"sender_id": "two words", "content": "x"}, field="sender_id"),
    case("sender-id-too-long", "POST", MSGS, 422, "VALIDATION_ERROR",
         json={"sender_id": "u" * 129, "content": "x"}, field="sender_id"),
    case("sender-id-missing", "POST", MSGS, 422, "VALIDATION_ERROR", json={"content": "x"},
         field="sender_id"),
    case("message-type-bad", "POST", MSGS, 422, "VALIDATION_ERROR",
         json={"sender_id": "u", "content": "x", "message_type": "Bad-Type"},
         field="message_type"),
    case("client-msg-id-nul", "POST", MSGS, 422, "VALIDATION_ERROR",
         json={"sender_id": "u", "content": "x", "client_msg_id": "a\x00"},
         field="client_msg_id"),
    case("edit-nothing", "PUT", "/api/v1/messages/{msg}", 422, "VALIDATION_ERROR", json={}),
    case("edit-too-long", "PUT", "/api/v1/messages/{msg}", 422, "CONTENT_TOO_LONG",
         json={"content": "c" * 10_001}),
    case("join-user-control", "POST", f"{ROOMS}/{{room}}/join", 422, "VALIDATION_ERROR",
         json={"user_id": "a\tb"}, field="user_id"),
    case("token-ttl-too-long", "POST", "/api/v1/tokens", 422, "VALIDATION_ERROR",
         json={"user_id": "u", "ttl_seconds": 31 * 24 * 3600}, field="ttl_seconds"),
    case("token-rooms-bad-uuid", "POST", "/api/v1/tokens", 422, "VALIDATION_ERROR",
         json={"user_id": "u", "rooms": ["nope"]}, field="rooms.0"),
    case("notification-bad-priority", "POST", "/api/v1/notifications", 422,
         "VALIDATION_ERROR", json={"title": "t", "content": "c", "user_ids": ["u"],
                                   "priority": "meh"}, field="priority"),
    case("notification-bad-room-uuid", "POST", "/api/v1/notifications", 422,
         "VALIDATION_ERROR", json={"title": "t", "content": "c", "room_id": "123"},
         field="room_id"),
    case("notification-no-target", "POST", "/api/v1/notifications", 422, "VALIDATION_ERROR",
         json={"title": "t", "content": "c", "user_ids": []}, field="user_ids"),
    case("create-client-unknown-field", "POST", "/api/v1/clients", 422, "VALIDATION_ERROR",
         json={"name": "x", "api_key": "sk_live_mine"}, auth=ADMIN_KEY, field="api_key"),
    # path and query
    case("room-id-not-uuid", "GET", f"{ROOMS}/not-a-uuid", 422, "VALIDATION_ERROR",
         field="room_id"),
    case("message-id-not-uuid", "DELETE", "/api/v1/messages/123", 422, "VALIDATION_ERROR",
         field="message_id"),
    case("send-room-id-not-uuid", "POST", f"{ROOMS}/zzz/messages/", 422, "VALIDATION_ERROR",
         json={"sender_id": "u", "content": "x"}, field="room_id"),
    case("limit-zero", "GET", f"{ROOMS}?limit=0", 422, "VALIDATION_ERROR", field="limit"),
    case("limit-101", "GET", f"{MSGS}?limit=101", 422, "VALIDATION_ERROR", field="limit"),
    case("limit-float", "GET", f"{MSGS}?limit=2.5", 422, "VALIDATION_ERROR", field="limit"),
    case("skip-negative", "GET", f"{ROOMS}?skip=-1", 422, "VALIDATION_ERROR", field="skip"),
    case("skip-huge", "GET", f"{ROOMS}?skip={10**30}", 422, "VALIDATION_ERROR", field="skip"),
    case("sort-bogus", "GET", f"{ROOMS}?sort=popularity", 422, "VALIDATION_ERROR",
         field="sort"),
    case("is-active-yes", "GET", f"{ROOMS}?is_active=yes", 422, "VALIDATION_ERROR",
         field="is_active"),
    case("include-deleted-1", "GET", f"{MSGS}?include_deleted=1", 422, "VALIDATION_ERROR",
         field="include_deleted"),
    case("after-seq-text", "GET", f"{MSGS}?after_seq=abc", 422, "VALIDATION_ERROR",
         field="after_seq"),
    case("before-seq-negative", "GET", f"{MSGS}?before_seq=-5", 422, "VALIDATION_ERROR",
         field="before_seq"),
    case("created-after-bad", "GET", f"{MSGS}?created_after=yesterday", 422,
         "VALIDATION_ERROR", field="created_after"),
    case("created-before-date-only", "GET", f"{MSGS}?created_before=2024-01-01", 422,
         "VALIDATION_ERROR", field="created_before"),
    case("unknown-query-param", "GET", f"{ROOMS}?colour=red", 422, "VALIDATION_ERROR",
         field="colour"),
    case("repeated-query-param", "GET", f"{ROOMS}?limit=1&limit=2", 422, "VALIDATION_ERROR",
         field="limit"),
    case("search-nul", "GET", f"{MSGS}?search=a%00b", 422, "VALIDATION_ERROR",
         field="search"),
    case("notification-status-bogus", "GET", "/api/v1/notifications?status=read", 422,
         "VALIDATION_ERROR", field="status"),
    # credentials
    case("no-credential", "GET", ROOMS, 401, "INVALID_CREDENTIALS", auth=None),
    case("unknown-key", "GET", ROOMS, 401, "INVALID_CREDENTIALS", auth="sk_live_" + "0" * 32),
    case("garbage-bearer", "GET", ROOMS, 401, "INVALID_CREDENTIALS",
         headers={"Authorization": "Bearer a.b.c"}, auth=None),
    case("basic-auth", "GET", ROOMS, 401, "INVALID_CREDENTIALS",
         headers={"Authorization": "Basic dXNlcjpwYXNz"}, auth=None),
    case("no-credential-post", "POST", MSGS, 401, "INVALID_CREDENTIALS", auth=None,
         json={"sender_id": "u", "content": "x"}),
    case("client-key-on-admin-route", "GET", "/api/v1/clients", 403,
         "INSUFFICIENT_PERMISSIONS"),
]


@pytest.fixture
async def world(api: Api, room: dict) -> dict[str, Any]:
    status, body = await api.call("POST", f"/rooms/{room['id']}/messages",
                                  {"sender_id": "u", "content": "keep me"})
    assert status == 201
    await api.call("POST", f"/rooms/{room['id']}/join", {"user_id": "u"})
    return {"room": room["id"], "msg": body["data"]["id"]}


async def snapshot(api: Api, admin: Api, world: dict[str, Any]) -> list[Any]:
    """Everything a bad request could have touched, as the API shows it."""
    rid = world["room"]
    paths = ["/rooms?limit=100", f"/rooms/{rid}", f"/rooms/{rid}/participants",
             f"/rooms/{rid}/messages?include_deleted=true&limit=100", "/notifications",
             f"/messages/{world['msg']}"]
    out = []
    for path in paths:
        status, body = await api.call("GET", path)
        assert status == 200, (path, body)
        out.append(body["data"])
    _, clients = await admin.call("GET", "/clients?limit=100")
    out.append(clients["data"])
    return out


def assert_error_envelope(body: Any, status: int, code: str) -> None:
    assert body["status"] == "error"
    assert body["status_code"] == status and body["error_code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["timestamp"].endswith("Z")
    assert set(body) <= {"status", "detail", "error_code", "status_code", "timestamp",
                         "errors", "details"}


# request validation, answered above storage: 83 cases, on SQLite only to keep the run short
@pytest.mark.parametrize("app_backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("bad", CASES)
async def test_bad_request(bad: Case, http: aiohttp.ClientSession, base_url: str, api: Api,
                           admin: Api, tenant: dict, world: dict[str, Any]) -> None:
    before = await snapshot(api, admin, world)
    headers = dict(bad.headers)
    if bad.auth == "key":
        headers["X-API-Key"] = tenant["api_key"]
    elif bad.auth is not None:
        headers["X-API-Key"] = bad.auth
    kwargs: dict[str, Any] = {"headers": headers}
    if bad.json is not MISSING:
        kwargs["json"] = bad.json
    elif bad.data is not None:
        kwargs["data"] = bad.data() if callable(bad.data) else bad.data
    url = base_url + bad.path.format(room=world["room"], msg=world["msg"])
    async with http.request(bad.method, url, **kwargs) as resp:
        assert resp.content_type == "application/json"
        body = json.loads(await resp.read())
        assert resp.status == bad.status, body
        assert "X-RateLimit-Limit" in resp.headers and "X-RateLimit-Remaining" in resp.headers
    assert_error_envelope(body, bad.status, bad.code)
    if bad.code == "VALIDATION_ERROR" and bad.field is not None:
        assert bad.field in [e["field"] for e in body["errors"]], body
        assert all(e["message"] for e in body["errors"])
    if bad.code == "CONTENT_TOO_LONG":
        assert body["details"]["max_length"] == 10_000
        assert body["details"]["current_length"] == len(bad.json["content"])
    if bad.status == 405:
        assert "Allow" in resp.headers
    assert await snapshot(api, admin, world) == before


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40


async def test_rate_limit(make_server: ServerFactory, http: aiohttp.ClientSession) -> None:
    server = await make_server(rate_limit_burst=3, rate_limit_per_second=0.5)
    admin = Api(http, str(server.make_url("/api/v1")), ADMIN_KEY)
    _, created = await admin.call("POST", "/clients", {"name": "limited"})  # admin bucket
    url = str(server.make_url("/api/v1/rooms"))
    headers = {"X-API-Key": created["data"]["api_key"]}
    remaining = []
    for _ in range(3):
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["X-RateLimit-Limit"] == "3"
            remaining.append(int(resp.headers["X-RateLimit-Remaining"]))
            assert int(resp.headers["X-RateLimit-Reset"]) >= 1
    assert remaining == [2, 1, 0]
    async with http.post(url, headers=headers, json={"name": "nope"}) as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) >= 1
        assert resp.headers["X-RateLimit-Remaining"] == "0"
        assert_error_envelope(await resp.json(), 429, "RATE_LIMIT_EXCEEDED")
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 429
    other_key = {"X-API-Key": "sk_live_" + "1" * 32}  # another credential: its own bucket
    async with http.get(url, headers=other_key) as resp:
        assert resp.status == 401 and "X-RateLimit-Limit" in resp.headers
    await asyncio.sleep(2.1)  # one token back at 0.5/s
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["data"] == []  # the refused POST created nothing


async def test_cors_preflight_and_exposed_headers(http: aiohttp.ClientSession, base_url: str,
                                                  tenant: dict, room: dict) -> None:
    origin = "https://app.example.com"
    path = f"{base_url}/api/v1/rooms/{room['id']}/messages/"
    async with http.options(path, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-api-key"}) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] in (origin, "*")
        allowed = resp.headers["Access-Control-Allow-Headers"].lower()
        assert "x-api-key" in allowed and "content-type" in allowed
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    async with http.options(f"{base_url}/api/v1/rooms", headers={
            "Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"}) as resp:
        assert resp.status == 200
        assert "authorization" in resp.headers["Access-Control-Allow-Headers"].lower()
    async with http.post(path, headers={"Origin": origin, "X-API-Key": tenant["api_key"]},
                         json={"sender_id": "u", "content": "cors"}) as resp:
        assert resp.status == 201
        assert resp.headers["Access-Control-Allow-Origin"] in (origin, "*")
        exposed = resp.headers["Access-Control-Expose-Headers"].lower()
        for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                     "retry-after"):
            assert name in exposed
    async with http.get(f"{base_url}/api/v1/rooms/{room['id']}",
                        headers={"Origin": origin}) as resp:
        assert resp.status == 401  # errors are readable cross-origin too
        assert resp.headers["Access-Control-Allow-Origin"] in (origin, "*")


async def test_cors_origin_list(make_server: ServerFactory,
                                http: aiohttp.ClientSession) -> None:
    server = await make_server(cors_origins="https://good.example")
    url = str(server.make_url("/api/v1/rooms"))
    preflight = {"Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "x-api-key"}
    async with http.options(url, headers={"Origin": "https://good.example", **preflight}) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "https://good.example"
    async with http.options(url, headers={"Origin": "https://evil.example", **preflight}) as r:
        assert "Access-Control-Allow-Origin" not in r.headers


async def test_storage_down_is_503(make_server: ServerFactory, http: aiohttp.ClientSession,
                                   ) -> None:
    server = await make_server()
    admin = Api(http, str(server.make_url("/api/v1")), ADMIN_KEY)
    _, created = await admin.call("POST", "/clients", {"name": "x"})
    api = admin.as_key(created["data"]["api_key"])
    from app.keys import STORAGE

    await server.app[STORAGE].close()
    status, body = await api.call("GET", "/rooms")
    assert status == 503
    assert_error_envelope(body, 503, "SERVICE_UNAVAILABLE")
    async with http.get(str(server.make_url("/readyz"))) as resp:
        assert resp.status == 503
        assert_error_envelope(await resp.json(), 503, "SERVICE_UNAVAILABLE")
    from storage.mongo import MongoStorage

    if not isinstance(server.app[STORAGE], MongoStorage):  # its closed driver client is
        await server.app[STORAGE].open()                    # closed for good; close() is idle


GARBAGE_BODIES: list[Any] = [
    {"content": None, "name": None, "user_id": None, "title": None},
    {"content": ["x"], "name": {"a": 1}, "user_id": 5, "meta": "x", "rooms": "x"},
    {"meta": {"a": 1e400}, "name": "x", "content": "x", "sender_id": "u", "user_id": "u"},
    {"\ud800": 1, "name": "\udfff", "content": "\x00", "sender_id": "\u2028"},
    {"ttl_seconds": 1e400, "user_ids": [None], "skip": -1, "limit": "x", "priority": 1},
]
GARBAGE_QUERIES = ["?skip=1e9&limit=-0", "?after_seq=9" + "9" * 40, "?limit=%00",
                   "?sort=&search=" + "%F0%9F" * 3, "?created_after=2024-13-45T99:99:99Z"]


@pytest.mark.parametrize("route", [pytest.param(r, id=f"{r.method} {r.path}")
                                   for r in REST_ROUTES])
async def test_no_route_answers_5xx_to_garbage(route: Any, http: aiohttp.ClientSession,
                                                 base_url: str, tenant: dict,
                                                 world: dict[str, Any]) -> None:
    ids = {"room_id": world["room"], "message_id": world["msg"], "client_id": tenant["id"],
           "notification_id": ZERO_UUID}
    path = base_url + route.path.format(**ids)
    headers = {"X-API-Key": tenant["api_key"]}
    for query in GARBAGE_QUERIES:
        async with http.request(route.method, path + query, headers=headers) as resp:
            assert resp.status < 500, (query, await resp.text())
    for body in GARBAGE_BODIES:
        data = json.dumps(body)
        async with http.request(route.method, path, data=data,
                                headers={**headers, **JSON}) as resp:
            assert resp.status < 500, (body, await resp.text())
            assert resp.status >= 400 or route.method == "GET" or route.body is None
