"""The schema-violating half of the REST fuzz (`test_rest_fuzz`): a file of its own, with a
server of its own, so that the two halves run on different cores."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from schemathesis import GenerationMode

from compat.http import Route
from tests.fuzz.conftest import HTTP_TIMEOUT, LiveServer
from tests.fuzz.test_rest_fuzz import ROUTES, can_be_wrong, fuzz_operation, label


@pytest.mark.parametrize("route", [route for route in ROUTES if can_be_wrong(route)], ids=label)
def test_operation(live: LiveServer, schema: Any, keys: dict[str, Any], route: Route) -> None:
    fuzz_operation(live, schema, keys, route, GenerationMode.NEGATIVE)


def test_server_survived_without_a_traceback(live: LiveServer) -> None:
    assert live.alive()
    assert requests.get(f"{live.base_url}/healthz", timeout=HTTP_TIMEOUT).status_code == 200
    assert "Traceback" not in live.log(), live.log()[-5000:]
