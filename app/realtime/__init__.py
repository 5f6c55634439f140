"""Real-time layer: python-socketio's AsyncServer and room manager, raw `/ws/{room_id}` and
Socket.IO clients in the same rooms, presence, typing, recovery and graceful shutdown."""

from __future__ import annotations

from aiohttp import web

from app.config import Settings
from app.keys import HUB, LIMITER, SERVICES, SETTINGS
from app.realtime.emitter import create_manager
from app.realtime.hub import Hub
from app.realtime.presence import MemoryPresence, Presence
from app.realtime.sio import create_server, register


def create_presence(settings: Settings) -> Presence:
    """Presence in Redis when `CHATAPI_REDIS_URL` is set (any number of nodes), else in-process."""
    if settings.redis_url:
        from app.realtime.redis_presence import RedisPresence

        return RedisPresence.from_url(settings.redis_url, prefix=settings.redis_prefix,
                                      ttl=settings.presence_ttl_seconds,
                                      max_connections=settings.redis_max_connections)
    return MemoryPresence()


def setup(app: web.Application) -> None:
    """Attach Socket.IO at /socket.io/, the raw /ws/{room_id} route, and the hub."""
    import compat.ws

    settings = app[SETTINGS]
    sio = create_server(settings, create_manager(settings))
    hub = Hub(settings, app[SERVICES], sio, create_presence(settings))
    register(sio, hub, app[LIMITER])
    sio.attach(app, socketio_path="socket.io")
    compat.ws.setup(app)
    app[HUB] = hub
    app[SERVICES].attach_realtime(hub)
    app.on_startup.append(_start)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_cleanup)


async def _start(app: web.Application) -> None:
    app[HUB].start()
    await app[HUB].start_presence()


async def _shutdown(app: web.Application) -> None:
    await app[HUB].shutdown()


async def _cleanup(app: web.Application) -> None:
    hub = app[HUB]
    await hub.stop()
    await hub.sio.shutdown()
