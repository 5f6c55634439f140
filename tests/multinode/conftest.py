"""Real `chatapi serve` nodes sharing one database and one Redis (SPEC §1, §6).

The database is one SQLite file, or, on the MongoDB leg (modules marked `mongodb`), a MongoDB
database of the test's own on the leg's server (tests/mongo_server.py).

Nodes use Redis database 13 and a key prefix (and pub/sub channel) unique to the test, so
runs never see each other; the prefix's keys are deleted afterwards. Everything skips when
no Redis answers at 127.0.0.1:6379 (`.ci/run` starts one).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import redis
import socketio

from tests.ports import free_port
from tests.test_realtime_helpers import RawClient

CHATAPI = str(Path(sys.executable).with_name("chatapi"))
ADMIN_KEY = "multinode-admin-key-0123456789"
REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 13
START_TIMEOUT = 20.0
TIMEOUT = 5.0





def redis_up(port: int = REDIS_PORT) -> bool:
    try:
        return bool(redis.Redis(REDIS_HOST, port, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    if not redis_up():
        pytest.skip(f"no Redis at {REDIS_HOST}:{REDIS_PORT} (start one, or use .ci/run)")


@dataclass
class Node:
    """One `chatapi serve` subprocess on a loopback port."""

    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, room_id: str, **params: Any) -> str:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return f"ws://127.0.0.1:{self.port}/ws/{room_id}?{query}"

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.base + path, timeout=2) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0

    def wait_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while self.status("/healthz") != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"node :{self.port} did not start:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@dataclass
class Cluster:
    """Start nodes sharing one database file and one Redis prefix."""

    tmp: Path
    redis_url: str
    database_url: str = ""  # default: one SQLite file in `tmp`
    prefix: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:10]}")
    nodes: list[Node] = field(default_factory=list)

    def env(self, **overrides: Any) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CHATAPI_")}
        settings = {
            "ADMIN_KEY": ADMIN_KEY,
            "DATABASE_URL": self.database_url or f"sqlite:///{self.tmp / 'shared.db'}",
            "REDIS_URL": self.redis_url, "REDIS_PREFIX": self.prefix,
            "PRESENCE_TTL_SECONDS": 3, "DRAIN_SECONDS": 2, "LOG_LEVEL": "info",
            "RATE_LIMIT_PER_SECOND": 10_000, "RATE_LIMIT_BURST": 100_000,
            "WS_EVENTS_PER_SECOND": 10_000, "WS_EVENTS_BURST": 100_000, **overrides}
        return {**base, "PYTHONUNBUFFERED": "1",
                **{f"CHATAPI_{k.upper()}": str(v) for k, v in settings.items()}}

    def start(self, count: int = 1, **overrides: Any) -> list[Node]:
        started = []
        for _ in range(count):
            port = free_port()
            log = self.tmp / f"node-{port}.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [CHATAPI, "serve", "--host", "127.0.0.1", "--port", str(port)],
                    stdout=out, stderr=subprocess.STDOUT, env=self.env(**overrides))
            started.append(Node(port, proc, log))
        self.nodes += started
        for node in started:
            node.wait_up()
        return started

    def stop(self) -> list[str]:
        """Stop every node; the logs of those that printed a traceback."""
        for node in self.nodes:
            node.stop()
        return [node.output() for node in self.nodes if "Traceback" in node.output()]


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
    if keys:
        client.delete(*keys)


@pytest.fixture
def cluster(tmp_path: Path, app_backend: str, request: pytest.FixtureRequest
            ) -> Iterator[Cluster]:
    database_url = request.getfixturevalue("mongodb_url") if app_backend == "mongodb" else ""
    made = Cluster(tmp_path, f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}", database_url)
    yield made
    failed = made.stop()
    delete_prefix(redis.Redis(REDIS_HOST, REDIS_PORT, REDIS_DB, socket_timeout=2), made.prefix)
    assert not failed, "a node logged a traceback:\n" + "\n".join(failed)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


class Rest:
    """REST calls against any node with one credential."""

    def __init__(self, session: aiohttp.ClientSession, key: str) -> None:
        self.session = session
        self.key = key

    async def call(self, node: Node, method: str, path: str, body: Any = None
                   ) -> tuple[int, Any]:
        async with self.session.request(method, f"{node.base}/api/v1{path}", json=body,
                                        headers={"X-API-Key": self.key}) as resp:
            return resp.status, await resp.json(content_type=None)

    async def send(self, node: Node, room_id: str, sender: str, content: str) -> dict[str, Any]:
        status, body = await self.call(node, "POST", f"/rooms/{room_id}/messages",
                                        {"sender_id": sender, "content": content})
        assert status == 201, body
        return body["data"]


async def tenant(http: aiohttp.ClientSession, node: Node) -> Rest:
    """A fresh client (tenant) created through `node`; REST bound to its API key."""
    admin = Rest(http, ADMIN_KEY)
    status, body = await admin.call(node, "POST", "/clients", {"name": uuid.uuid4().hex[:8]})
    assert status == 201, body
    return Rest(http, body["data"]["api_key"])


async def new_room(api: Rest, node: Node) -> str:
    status, body = await api.call(node, "POST", "/rooms", {"name": "lobby"})
    assert status == 201, body
    return str(body["data"]["id"])


async def raw(http: aiohttp.ClientSession, node: Node, room_id: str, key: str, user_id: str,
              **params: Any) -> RawClient:
    """A raw WebSocket on `node`, after its connection_status."""
    ws = await asyncio.wait_for(http.ws_connect(
        node.ws_url(room_id, token=key, user_id=user_id, user_name=user_id.title(), **params),
        timeout=aiohttp.ClientWSTimeout(ws_close=TIMEOUT)), TIMEOUT)
    client = RawClient(ws)
    await client.next("connection_status")
    return client


class Sio:
    """A python-socketio client that records every event it gets."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.client.on("*", self._record)

    async def _record(self, event: str, data: Any = None) -> None:
        self.events.append(data if isinstance(data, dict) else {"type": event, "data": data})
        self.arrived.set()

    async def connect(self, node: Node, key: str, user_id: str) -> Sio:
        await asyncio.wait_for(self.client.connect(
            node.base, auth={"token": key, "user_id": user_id, "user_name": user_id.title()},
            transports=["websocket"]), TIMEOUT)
        return self

    async def call(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        ack = await self.client.call(event, data, timeout=TIMEOUT)
        assert ack["status"] == "ok", ack
        return dict(ack["data"])

    def of(self, event_type: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == event_type and all(
            e["data"].get(k) == v for k, v in match.items())]

    async def wait(self, event_type: str, count: int = 1, wait: float = TIMEOUT,
                   **match: Any) -> list[dict[str, Any]]:
        async with asyncio.timeout(wait):
            while len(found := self.of(event_type, **match)) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return found

    async def close(self) -> None:
        if self.client.connected:
            await asyncio.wait_for(self.client.disconnect(), TIMEOUT)


@pytest.fixture
async def sio() -> AsyncIterator[Callable[[], Sio]]:
    made: list[Sio] = []

    def make() -> Sio:
        made.append(Sio())
        return made[-1]

    yield make
    for client in made:
        await client.close()
