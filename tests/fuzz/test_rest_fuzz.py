"""Schemathesis against `/openapi.json`: every documented operation, fixed seed, real server.

Each operation gets `EXAMPLES_PER_OPERATION` generated requests (schema-valid ones and
schema-violating ones), sent with the credential the route takes (the admin key for admin
routes, a client API key otherwise) so they get past 401. Path ids are random UUIDs or,
about half the time, real ids of resources created for that operation, so handlers run for
real and not only their 404. Every response must be: no 5xx, a status the document lists
for the operation, the content type it lists, and a body matching its schema.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import openapi, ops
from compat import rest
from compat.http import ADMIN, PUBLIC, Route
from tests.conftest import ADMIN_KEY
from tests.fuzz.conftest import HTTP_TIMEOUT, LiveServer

# Generated requests per operation and generation mode. About 60 operations x modes on 2
# shared cores: keep the whole module within 90 s.
EXAMPLES_PER_OPERATION = 60
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
ROUTES: list[Route] = [*rest.ROUTES, *ops.ROUTES, *openapi.ROUTES_OWN]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]

# Cases that hit bugs being fixed on other branches: (operation label, predicate name) ->
# predicate over the generated case. Delete each entry once its fix is merged.
KNOWN_BUGS_UNTIL_MERGE: dict[str, Any] = {}


def label(route: Route) -> str:
    return f"{route.method} {route.path}"


def json_depth(value: Any) -> int:
    """Nesting depth of a JSON value, iteratively (the value may be deeper than the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def known_bug(route: Route, case: Any) -> str | None:
    for name, (labels, predicate) in KNOWN_BUGS_UNTIL_MERGE.items():
        if label(route) in labels and predicate(case):
            return name
    return None


@pytest.fixture(scope="module")
def schema(live: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{live.base_url}/openapi.json", timeout=HTTP_TIMEOUT)


@pytest.fixture(scope="module")
def keys(live: LiveServer) -> dict[str, Any]:
    """The credential each route kind is fuzzed with; the tenant key follows rotate-key."""
    tenant = live.new_tenant()
    return {"tenant": tenant, ADMIN: ADMIN_KEY}


def real_ids(live: LiveServer, key: str) -> dict[str, str]:
    """Fresh resources for one operation (it may delete or deactivate them)."""
    _, room = live.api("POST", "/rooms", key, {"name": "fuzz", "meta": {"a": [1]}})
    room_id = room["data"]["id"]
    _, msg = live.api("POST", f"/rooms/{room_id}/messages", key,
                      {"sender_id": "fuzzer", "content": "hello"})
    _, note = live.api("POST", "/notifications", key,
                       {"title": "t", "content": "c", "room_id": room_id})
    return {"room_id": room_id, "message_id": msg["data"]["id"],
            "notification_id": note["data"]["id"], "client_id": live.new_tenant()["id"]}


def test_every_documented_operation_is_fuzzed(live: LiveServer) -> None:
    document = requests.get(f"{live.base_url}/openapi.json", timeout=HTTP_TIMEOUT).json()
    documented = {f"{method.upper()} {path}"
                  for path, item in document["paths"].items() for method in item}
    assert documented == {label(route) for route in ROUTES}


def can_be_wrong(route: Route) -> bool:
    """Whether schemathesis can generate a schema-violating request for the route at all."""
    return bool(route.path_params or route.body or route.query._declared_fields)


@pytest.mark.parametrize(("route", "mode"), [
    pytest.param(route, mode, id=f"{label(route)} {mode}")
    for route in ROUTES for mode in MODES
    if mode is GenerationMode.POSITIVE or can_be_wrong(route)])
def test_operation(live: LiveServer, schema: Any, keys: dict[str, Any], route: Route,
                   mode: GenerationMode) -> None:
    operation = schema[route.path][route.method]
    tenant = keys["tenant"]
    params = {name: value for name, value in real_ids(live, tenant["api_key"]).items()
              if name in route.path_params}
    strategy = operation.as_strategy(generation_mode=mode)
    if params:
        strategy = st.one_of(strategy,
                             operation.as_strategy(generation_mode=mode, path_parameters=params))
    session = requests.Session()

    @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None,
              deadline=None, suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=strategy)
    def run(case: Any) -> None:
        if known_bug(route, case):
            return
        headers = {} if route.auth == PUBLIC else {
            "X-API-Key": keys[ADMIN] if route.auth == ADMIN else tenant["api_key"]}
        response = case.call(base_url=live.base_url, session=session, headers=headers,
                             timeout=HTTP_TIMEOUT)
        case.validate_response(response, checks=CHECKS, headers=headers)
        if route.handler is rest.rotate_key and response.status_code == 200:
            tenant["api_key"] = response.json()["data"]["api_key"]

    try:
        run()
    finally:
        session.close()



def test_server_survived_without_a_traceback(live: LiveServer) -> None:
    """Runs last: the fuzzed server is still up and logged no unexpected failure."""
    assert live.alive()
    assert requests.get(f"{live.base_url}/healthz", timeout=HTTP_TIMEOUT).status_code == 200
    log = live.log()
    assert "Traceback" not in log, log[-5000:]
