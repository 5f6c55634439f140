"""Real-time layer (stub: replaced by the real-time work)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    return None
