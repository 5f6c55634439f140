"""HTTP plumbing shared by every REST route: declaration, dispatch, errors, auth, limits, CORS.

A `Route` names its handler, credential and schemas in one place; `add_routes` registers it
(with and without a trailing slash) and records it for `app.openapi`, so the docs describe
exactly what the dispatcher validates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp_cors
from aiohttp import web
from marshmallow import Schema

from app import errors, schemas
from app.auth import ADMIN, CLIENT_KEY, PUBLIC, TENANT, Principal, authenticate
from app.clientip import request_ip
from app.config import Settings
from app.keys import LIMITER, SERVICES, SETTINGS, STORAGE
from app.metrics import HTTP_REQUESTS
from app.ratelimit import Decision, Limit, charge_all, principal_charges
from app.services import Services
from app.timeutil import now_ts
from storage import StorageUnavailable

log = logging.getLogger("chatapi.http")

__all__ = ["ADMIN", "CLIENT_KEY", "PUBLIC", "TENANT"]

ANONYMOUS = Principal(kind="anonymous")
BODY_READ_TIMEOUT_SECONDS = 30.0
CORS_ALLOW_HEADERS = ("X-API-Key", "Authorization", "Content-Type")
CORS_EXPOSE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                       "Retry-After")
_PATH_PARAM = re.compile(r"{(\w+)}")

RATE = web.RequestKey("rate", Decision)


@dataclass(frozen=True)
class Call:
    """One parsed, validated request as a handler sees it."""

    request: web.Request
    principal: Principal
    path: dict[str, Any]
    query: dict[str, Any]
    body: dict[str, Any]

    @property
    def services(self) -> Services:
        return self.request.app[SERVICES]


@dataclass(frozen=True)
class Result:
    """What a handler returns: `data` (a list when the route is `many`), or a `message`."""

    data: Any = None
    status: int = 200
    total: int | None = None
    message: str | None = None


Handler = Callable[[Call], Awaitable["Result | web.StreamResponse"]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: frozenset[str] = TENANT  # the credential kinds it takes; PUBLIC: none needed
    limited: bool = True  # counted against the caller's rate limit
    body: type[Schema] | None = None
    query: type[Schema] = schemas.EmptyQuery
    response: type[Schema] | None = None  # None: `{message, status}` (or a raw response)
    many: bool = False
    status: int = 200
    alt_statuses: tuple[int, ...] = ()
    raw_type: str | None = None  # content type of a handler's own web.Response
    description: str = ""

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)


ROUTES = web.AppKey("routes", list)
# Paths that count their own traffic (SPEC §4-5): the WebSocket handshakes.
SELF_LIMITED_PREFIXES = ("/ws/", "/socket.io/")


# -- registration --------------------------------------------------------------------------

def add_routes(app: web.Application, routes: list[Route]) -> None:
    """Register each route with and without a trailing slash, and record it for the docs."""
    if ROUTES not in app:
        app[ROUTES] = []
    for route in routes:
        endpoint = _endpoint(route)
        for path in _both_paths(route.path):
            app.router.add_route(route.method, path, endpoint)
        app[ROUTES].append(route)


def _both_paths(path: str) -> list[str]:
    bare = path.rstrip("/")
    return [bare, bare + "/"] if bare else ["/"]


def _endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The route's handler behind its own authorization: whatever middleware ran or was
    skipped, no handler runs for a caller without a credential of the route's kinds."""
    async def endpoint(request: web.Request) -> web.StreamResponse:
        principal = await _authorize(route, request)
        call = await _parse(route, request, principal)
        result = await route.handler(call)
        if isinstance(result, web.StreamResponse):
            return result
        return _render(route, call, result)

    endpoint.route = route  # type: ignore[attr-defined]
    return endpoint


async def _parse(route: Route, request: web.Request, principal: Principal) -> Call:
    settings = request.app[SETTINGS]
    path = schemas.load(schemas.PathIds, dict(request.match_info), settings) \
        if route.path_params else {}
    query = schemas.load(route.query, query_dict(request), settings)
    body = schemas.load(route.body, await read_json(request, settings), settings) \
        if route.body is not None else {}
    return Call(request, principal, path, query, body)


