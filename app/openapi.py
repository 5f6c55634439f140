"""`GET /openapi.json` built by apispec from the route table, and `GET /docs` (offline page).

Every documented operation comes from a registered `Route`, with the same marshmallow
schemas its dispatcher validates and renders with, so the document cannot drift.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from app import schemas
from compat.http import PUBLIC, ROUTES, Call, Route, add_routes, json_response

STATIC_DIR = Path(str(resources.files("static")))
SPEC = web.AppKey("openapi_spec", dict)  # filled on first request, when every route exists
AUTH = [{"ApiKey": []}, {"Bearer": []}]
ERROR_DESCRIPTIONS = {
    400: "Body is not a JSON object (INVALID_JSON)",
    401: "Missing or invalid credential (INVALID_CREDENTIALS, TOKEN_EXPIRED)",
    403: "Not allowed (INSUFFICIENT_PERMISSIONS, ROOM_ACCESS_DENIED, UNAUTHORIZED_EDIT)",
    404: "Not found (or another tenant's)",
    409: "Conflicts with the current state",
    413: "Body over the size limit (PAYLOAD_TOO_LARGE)",
    415: "Body is not application/json (UNSUPPORTED_MEDIA_TYPE)",
    422: "Validation failed (VALIDATION_ERROR, CONTENT_TOO_LONG)",
    429: "Rate limit exceeded (RATE_LIMIT_EXCEEDED), see Retry-After",
    503: "Storage unavailable (SERVICE_UNAVAILABLE)",
}
DESCRIPTION = (
    "Every response carries X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset "
    "(seconds until the bucket is full). Every path also works with a trailing slash. Errors "
    "use one envelope: {status: 'error', detail, error_code, status_code, timestamp, errors?, "
    "details?}."
)


def build_spec(routes: list[Route]) -> dict[str, Any]:
    """The OpenAPI 3 document for these routes."""
    plugin = MarshmallowPlugin()
    spec = APISpec(title="ChatAPI", version="1.0.0", openapi_version="3.0.3",
                   plugins=[plugin], info={"description": DESCRIPTION})
    plugin.map_to_openapi_type(schemas.UUIDStr, "string", "uuid")
    plugin.map_to_openapi_type(schemas.Timestamp, "string", "date-time")
    spec.components.security_scheme("ApiKey", {"type": "apiKey", "in": "header",
                                               "name": "X-API-Key"})
    spec.components.security_scheme("Bearer", {"type": "http", "scheme": "bearer",
                                               "description": "API key or user token (JWT)"})
    spec.components.schema("Error", schema=schemas.ErrorOut)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "tags": [route.tag], "summary": route.summary,
        "operationId": f"{route.method.lower()}_{route.handler.__name__}",
        "parameters": _parameters(route), "responses": _responses(route),
    }
    if route.description:
        operation["description"] = route.description
    if route.body is not None:
        operation["requestBody"] = {
            "required": True, "content": {"application/json": {"schema": route.body}}}
    if route.auth != PUBLIC:
        operation["security"] = AUTH
    return operation


def _parameters(route: Route) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"in": "path", "name": name, "required": True,
         "schema": {"type": "string", "format": "uuid"}}
        for name in route.path_params]
    if route.query._declared_fields:
        params.append({"in": "query", "schema": route.query})
    return params


def _responses(route: Route) -> dict[str, Any]:
    responses = {str(code): _success(route) for code in (route.status, *route.alt_statuses)}
    for code in _error_codes(route):
        responses[str(code)] = {"description": ERROR_DESCRIPTIONS[code],
                                "content": {"application/json": {"schema": schemas.ErrorOut}}}
    return responses


def _success(route: Route) -> dict[str, Any]:
    if route.raw_type is not None:
        kind = "object" if route.raw_type == "application/json" else "string"
        return {"description": "OK", "content": {route.raw_type: {"schema": {"type": kind}}}}
    schema = schemas.ActionOut if route.response is None else envelope(route.response, route.many)
    return {"description": "Success", "content": {"application/json": {"schema": schema}}}


def _error_codes(route: Route) -> list[int]:
    """Every status the dispatcher, the access middleware or the handler can answer with."""
    codes = {422, 429}  # 422: unknown or repeated query parameters, on every route
    if route.auth != PUBLIC:
        codes |= {401, 403, 503}
    if route.path_params:
        codes |= {404, 409}
    if _names_a_room(route):
        codes.add(404)
    if route.body is not None:
        codes |= {400, 413, 415}
    if route.path == "/readyz":
        codes.add(503)
    return sorted(codes)


def _names_a_room(route: Route) -> bool:
    """A body or query field that names a room: an unknown one is 404 ROOM_NOT_FOUND."""
    fields_named = set(route.query._declared_fields)
    if route.body is not None:
        fields_named |= set(route.body._declared_fields)
    return "room_id" in fields_named


@cache
def envelope(data: type[Schema], many: bool) -> type[Schema]:
    """`{data, status, timestamp}` (+ `pagination` for lists) around a response schema."""
    attrs: dict[str, Any] = {
        "data": fields.Nested(data, many=many, required=True),
        "status": fields.String(required=True, metadata={"example": "success"}),
        "timestamp": fields.String(required=True),
    }
    if many:
        attrs["pagination"] = fields.Nested(schemas.Pagination, required=True)
    name = data.__name__.removesuffix("Out") + ("Page" if many else "Envelope")
    return type(name, (Schema,), attrs)


async def openapi_json(call: Call) -> web.Response:
    app = call.request.app
    if not app[SPEC]:
        app[SPEC].update(build_spec(app[ROUTES]))
    return json_response(app[SPEC])


async def docs(_: Call) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "docs.html")


ROUTES_OWN = [
    Route("GET", "/openapi.json", openapi_json, "This document (OpenAPI 3)", "operations",
          auth=PUBLIC, raw_type="application/json"),
    Route("GET", "/docs", docs, "Human-readable API docs (offline)", "operations",
          auth=PUBLIC, raw_type="text/html"),
]


def setup(app: web.Application) -> None:
    app[SPEC] = {}
    add_routes(app, ROUTES_OWN)
