"""Storage seen from real `chatapi serve` processes: MongoDB unreachable, SQLite shared by two."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp

from tests.multinode.conftest import ADMIN_KEY, Cluster, Rest, new_room, tenant


async def test_unreachable_mongodb_starts_answers_503_and_stops_cleanly(
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    cluster = Cluster(tmp_path, redis_url="")
    try:
        node, = cluster.start(database_url="mongodb://127.0.0.1:1/chatapi")
        started = time.monotonic()
        while node.status("/readyz") != 503:
            assert time.monotonic() - started < 5, node.output()
            await asyncio.sleep(0.1)
        assert node.status("/healthz") == 200
        for key in (ADMIN_KEY, "sk_test_not_checkable_now"):
            path = "/clients" if key == ADMIN_KEY else "/rooms"
            async with asyncio.timeout(10):
                code, body = await Rest(http, key).call(node, "GET", path)
            assert code == 503, body
            assert body["status"] == "error" and body["error_code"] == "SERVICE_UNAVAILABLE"
            assert body["status_code"] == 503
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(10) == 0
        assert "Traceback" not in node.output()
    finally:
        cluster.stop()


async def test_two_processes_share_one_sqlite_file_without_sharing_a_seq(
        tmp_path: Path, http: aiohttp.ClientSession) -> None:
    cluster = Cluster(tmp_path, redis_url="")
    try:
        a, b = cluster.start(2)
        api = await tenant(http, a)
        room = await new_room(api, b)
        stored = await asyncio.gather(*(
            api.send((a, b)[i % 2], room, f"u{i}", f"m{i}") for i in range(100)))
        assert sorted(m["seq"] for m in stored) == list(range(1, 101))
        _, body = await api.call(b, "GET", f"/rooms/{room}")
        assert body["data"]["last_seq"] == 100 and body["data"]["message_count"] == 100
    finally:
        assert not cluster.stop()