def query_dict(request: web.Request) -> dict[str, str]:
    """The query string as a dict; a parameter given twice is a validation error."""
    out: dict[str, str] = {}
    for key, value in request.query.items():
        if key in out:
            raise errors.ValidationFailed(
                errors=[{"field": key, "message": "Given more than once."}])
        out[key] = value
    return out


async def read_json(request: web.Request, settings: Settings) -> Any:
    """The body as a JSON object: 413 when too large, 415 when not JSON-typed, 400 when bad."""
    length = request.content_length
    if length is not None and length > settings.max_body_bytes:
        raise _too_large(settings)
    if not request.body_exists:
        raise errors.InvalidJson("A JSON object body is required")
    if request.content_type != "application/json":
        raise errors.UnsupportedMediaType(
            f"Content-Type must be application/json, not {request.content_type!r}")
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_SECONDS):
            raw = await request.read()
    except TimeoutError:
        raise errors.ApiError("Timed out reading the request body") from None
    data = schemas.parse_json(raw, settings)
    if not isinstance(data, dict):
        raise errors.InvalidJson("Request body must be a JSON object")
    return data


def _too_large(settings: Settings) -> errors.ApiError:
    return errors.PayloadTooLarge(
        f"Request body is larger than {settings.max_body_bytes} bytes",
        details={"max_bytes": settings.max_body_bytes})


# -- rendering -----------------------------------------------------------------------------

def json_response(payload: dict[str, Any], status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(payload), status=status, headers=headers,
                        content_type="application/json")


def success(data: Any, status: int = 200, pagination: dict[str, Any] | None = None
            ) -> web.Response:
    payload: dict[str, Any] = {"data": data, "status": "success", "timestamp": now_ts()}
    if pagination is not None:
        payload["pagination"] = pagination
    return json_response(payload, status)


def _render(route: Route, call: Call, result: Result) -> web.Response:
    if result.message is not None or route.response is None:
        return json_response({"message": result.message or "OK", "status": "success",
                              "timestamp": now_ts()}, result.status)
    data = schemas.dump(route.response, result.data, many=route.many)
    if not route.many:
        return success(data, result.status)
    skip, limit = call.query.get("skip", 0), call.query.get("limit", len(data))
    total = result.total if result.total is not None else len(data)
    return success(data, result.status, {"skip": skip, "limit": limit, "total": total,
                                         "has_more": skip + len(data) < total})


def error_response(exc: errors.ApiError) -> web.Response:
    payload: dict[str, Any] = {
        "status": "error", "detail": exc.detail, "error_code": exc.code,
        "status_code": exc.status, "timestamp": now_ts(),
    }
    if exc.errors:
        payload["errors"] = exc.errors
    if exc.details:
        payload["details"] = exc.details
    return json_response(payload, exc.status, dict(exc.headers))


def parser_error_response(status: int) -> web.Response:
    """The envelope for what aiohttp answers outside every middleware: requests its parser
    rejects (request line, headers, sizes) and failures before a handler runs. The
    connection is closed, as aiohttp does."""
    if status >= 500:
        exc: errors.ApiError = errors.InternalError()
    elif status == 413:
        exc = errors.PayloadTooLarge()
    else:
        exc = errors.ApiError("Malformed HTTP request")
    response = error_response(exc)
    response.force_close()
    return response


_HTTP_ERRORS: dict[int, type[errors.ApiError]] = {
    401: errors.InvalidCredentials, 403: errors.InsufficientPermissions,
    404: errors.ResourceNotFound, 405: errors.MethodNotAllowed, 413: errors.PayloadTooLarge,
    415: errors.UnsupportedMediaType, 422: errors.ValidationFailed,
    429: errors.RateLimitExceeded, 503: errors.ServiceUnavailable,
}


def _from_http(exc: web.HTTPException) -> errors.ApiError:
    """aiohttp's own 404/405/413/… as the API's error."""
    kind = _HTTP_ERRORS.get(exc.status)
    if kind is None:
        kind = errors.InternalError if exc.status >= 500 else errors.ApiError
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    if kind is errors.ApiError:
        return errors.ApiError(exc.reason, headers=headers)
    return kind(headers=headers)


