"""`/openapi.json` is a valid OpenAPI 3 document covering every route; `/docs` is offline."""

from __future__ import annotations

import re

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from openapi_spec_validator import validate

from app import schemas
from compat.http import ROUTES

NOT_REST = re.compile(r"^/(ws|socket\.io|static)(/|$)")  # WebSocket, Socket.IO, files


async def fetch_spec(http: aiohttp.ClientSession, base_url: str) -> dict:
    async with http.get(base_url + "/openapi.json") as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        return await resp.json()


def registered(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every HTTP route on the router, trailing-slash twins folded."""
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in ("OPTIONS", "HEAD", "*") or path == "/" or NOT_REST.match(path):
            continue
        out.add((route.method.lower(), path.rstrip("/") or "/"))
    return out


async def test_spec_is_valid_openapi(http: aiohttp.ClientSession, base_url: str) -> None:
    spec = await fetch_spec(http, base_url)
    validate(spec)
    assert spec["openapi"].startswith("3.")


async def test_every_route_is_documented(server: TestServer, http: aiohttp.ClientSession,
                                         base_url: str) -> None:
    spec = await fetch_spec(http, base_url)
    documented = {(m, p) for p, item in spec["paths"].items() for m in item}
    routes = registered(server.app)
    assert routes, "no routes found"
    assert routes <= documented, routes - documented
    assert {(r.method.lower(), r.path) for r in server.app[ROUTES]} == documented


async def test_schemas_come_from_marshmallow(http: aiohttp.ClientSession,
                                             base_url: str) -> None:
    spec = await fetch_spec(http, base_url)
    send = spec["paths"]["/api/v1/rooms/{room_id}/messages"]["post"]
    ref = send["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = spec["components"]["schemas"][ref.split("/")[-1]]
    assert set(body["properties"]) == set(schemas.MessageCreate._declared_fields)
    assert body["additionalProperties"] is False and body["required"] == ["content"]
    assert body["properties"]["message_type"]["pattern"] == schemas.MESSAGE_TYPE_RE
    assert {"201", "200", "401", "404", "413", "415", "422", "429"} <= set(send["responses"])
    history = spec["paths"]["/api/v1/rooms/{room_id}/messages"]["get"]
    names = {p["name"] for p in history["parameters"]}
    assert names == {"room_id", *schemas.MessageListQuery._declared_fields}
    limit = next(p for p in history["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)
    assert spec["paths"]["/api/v1/rooms"]["get"]["security"]
    assert "security" not in spec["paths"]["/healthz"]["get"]


async def test_docs_page_is_offline(http: aiohttp.ClientSession, base_url: str) -> None:
    async with http.get(base_url + "/docs") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        html = await resp.text()
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets
    for asset in assets:
        assert asset.startswith("/") and not asset.startswith("//"), asset
        async with http.get(base_url + asset) as resp:
            assert resp.status == 200, asset
            text = await resp.text()
        assert not re.search(r"https?://", text if asset.endswith(".js") else ""), asset
    assert not re.search(r"(src|href)=[\"']https?:", html)
    async with http.get(base_url + "/docs/") as resp:
        assert resp.status == 200


async def test_ops_endpoints(http: aiohttp.ClientSession, base_url: str) -> None:
    async with http.get(base_url + "/healthz") as resp:
        assert resp.status == 200 and (await resp.json())["data"]["status"] == "ok"
    async with http.get(base_url + "/readyz/") as resp:
        body = await resp.json()
        assert resp.status == 200 and body["data"]["checks"]["storage"] == "ok"
    async with http.get(base_url + "/metrics") as resp:
        assert resp.status == 200 and resp.content_type == "text/plain"
        text = await resp.text()
    assert "chatapi_http_requests_total" in text and "chatapi_messages_stored_total" in text
