"""engine.io's aiohttp WebSocket transport, tracked and without permessage-deflate by default.

python-engineio opens `WebSocketResponse()` with aiohttp's defaults (deflate accepted) and
keeps no handle on it. This subclass declines deflate unless compression is configured, and
records every open transport so shutdown can close them with 1001 within the drain time.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import socketio
from aiohttp import web
from engineio.async_drivers import aiohttp as eio_aiohttp


class TrackedWebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    compress = False
    open: weakref.WeakSet[TrackedWebSocket] = weakref.WeakSet()

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size,
                                           compress=self.compress)
        await self._sock.prepare(request)
        self.environ = environ
        self.open.add(self)
        try:
            await self.handler(self)
        finally:
            self.open.discard(self)
        return self._sock

    async def going_away(self) -> None:
        if self._sock is not None and not self._sock.closed:
            await self._sock.close(code=1001, message=b"Server shutting down")


def install(sio: socketio.AsyncServer, compress: bool) -> type[TrackedWebSocket]:
    """Make this server's engine.io use the tracked transport (one class per server)."""
    transport = type("ServerWebSocket", (TrackedWebSocket,),
                     {"compress": compress, "open": weakref.WeakSet()})
    sio.eio._async = {**sio.eio._async, "websocket": transport}
    return transport


async def close_all(transport: type[TrackedWebSocket], grace: float) -> None:
    sockets = list(transport.open)
    if sockets:
        await asyncio.wait_for(
            asyncio.gather(*(s.going_away() for s in sockets), return_exceptions=True), grace)
