"""Fill a ChatAPI room with many messages before the foundation (REST) workload.

Fast path: stop the server, write the messages through the project's own storage module
(`storage.create_storage(url).add_message`, so seq, counters and indexes are exactly what the
server would have made), start the server again. Fallback when that module cannot be used:
POST them through the server's REST API at full speed.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.servers import Server

BATCH = 256


def seed_messages(srv: Server, room_id: str, count: int, workdir: Any) -> int:
    """Put `count` messages in the room; returns the room's last seq afterwards."""
    room = srv.api("GET", f"/api/v1/rooms/{room_id}")["data"]
    db_url = srv.database_url or f"sqlite:///{workdir / 'chatapi.db'}"
    srv.stop()
    cmd = [sys.executable, "-m", "bench.seed", "--database-url", db_url, "--room", room_id,
           "--client-id", str(room["client_id"]), "--count", str(count)]
    from bench.servers import REPO, taskset_prefix

    done = subprocess.run([*taskset_prefix(srv.cpu), *cmd], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    srv.start()
    if done.returncode != 0:
        print(f"    storage seeding failed, seeding over REST: {done.stderr.strip()[-300:]}",
              flush=True)
        asyncio.run(_seed_rest(srv, room_id, count))
    return int(srv.api("GET", f"/api/v1/rooms/{room_id}")["data"]["last_seq"])


async def _seed_rest(srv: Server, room_id: str, count: int, concurrency: int = 32) -> None:
    import aiohttp

    url = srv.url(f"/api/v1/rooms/{room_id}/messages")
    headers = {"X-API-Key": srv.token}
    todo = iter(range(count))
    async with aiohttp.ClientSession(headers=headers) as http:

        async def worker() -> None:
            for i in todo:
                body = {"sender_id": f"seed-{i % 50}", "sender_name": "Seeder",
                        "content": f"seed message {i} " + "x" * 48}
                async with http.post(url, json=body) as resp:
                    if resp.status not in (200, 201):
                        raise RuntimeError(f"seed POST → {resp.status}: {await resp.text()}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def seed_storage(database_url: str, room_id: str, client_id: str, count: int) -> None:
    """Write `count` messages straight through the storage interface."""
    from app.timeutil import now_ts  # the server's own timestamp format
    from storage import create_storage

    store = create_storage(database_url)
    await store.open()
    try:
        for start in range(0, count, BATCH):
            batch = [_message(room_id, client_id, i, now_ts())
                     for i in range(start, min(count, start + BATCH))]
            await asyncio.gather(*(store.add_message(m) for m in batch))
    finally:
        await store.close()


def _message(room_id: str, client_id: str, i: int, at: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()), "room_id": room_id, "client_id": client_id,
        "sender_id": f"seed-{i % 50}", "sender_name": "Seeder",
        "content": f"seed message {i} " + "x" * 48, "message_type": "text", "meta": {},
        "client_msg_id": None, "created_at": at, "updated_at": at, "edited_at": None,
        "edit_reason": None, "is_deleted": False, "deleted_at": None, "deleted_by": None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description="seed a room through the storage module")
    p.add_argument("--database-url", required=True)
    p.add_argument("--room", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--count", type=int, required=True)
    a = p.parse_args()
    asyncio.run(seed_storage(a.database_url, a.room, a.client_id, a.count))


if __name__ == "__main__":
    main()
