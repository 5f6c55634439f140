"""The application factory: every resource the app holds, and how it is opened and closed."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path

from aiohttp import web

import compat.http
import compat.rest
from app import openapi, ops, realtime
from app.config import Settings
from app.keys import SERVICES, SETTINGS, STORAGE
from app.services import Services
from storage import Storage, create_storage

log = logging.getLogger("chatapi")

STATIC_DIR = Path(str(resources.files("static")))


def create_app(
    settings: Settings,
    storage: Storage | None = None,
    announce: Callable[[str], None] | None = None,
) -> web.Application:
    """Build the app. `storage` may be passed ready (tests); `announce` prints first-start info."""
    app = web.Application(
        middlewares=compat.http.middlewares(settings),
        client_max_size=settings.max_body_bytes,
    )
    store = storage or create_storage(settings.database_url)
    app[SETTINGS] = settings
    app[STORAGE] = store
    app[SERVICES] = Services.build(store, settings)
    app.cleanup_ctx.append(_storage_ctx)
    app.cleanup_ctx.append(_bootstrap_ctx(announce or _print))
    realtime.setup(app)
    compat.rest.setup(app)
    ops.setup(app)
    openapi.setup(app)
    _add_static_routes(app)
    compat.http.setup_cors(app)
    return app


async def _storage_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[STORAGE].open()
    yield
    await app[STORAGE].close()


def _bootstrap_ctx(announce: Callable[[str], None]
                   ) -> Callable[[web.Application], AsyncIterator[None]]:
    async def bootstrap(app: web.Application) -> AsyncIterator[None]:
        created = await app[SERVICES].clients.bootstrap()
        if created is not None:
            url = app[SETTINGS].demo_url(created.room["id"], created.api_key)
            announce(
                "ChatAPI first start: created client 'default' and public room 'general'.\n"
                f"  API key (shown once, store it now): {created.api_key}\n"
                f"  Room 'general': {created.room['id']}\n"
                f"  Open the demo: {url}"
            )
        yield

    return bootstrap


def _print(text: str) -> None:
    print(text, file=sys.stdout, flush=True)


def _add_static_routes(app: web.Application) -> None:
    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
