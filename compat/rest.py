"""REST API routes (stub: replaced by the REST work)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    return None
