"""Typed keys for everything the aiohttp application holds (one place shows them all)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from app.config import Settings
from app.ratelimit import RateLimiter
from app.services import Services
from storage import Storage

if TYPE_CHECKING:
    from app.realtime.hub import Hub

SETTINGS = web.AppKey("settings", Settings)
STORAGE = web.AppKey("storage", Storage)
SERVICES = web.AppKey("services", Services)
# One limiter for REST and the real-time handshakes (and recovery replays).
LIMITER: web.AppKey[RateLimiter] = web.AppKey("limiter", Any)  # type: ignore[arg-type]
HUB: web.AppKey[Hub] = web.AppKey("hub", Any)  # type: ignore[arg-type]
LIMITER = web.AppKey("limiter", RateLimiter)  # type: ignore[type-abstract]  # REST and handshakes
