"""Operations endpoints (SPEC §3): `/healthz`, `/readyz`, `/metrics`. No credential needed."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import errors, schemas
from app.keys import HUB, STORAGE
from app.metrics import REGISTRY
from compat.http import PUBLIC, Call, Result, Route, add_routes

CHECK_TIMEOUT_SECONDS = 2.0


async def healthz(_: Call) -> Result:
    return Result({"status": "ok", "checks": {}})


async def readyz(call: Call) -> Result:
    checks = await _readiness(call.request.app)
    if any(state != "ok" for state in checks.values()):
        raise errors.ServiceUnavailable("Not ready", details={"checks": checks})
    return Result({"status": "ok", "checks": checks})


async def _readiness(app: web.Application) -> dict[str, str]:
    checks = {"storage": await _probe(app[STORAGE].check)}
    hub = app.get(HUB)
    check = getattr(hub, "check", None)
    if check is not None and asyncio.iscoroutinefunction(check):
        checks["realtime"] = await _probe(check)
    return checks


async def _probe(check: Any) -> str:
    """'ok', or why not: every probe is bounded so /readyz always answers."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await check()
    except TimeoutError:
        return "timeout"
    except Exception as exc:
        return f"unavailable: {type(exc).__name__}"
    return "ok"


async def metrics(_: Call) -> web.Response:
    response = web.Response(body=generate_latest(REGISTRY))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


ROUTES = [
    Route("GET", "/healthz", healthz, "The process is up", "operations", auth=PUBLIC,
          limited=False, response=schemas.StatusOut),
    Route("GET", "/readyz", readyz, "Storage (and real-time backend) reachable",
          "operations", auth=PUBLIC, limited=False, response=schemas.StatusOut),
    Route("GET", "/metrics", metrics, "Prometheus metrics", "operations", auth=PUBLIC,
          raw_type="text/plain"),
]


def setup(app: web.Application) -> None:
    add_routes(app, ROUTES)
