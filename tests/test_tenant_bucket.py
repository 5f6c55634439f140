"""A tenant's REST requests also spend one tenant bucket : minting user
tokens, each with a fresh bucket of its own, does not multiply the tenant's limit."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest

from app.config import Settings
from app.ratelimit import Limit, MemoryRateLimiter, charge_all, tenant_limit

SLOW = 0.001  # tokens per second: nothing refills while a test runs


@pytest.fixture
async def server(make_server):
    return await make_server(rate_limit_per_second=SLOW, rate_limit_burst=3,
                             tenant_rate_limit_burst=5)


def user_token(tenant: dict[str, Any], user: str) -> str:
    claims = {"sub": user, "iss": tenant["id"], "exp": int(time.time()) + 600}
    return jwt.encode(claims, tenant["token_secret"], algorithm="HS256")


async def test_user_tokens_share_their_tenants_bucket(admin, tenant):
    """Four users with 3 tokens each would make 12 requests; the tenant's 5 stop them."""
    statuses = []
    for user in ("u1", "u2", "u3", "u4"):
        api = admin.as_key(user_token(tenant, user))
        for _ in range(2):
            status, body = await api.call("GET", "/rooms")
            statuses.append(status)
            if status == 429:
                assert body["error_code"] == "RATE_LIMIT_EXCEEDED"
    assert statuses == [200] * 5 + [429] * 3


async def test_another_tenant_keeps_its_own_bucket(admin, tenant):
    for user in ("u1", "u2", "u3"):
        for _ in range(2):
            await admin.as_key(user_token(tenant, user)).call("GET", "/rooms")
    status, other = await admin.call("POST", "/clients", {"name": f"t-{uuid.uuid4().hex[:8]}"})
    assert status == 201
    assert (await admin.as_key(other["data"]["api_key"]).call("GET", "/rooms"))[0] == 200
    assert (await admin.as_key(tenant["api_key"]).call("GET", "/rooms"))[0] == 429


async def test_a_refused_tenant_answers_with_retry_after(http, base_url, tenant):
    key = {"X-API-Key": tenant["api_key"]}
    for _ in range(3):
        async with http.get(base_url + "/api/v1/rooms", headers=key) as resp:
            assert resp.status == 200
    token = {"Authorization": f"Bearer {user_token(tenant, 'u9')}"}
    for expected in (200, 200, 429):
        async with http.get(base_url + "/api/v1/rooms", headers=token) as resp:
            assert resp.status == expected
    assert int(resp.headers["Retry-After"]) >= 1


def test_the_default_tenant_bucket_is_five_credentials_worth():
    assert tenant_limit(Settings()) == Limit(250.0, 1000)
    assert tenant_limit(Settings(tenant_rate_limit_per_second=7.0,
                                 tenant_rate_limit_burst=9)) == Limit(7.0, 9)


async def test_charge_all_stops_at_the_first_refusal():
    limiter = MemoryRateLimiter(SLOW, 2, clock=lambda: 0.0)
    tight = Limit(SLOW, 1)
    assert (await charge_all(limiter, [("a", None), ("t", tight)])).allowed
    refused = await charge_all(limiter, [("a", None), ("t", tight)])
    assert not refused.allowed and refused.limit == 1  # the tenant's bucket said no
    assert (await limiter.take("a", 0.0)).allowed is False  # "a" paid both times


async def test_a_cost_is_spent_whole_and_may_leave_a_debt():
    limiter = MemoryRateLimiter(1.0, 10, clock=lambda: 0.0)
    assert (await limiter.take("k", 4.0)).remaining == 6
    assert not (await limiter.take("k", 7.0)).allowed  # needs 7, holds 6: nothing spent
    assert (await limiter.take("k", 0.0)).remaining == 6  # cost 0 only asks
    assert (await limiter.take("k", 50.0, Limit(1.0, 6))).allowed  # capped need: a full bucket
    assert not (await limiter.take("k", 0.0, Limit(1.0, 6))).allowed  # in debt now
