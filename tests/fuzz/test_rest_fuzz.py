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
from tests.fuzz import hostile
from tests.fuzz.conftest import HTTP_TIMEOUT, LiveServer

# Generated requests per operation and generation mode (schema-valid, schema-violating),
# plus HOSTILE_EXAMPLES_PER_OPERATION for routes with a body: 250 cases per operation and
# 60 more per body route. Generation costs ~20 ms a case on the client side.
EXAMPLES_PER_OPERATION = 125
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
ROUTES: list[Route] = [*rest.ROUTES, *ops.ROUTES, *openapi.ROUTES_OWN]

# Hostile values (tests/fuzz/hostile.py) put into one field of a valid body, per body route.
HOSTILE_EXAMPLES_PER_OPERATION = 60
BODY_ROUTES = [route for route in ROUTES if route.body is not None]
VALID_FIELDS = {"name": "fuzz", "content": "hello", "sender_id": "fuzzer", "user_id": "fuzzer",
                "title": "t"}
ERROR_FIELDS = {"status", "detail", "error_code", "status_code", "timestamp"}

# Hostile value pieces that hit bugs being fixed on other branches, with the reproducer.
# Delete each entry once its fix is merged.
KNOWN_BUGS_UNTIL_MERGE: dict[str, str] = {}


def label(route: Route) -> str:
    return f"{route.method} {route.path}"


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


@pytest.mark.parametrize("route", ROUTES, ids=label)
def test_operation(live: LiveServer, schema: Any, keys: dict[str, Any], route: Route) -> None:
    """Schema-valid requests; the schema-violating ones are in `test_rest_fuzz_negative`, a
    file of its own so that the halves run on different cores."""
    fuzz_operation(live, schema, keys, route, GenerationMode.POSITIVE)


def fuzz_operation(live: LiveServer, schema: Any, keys: dict[str, Any], route: Route,
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



@pytest.fixture(scope="module")
def document(live: LiveServer) -> dict[str, Any]:
    return requests.get(f"{live.base_url}/openapi.json", timeout=HTTP_TIMEOUT).json()


hostile_values = st.one_of(*[
    strategy.map(lambda value, name=f"rest:value-{name}": (name, value))
    for name, strategy in hostile.VALUE_PIECES.items()
    if f"rest:value-{name}" not in KNOWN_BUGS_UNTIL_MERGE])


@pytest.mark.parametrize("route", BODY_ROUTES, ids=label)
def test_hostile_value_in_body(live: LiveServer, keys: dict[str, Any], document: dict[str, Any],
                               route: Route) -> None:
    """One field of a valid body set to a hostile value: a documented status, never a 5xx."""
    tenant = keys["tenant"]
    ids = real_ids(live, tenant["api_key"])
    url = live.base_url + route.path.format(**ids)
    documented = set(document["paths"][route.path][route.method.lower()]["responses"])
    declared = list(route.body._declared_fields)
    base = {k: v for k, v in VALID_FIELDS.items() if k in declared}
    session = requests.Session()

    @settings(max_examples=HOSTILE_EXAMPLES_PER_OPERATION, derandomize=True, database=None,
              deadline=None, suppress_health_check=list(HealthCheck), print_blob=False)
    @given(field=st.sampled_from([*declared, "unknown_field"]), piece=hostile_values)
    def run(field: str, piece: tuple[str, Any]) -> None:
        body = hostile.dumps({**base, field: piece[1]})
        key = ADMIN_KEY if route.auth == ADMIN else tenant["api_key"]
        resp = session.request(route.method, url, data=body.encode(), timeout=HTTP_TIMEOUT,
                               headers={"X-API-Key": key, "Content-Type": "application/json"})
        assert resp.status_code < 500, (piece[0], field, resp.status_code, resp.text[:300])
        assert str(resp.status_code) in documented, (piece[0], field, resp.status_code)
        if resp.status_code >= 400:
            assert ERROR_FIELDS <= set(resp.json()), resp.text[:300]
        if route.handler is rest.rotate_key and resp.status_code == 200:
            tenant["api_key"] = resp.json()["data"]["api_key"]
        live.assert_no_traceback((route.path, field, piece[0]))

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
