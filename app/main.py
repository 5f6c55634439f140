"""The application factory: every resource the app holds, and how it is opened and closed."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from importlib import resources
from pathlib import Path

from aiohttp import web, web_protocol

import compat.http
import compat.rest
from app import openapi, ops, realtime
from app.config import Settings
from app.keys import LIMITER, SERVICES, SETTINGS, STORAGE
from app.ratelimit import MemoryRateLimiter, RateLimiter
from app.services import Services
from storage import SchemaMismatch, Storage, StorageUnavailable, create_storage

log = logging.getLogger("chatapi")

STATIC_DIR = Path(str(resources.files("static")))
STATIC_FILES = frozenset(
    path.relative_to(STATIC_DIR).as_posix() for path in STATIC_DIR.rglob("*")
    if path.is_file() and "__pycache__" not in path.parts)
STORAGE_RETRY_FIRST_SECONDS = 0.5
STORAGE_RETRY_CAP_SECONDS = 10.0


def create_app(
    settings: Settings,
    storage: Storage | None = None,
    announce: Callable[[str], None] | None = None,
) -> web.Application:
    """Build the app. `storage` may be passed ready (tests); `announce` prints first-start info."""
    _envelope_parser_errors()
    limiter = create_limiter(settings)
    app = web.Application(
        middlewares=compat.http.middlewares(),
        client_max_size=settings.max_body_bytes,
    )
    store = storage or create_storage(
        settings.database_url, read_connections=settings.sqlite_read_connections,
        read_timeout=settings.sqlite_read_timeout_seconds)
    app[SETTINGS] = settings
    app[LIMITER] = limiter
    app[STORAGE] = store
    app[SERVICES] = Services.build(store, settings)
    app.cleanup_ctx.append(_storage_ctx(announce or _print))
    app.cleanup_ctx.append(_closing_ctx(limiter))
    realtime.setup(app)
    compat.rest.setup(app)
    ops.setup(app)
    openapi.setup(app)
    _add_static_routes(app)
    compat.http.setup_cors(app)
    return app


def create_limiter(settings: Settings) -> RateLimiter:
    """REST token buckets: shared through Redis when configured, else this process's."""
    if settings.redis_url:
        from app.redis_ratelimit import RedisRateLimiter

        return RedisRateLimiter.from_url(settings.redis_url, settings.rate_limit_per_second,
                                         settings.rate_limit_burst, settings.redis_prefix,
                                         settings.redis_max_connections)
    return MemoryRateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)


def _closing_ctx(resource: object) -> Callable[[web.Application], AsyncIterator[None]]:
    async def closing(_: web.Application) -> AsyncIterator[None]:
        yield
        close = getattr(resource, "close", None)
        if close is not None:
            await close()

    return closing


def _storage_ctx(announce: Callable[[str], None]
                 ) -> Callable[[web.Application], AsyncIterator[None]]:
    """Open storage and bootstrap. A networked store that is down at start does not stop
    the server: it starts (503s, /readyz not ready) and keeps trying in the background."""
    async def storage(app: web.Application) -> AsyncIterator[None]:
        retry: asyncio.Task[None] | None = None
        try:
            await _prepare(app, announce)
        except StorageUnavailable as exc:
            if not getattr(app[STORAGE], "reconnects", False):
                raise
            log.warning("storage unreachable at start (%s); retrying in the background", exc)
            retry = asyncio.ensure_future(_prepare_until_ready(app, announce))
        yield
        if retry is not None:
            retry.cancel()
            await asyncio.gather(retry, return_exceptions=True)
        await app[STORAGE].close()

    return storage


async def _prepare_until_ready(app: web.Application, announce: Callable[[str], None]) -> None:
    delay = STORAGE_RETRY_FIRST_SECONDS
    while True:
        await asyncio.sleep(delay)
        try:
            await _prepare(app, announce)
        except StorageUnavailable as exc:
            log.info("storage still unreachable: %s", exc)
        except SchemaMismatch as exc:  # `chatapi migrate` meanwhile lets this node start
            log.error("%s", exc)
        except Exception:
            log.exception("preparing storage failed")
        else:
            log.warning("storage reachable: ready")
            return
        delay = min(delay * 2, STORAGE_RETRY_CAP_SECONDS)


async def _prepare(app: web.Application, announce: Callable[[str], None]) -> None:
    store = app[STORAGE]
    await store.open()
    for change in getattr(store, "migrated", ()):
        log.info("storage upgraded: %s", change)
    created = await app[SERVICES].clients.bootstrap()
    if created is not None:
        url = app[SETTINGS].demo_url(created.room["id"], created.api_key)
        announce(
            "ChatAPI first start: created client 'default' and public room 'general'.\n"
            f"  API key (shown once, store it now): {created.api_key}\n"
            f"  Room 'general': {created.room['id']}\n"
            f"  Open the demo: {url}"
        )


def _print(text: str) -> None:
    print(text, file=sys.stdout, flush=True)


def _add_static_routes(app: web.Application) -> None:
    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    app.router.add_get("/", index)
    app.router.add_get("/static/{name:.+}", _static_file)


async def _static_file(request: web.Request) -> web.FileResponse:
    """A file shipped in `static/`; anything else is a 404 raised here, so it gets the error
    envelope (aiohttp's static route answers a missing file with an empty 404 of its own).
    Names are looked up in the list of shipped files, so no path reaches the filesystem."""
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC_DIR / name)


def _envelope_parser_errors() -> None:
    """aiohttp answers a request its parser rejects from `RequestHandler.handle_error`,
    outside the app and its middlewares, in text/plain, and offers no hook for it; the
    wrapper keeps aiohttp's logging and connection handling and answers in the envelope."""
    original = web_protocol.RequestHandler.handle_error
    if getattr(original, "chatapi_envelope", False):
        return

    def handle_error(self: web_protocol.RequestHandler, request: web.BaseRequest,
                     status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        original(self, request, status, exc, message)  # logs; raises if a response began
        return compat.http.parser_error_response(status)

    handle_error.chatapi_envelope = True  # type: ignore[attr-defined]
    web_protocol.RequestHandler.handle_error = handle_error  # type: ignore[method-assign]
