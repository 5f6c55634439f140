"""The seed's own examples, as written, against a real server on a loopback port:
the ChatAPIWebSocket class and the React hook in Node 20 (browser `WebSocket` via
`--experimental-websocket`), and the "Simple Chat Client" page in Chromium, served from
another origin (its REST send crosses origins: CORS)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.test_realtime_helpers import connect

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")
CHROMIUM = os.environ.get("CHATAPI_CHROMIUM") or "/usr/bin/chromium"
PLAYWRIGHT = HERE.parent / "browser" / "node_modules" / "playwright-core"

pytestmark = pytest.mark.skipif(NODE is None, reason="node (20+) is not installed")


async def run_node(script: str, limit: float = 60, **env: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        NODE, "--experimental-websocket", "--no-warnings", str(HERE / script),
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    assert lines, f"no result from {script}: {out.decode()} {err.decode()}"
    report = json.loads(lines[-1])
    assert report.get("ok"), f"{script}: {report} {err.decode()[-2000:]}"
    return report["result"]


def node_env(server: TestServer, room: dict, tenant: dict) -> dict[str, str]:
    return {"PORT": str(server.port), "ROOM_ID": room["id"], "API_KEY": tenant["api_key"]}


async def test_seed_chatapi_websocket_class(server, tenant, room):
    r = await run_node("seed_class.mjs", **node_env(server, room, tenant))
    assert r["first_status"]["status"] == "connected"
    assert r["first_status"]["user_id"] == "user_123"
    assert r["first_status"]["online_users"] == ["user_123"]
    assert r["joined"]["user_id"] == "user_789" and r["joined"]["user_name"] == "Jane Smith"
    assert r["typing"] == {"user_id": "user_789", "user_name": "Jane Smith", "is_typing": True}
    assert r["sent_status"] == 201
    for message in (r["message"], r["jane_message"]):
        assert message["content"] == "Hello everyone! 👋"
        assert message["sender_name"] == "Jane Smith"
        assert message["meta"] == {"mentions": ["user_123"], "priority": "normal"}
    assert r["updated"]["content"] == "Updated message content! 🎉"
    assert r["updated"]["edit_reason"] == "Fixed typo"
    assert r["deleted"]["deleted_by"] == "user_789"
    assert r["notification_status"] == 201
    assert r["notification"]["title"] == "New Message"
    assert r["notification"]["icon"] == "message"
    assert "server_time" in r["pong"]
    assert sorted(r["online"]) == ["user_123", "user_789"]
    assert r["left"]["user_id"] == "user_789"
    assert r["jane_reconnects"] == 0 and r["john_reconnects"] == 0  # 1000: no reconnect
    assert r["john_ready_state"] == 3


async def test_seed_react_hook(server, tenant, room):
    r = await run_node("seed_react_hook.mjs", **node_env(server, room, tenant))
    assert r["john_online_at_start"] == ["user_123"]
    assert r["john_online_after_join"] == ["user_123", "user_789"]  # no duplicate entries
    assert r["typing_shown"] == ["Jane Smith"]
    assert r["sent_status"] == 201
    assert r["john_messages"] == ["Jane Smith: hi from jane"]
    assert r["message_has_id"] is True
    assert r["john_online_after_leave"] == ["user_123"]


def seed_page(port: int, room_id: str, api_key: str) -> str:
    """The seed's page with its room id, API key and host filled in, nothing else changed."""
    html = (HERE / "seed_chat_client.html").read_text(encoding="utf-8")
    html = html.replace("550e8400-e29b-41d4-a716-446655440001", room_id)
    html = html.replace("sk_test_1234567890abcdef", api_key)
    html = html.replace("ws://localhost:8000", f"ws://localhost:{port}")
    return html.replace("fetch(`/api/v1/", f"fetch(`http://localhost:{port}/api/v1/")


@pytest.fixture
async def page_origin(server, tenant, room):
    """A second server, on another port (another origin), serving the seed's page."""
    page = seed_page(server.port, room["id"], tenant["api_key"])

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def favicon(_: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", favicon)
    origin = TestServer(app, host="127.0.0.1")
    await origin.start_server()
    yield origin
    await origin.close()


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason="Chromium is not installed")
@pytest.mark.skipif(not PLAYWRIGHT.exists(),
                    reason="playwright-core missing: run `npm ci` in tests/browser")
async def test_seed_simple_chat_client_page(server, http, tenant, room, page_origin):
    bystander = await connect(http, server, room["id"], tenant["api_key"], user_id="watch")
    r = await run_node("seed_page.browser.mjs", limit=90, **node_env(server, room, tenant),
                       PAGE_URL=str(page_origin.make_url("/")), CHROMIUM=CHROMIUM)
    assert r["status"] == "Connected"
    assert r["typing_shown"] == "Other is typing..."
    assert r["rest_status"] == 201
    assert "Other: hello page" in r["messages"]
    assert "Demo User: hi from the page" in r["messages"]
    assert r["input_after_send"] == ""
    assert r["page_errors"] == [] and r["console_errors"] == []
    joined = await bystander.next("user_joined", user_id="demo_user")
    assert joined["data"]["user_name"] == "Demo User"
    typing = await bystander.next("typing", user_id="demo_user")
    assert typing["data"]["is_typing"] is True
    message = await bystander.next("message", sender_id="demo_user")
    assert message["data"]["content"] == "hi from the page"
    await bystander.close()
