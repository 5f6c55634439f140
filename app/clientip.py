"""Who is on the other end: the peer address, or `X-Forwarded-For`'s client when the peer is
one of the trusted proxies (`CHATAPI_TRUSTED_PROXIES`). Nothing else a request carries is
believed."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """`"10.0.0.1, 192.168.0.0/16, ::1"` as networks; a bad entry is a ValueError."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in spec.split(",") if part.strip())


def _trusted(address: str | None, networks: Iterable[Network]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(peer: str | None, forwarded_for: str | None,
              trusted: tuple[Network, ...]) -> str:
    """The address the caller's requests are counted against.

    From a trusted proxy, `X-Forwarded-For` is read right to left and the first hop that is
    not itself a trusted proxy is the client: entries left of it were written by the client
    and prove nothing."""
    address = peer or "unknown"
    if not trusted or not forwarded_for or not _trusted(peer, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address  # a garbled chain: count it against the proxy itself
        if not _trusted(hop, trusted):
            return hop
        address = hop
    return address


def request_ip(request: web.Request, trusted: tuple[Network, ...]) -> str:
    """`client_ip` of an aiohttp request."""
    return client_ip(request.remote, request.headers.get("X-Forwarded-For"), trusted)
