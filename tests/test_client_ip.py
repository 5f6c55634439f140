"""Whose bucket a request counts against: only the peer, or a trusted proxy's report."""

from __future__ import annotations

import aiohttp
import pytest

from app.clientip import client_ip, parse_networks
from app.config import Settings
from tests.conftest import ServerFactory

PROXIES = parse_networks("10.0.0.1, 192.168.0.0/16")


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not a proxy: its header is ignored
    ("10.0.0.1", "198.51.100.1", "198.51.100.1"),
    ("10.0.0.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # the client wrote 6.6.6.6
    ("10.0.0.1", "198.51.100.1, 192.168.4.4", "198.51.100.1"),  # two proxies deep
    ("10.0.0.1", "192.168.4.4", "192.168.4.4"),  # only proxies: the innermost
    ("10.0.0.1", "not-an-ip", "10.0.0.1"),
    ("10.0.0.1", "", "10.0.0.1"),
    ("10.0.0.1", None, "10.0.0.1"),
    (None, "198.51.100.1", "unknown"),
])
def test_client_ip(peer: str | None, forwarded: str | None, expected: str) -> None:
    assert client_ip(peer, forwarded, PROXIES) == expected


def test_no_trusted_proxies_believes_no_header() -> None:
    assert client_ip("10.0.0.1", "198.51.100.1", ()) == "10.0.0.1"


def test_a_bad_trusted_proxy_entry_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="CHATAPI_TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.1, not-a-network")


async def _statuses(http: aiohttp.ClientSession, url: str, count: int,
                    headers: dict[str, str] | None = None) -> list[int]:
    statuses = []
    for _ in range(count):
        async with http.get(url, headers=headers) as resp:
            statuses.append(resp.status)
    return statuses


async def test_forwarded_clients_get_buckets_of_their_own_behind_a_trusted_proxy(
        make_server: ServerFactory, http: aiohttp.ClientSession) -> None:
    server = await make_server(rate_limit_per_second=0.001, rate_limit_burst=2,
                               trusted_proxies="127.0.0.1")
    url = str(server.make_url("/metrics"))
    assert await _statuses(http, url, 3, {"X-Forwarded-For": "198.51.100.1"}) == [200, 200, 429]
    assert await _statuses(http, url, 2, {"X-Forwarded-For": "198.51.100.2"}) == [200, 200]


async def test_forwarded_for_from_an_untrusted_peer_changes_nothing(
        make_server: ServerFactory, http: aiohttp.ClientSession) -> None:
    server = await make_server(rate_limit_per_second=0.001, rate_limit_burst=2)
    url = str(server.make_url("/metrics"))
    assert await _statuses(http, url, 2, {"X-Forwarded-For": "198.51.100.1"}) == [200, 200]
    assert await _statuses(http, url, 1, {"X-Forwarded-For": "198.51.100.2"}) == [429]


async def test_health_probes_answer_when_the_callers_bucket_is_spent(
        make_server: ServerFactory, http: aiohttp.ClientSession) -> None:
    """Behind a proxy every caller shares one address: probes must not share its fate."""
    server = await make_server(rate_limit_per_second=0.001, rate_limit_burst=1)
    assert await _statuses(http, str(server.make_url("/metrics")), 2) == [200, 429]
    assert await _statuses(http, str(server.make_url("/healthz")), 3) == [200, 200, 200]
    assert await _statuses(http, str(server.make_url("/readyz")), 3) == [200, 200, 200]
