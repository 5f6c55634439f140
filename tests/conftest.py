"""Shared fixtures: a real ChatAPI server on a loopback port, real HTTP clients."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from app.config import Settings
from app.main import create_app
from tests import mongo_server

ADMIN_KEY = "test-admin-key-0123456789"
APP_BACKENDS = ["sqlite", "mongodb"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "mongodb: also run the module's app tests with MongoDB storage (the "
        "`app_backend` fixture is parametrized over sqlite and mongodb)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `mongodb` that use the app (or a cluster) run on both backends, unless
    the test parametrizes `app_backend` itself."""
    if "app_backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("mongodb") is None:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        names = [n.strip() for n in names.split(",")] if isinstance(names, str) else names
        if "app_backend" in names:
            return
    metafunc.parametrize("app_backend", APP_BACKENDS, indirect=True)


@pytest.fixture
def app_backend(request: pytest.FixtureRequest) -> str:
    """The app's storage: "sqlite" unless the test is parametrized (module marked `mongodb`)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def mongodb_server() -> Iterator[str]:
    """The URL of this process's MongoDB-wire server (see tests/mongo_server.py)."""
    url, started = mongo_server.server_url()
    try:
        yield url
    finally:
        if started is not None:
            started.stop()


@pytest.fixture
def mongodb_url(mongodb_server: str) -> Iterator[str]:
    """A database of its own on the leg's server, named in the URL; dropped afterwards."""
    database = mongo_server.unique_database()
    yield mongo_server.with_database(mongodb_server, database)
    mongo_server.drop_database(mongodb_server, database)


@pytest.fixture
def database_url(app_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if app_backend == "mongodb":
        return str(request.getfixturevalue("mongodb_url"))
    return f"sqlite:///{tmp_path / 'chatapi.db'}"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Defaults with a throwaway database (SQLite file, or a MongoDB database on the MongoDB
    leg), an admin key and generous rate limits."""
    return Settings(
        host="127.0.0.1", port=0, database_url=database_url,
        admin_key=ADMIN_KEY, rate_limit_per_second=1000.0, rate_limit_burst=10_000,
        ws_events_per_second=1000.0, ws_events_burst=10_000, drain_seconds=2.0,
    )


ServerFactory = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def make_server(settings: Settings) -> AsyncIterator[ServerFactory]:
    """Start servers on loopback ports; `make_server(**overrides)` tweaks settings."""
    servers: list[TestServer] = []

    async def start(**overrides: Any) -> TestServer:
        server = TestServer(create_app(replace(settings, **overrides)), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        await server.close()


@pytest.fixture
async def server(make_server: ServerFactory) -> TestServer:
    return await make_server()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


class Api:
    """A tiny REST client bound to one server and one credential."""

    def __init__(self, session: aiohttp.ClientSession, base: str, key: str | None) -> None:
        self.session = session
        self.base = base
        self.key = key

    def headers(self, key: str | None = None) -> dict[str, str]:
        key = key or self.key
        return {"X-API-Key": key} if key else {}

    async def call(self, method: str, path: str, json: Any = None, key: str | None = None,
                   **kwargs: Any) -> tuple[int, Any]:
        url = self.base + path
        async with self.session.request(method, url, json=json,
                                        headers=self.headers(key), **kwargs) as resp:
            body = await resp.json(content_type=None) if resp.content_length != 0 else None
            return resp.status, body

    def as_key(self, key: str) -> Api:
        return Api(self.session, self.base, key)


@pytest.fixture
def base_url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
def admin(http: aiohttp.ClientSession, base_url: str) -> Api:
    return Api(http, base_url + "/api/v1", ADMIN_KEY)


@pytest.fixture
async def tenant(admin: Api) -> dict[str, Any]:
    """A fresh client: {id, api_key, token_secret, ...}."""
    status, body = await admin.call("POST", "/clients", {"name": f"t-{uuid.uuid4().hex[:8]}"})
    assert status == 201, body
    return body["data"]


@pytest.fixture
def api(admin: Api, tenant: dict[str, Any]) -> Api:
    """REST client acting with the tenant's API key."""
    return admin.as_key(tenant["api_key"])


@pytest.fixture
async def room(api: Api) -> dict[str, Any]:
    status, body = await api.call("POST", "/rooms", {"name": "lobby"})
    assert status == 201, body
    return body["data"]