# -- middlewares ---------------------------------------------------------------------------

def middlewares() -> list:
    """Outermost first: the error envelope (plus metrics and rate headers), then the rate
    limit of requests that no route counts itself (static files, unknown paths)."""
    return [_envelope_middleware, _unrouted_limit_middleware]


@web.middleware
async def _envelope_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    response = await _guarded(request, handler)
    decision = request.get(RATE)
    if decision is not None and not response.prepared:
        response.headers.update(decision.headers())
    HTTP_REQUESTS.labels(str(response.status)).inc()
    return response


async def _guarded(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http(exc))
    except StorageUnavailable:
        log.warning("storage unavailable during %s %s", request.method, request.path)
        return error_response(errors.ServiceUnavailable("Storage is unavailable"))
    except TimeoutError:
        log.warning("timed out during %s %s", request.method, request.path)
        return error_response(errors.ServiceUnavailable("Timed out; try again"))
    except ConnectionResetError:
        return error_response(errors.ApiError("Connection reset while reading the request"))
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(errors.InternalError())


@web.middleware
async def _unrouted_limit_middleware(request: web.Request, handler: Any
                                     ) -> web.StreamResponse:
    """Routes charge their caller themselves (`_authorize`); the WebSocket handshakes have
    their own limits. Which one a request is, only the matched resource decides."""
    if getattr(request.match_info.handler, "route", None) is None \
            and not _self_limited(request):
        await _charge(request, [(_ip_key(request), None)])
    return await handler(request)


def _self_limited(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical.startswith(SELF_LIMITED_PREFIXES)


async def _authorize(route: Route, request: web.Request) -> Principal:
    """Who the caller is (only the credential says), charged to its bucket; 401 without a
    valid credential, 403 with one of another kind than the route takes."""
    if route.auth == PUBLIC:
        if route.limited:
            await _charge(request, [(_ip_key(request), None)])
        return ANONYMOUS
    settings = request.app[SETTINGS]
    try:
        principal = await authenticate(request.app[STORAGE], settings.admin_key,
                                       credential(request))
    except errors.ApiError:
        await _charge(request, [(_ip_key(request), None)])  # failed guesses cost the caller's IP
        raise
    # the credential's bucket, then its tenant's: minting user tokens (each with a bucket
    # of its own) does not multiply a tenant's limit
    await _charge(request, principal_charges(principal, settings))
    principal.require(route.auth)
    return principal


def _ip_key(request: web.Request) -> str:
    return f"ip:{request_ip(request, request.app[SETTINGS].trusted_proxy_networks)}"


async def _charge(request: web.Request, charges: list[tuple[str, Limit | None]]) -> None:
    decision = await charge_all(request.app[LIMITER], charges)
    request[RATE] = decision
    if not decision.allowed:
        raise errors.RateLimitExceeded(
            f"Too many requests; retry in {decision.headers()['Retry-After']} s",
            headers={"Retry-After": decision.headers()["Retry-After"]})


def credential(request: web.Request) -> str | None:
    """`X-API-Key`, else `Authorization: Bearer …`."""
    key = request.headers.get("X-API-Key", "").strip()
    if key:
        return key
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


# -- CORS ----------------------------------------------------------------------------------

def setup_cors(app: web.Application) -> None:
    """CORS (aiohttp-cors) on every route; preflight answered for each."""
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False, expose_headers=CORS_EXPOSE_HEADERS,
        allow_headers=CORS_ALLOW_HEADERS, allow_methods="*", max_age=600)
    cors = aiohttp_cors.setup(
        app, defaults={origin: options for origin in app[SETTINGS].cors_origin_list})
    for route in list(app.router.routes()):
        if route.method in ("OPTIONS", "HEAD", "*"):
            continue
        try:
            cors.add(route)
        except (ValueError, RuntimeError, TypeError) as exc:
            log.debug("no CORS for %s %s: %s", route.method, route.resource, exc)
