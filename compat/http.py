"""HTTP plumbing shared by every REST route (stub: replaced by the REST work)."""

from __future__ import annotations

from aiohttp import web

from app.config import Settings


def middlewares(settings: Settings) -> list:
    return []


def setup_cors(app: web.Application) -> None:
    return None
