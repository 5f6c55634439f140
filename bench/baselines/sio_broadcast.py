"""Baseline: a bare python-socketio AsyncServer on aiohttp, ChatAPI's minimal Socket.IO subset.

- connect with `auth: {token?, user_id?, user_name?}` (no check).
- `join {room_id}` → enter the room, `user_joined` emitted to the room's earlier members,
  ack `{status: "ok", data: <connection_status data>}`.
- `message {room_id, content, client_msg_id?}` → `await sio.emit("message", envelope,
  room=room_id)` (python-socketio's own room emit), ack `{status: "ok", data: message}`.
- `leave {room_id}`; `user_left` on leave and on disconnect.
- `GET /healthz`.

Envelopes and message fields are the same as ChatAPI's (`aiohttp_broadcast.make_message`).
Run: `python bench/baselines/sio_broadcast.py --port 9002`.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from typing import Any

import socketio
from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from aiohttp_broadcast import make_message, now_iso


def env(kind: str, room_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "data": data, "timestamp": now_iso(), "room_id": room_id}


def make_server() -> tuple[socketio.AsyncServer, web.Application]:
    """The python-socketio server and the aiohttp app it is attached to."""
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*",
                               ping_interval=20, ping_timeout=20)
    app = web.Application()
    sio.attach(app)
    users: dict[str, tuple[str, str]] = {}

    @sio.event
    async def connect(sid: str, _environ: dict, auth: dict | None = None) -> bool:
        auth = auth or {}
        user_id = auth.get("user_id") or f"anon-{uuid.uuid4().hex[:8]}"
        users[sid] = (user_id, auth.get("user_name") or user_id)
        return True

    @sio.event
    async def join(sid: str, data: dict) -> dict:
        room_id = data["room_id"]
        user_id, user_name = users[sid]
        await sio.enter_room(sid, room_id)
        joined = {"user_id": user_id, "user_name": user_name, "joined_at": now_iso(), "meta": {}}
        await sio.emit("user_joined", env("user_joined", room_id, joined), room=room_id,
                       skip_sid=sid)
        status = {"status": "connected", "user_id": user_id, "room_id": room_id,
                  "online_users": [], "total_participants": 0}
        return {"status": "ok", "data": status}

    @sio.event
    async def leave(sid: str, data: dict) -> dict:
        await _leave(sid, data["room_id"])
        return {"status": "ok"}

    async def _leave(sid: str, room_id: str) -> None:
        await sio.leave_room(sid, room_id)
        user_id, user_name = users[sid]
        left = {"user_id": user_id, "user_name": user_name, "left_at": now_iso()}
        await sio.emit("user_left", env("user_left", room_id, left), room=room_id)

    @sio.event
    async def message(sid: str, data: dict) -> dict:
        room_id = data["room_id"]
        user_id, user_name = users[sid]
        msg = make_message(room_id, user_id, user_name, data)
        await sio.emit("message", env("message", room_id, msg), room=room_id)
        return {"status": "ok", "data": msg}

    @sio.event
    async def disconnect(sid: str, *_args: Any) -> None:
        for room_id in list(sio.rooms(sid)):
            if room_id != sid:
                await _leave(sid, room_id)
        users.pop(sid, None)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_get("/healthz", healthz)
    return sio, app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9002)
    args = parser.parse_args()
    _sio, app = make_server()
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None, backlog=4096)


if __name__ == "__main__":
    main()
