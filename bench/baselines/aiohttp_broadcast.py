"""Baseline: a bare aiohttp WebSocket broadcast server speaking ChatAPI's minimal subset.

- `GET /ws/{room}`: raw WebSocket (permessage-deflate declined). On connect the client gets
  `connection_status`, everyone already in the room gets `user_joined`; on close the rest
  get `user_left`.
- A client frame `{"type": "message", "data": {"content", "client_msg_id"?}}` is turned into a
  message envelope shaped like ChatAPI's, encoded once, and sent to every socket in the room
  with a plain `for ws in room: await ws.send_str(text)` loop; the sender also gets
  `message_ack`.
- `POST /api/v1/rooms/{room}/messages {sender_id, sender_name?, content}`: the same broadcast
  without storage (the reference for W3).
- `GET /healthz`.

Nothing is stored and there is no auth: this is the floor that ChatAPI's own fan-out is
measured against. Run: `python bench/baselines/aiohttp_broadcast.py --port 9001`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

ROOMS: web.AppKey[dict[str, set[web.WebSocketResponse]]] = web.AppKey("rooms", dict)
_seq = itertools.count(1)


def now_iso() -> str:
    """RFC 3339 UTC with milliseconds and a `Z`, like ChatAPI's timestamps."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(kind: str, room_id: str, data: dict[str, Any]) -> str:
    """One server → client frame, encoded once."""
    return json.dumps({"type": kind, "data": data, "timestamp": now_iso(), "room_id": room_id})


def make_message(room_id: str, sender_id: str, sender_name: str, body: dict[str, Any]) -> dict:
    """A message record with the same fields ChatAPI broadcasts (so frames are the same size)."""
    created = now_iso()
    return {
        "id": str(uuid.uuid4()),
        "room_id": room_id,
        "seq": next(_seq),
        "sender_id": sender_id,
        "sender_name": sender_name,
        "content": body.get("content", ""),
        "message_type": body.get("message_type", "text"),
        "meta": body.get("meta") or {},
        "client_msg_id": body.get("client_msg_id"),
        "created_at": created,
        "updated_at": created,
        "edited_at": None,
        "edit_reason": None,
        "is_deleted": False,
    }


async def broadcast(room: Iterable[web.WebSocketResponse], text: str) -> None:
    """The bare loop: every socket in the room, one `send_str` each."""
    for ws in list(room):
        if ws.closed:
            continue
        try:
            await ws.send_str(text)
        except ConnectionError:
            pass


async def ws_handler(request: web.Request) -> web.WebSocketResponse:
    room_id = request.match_info["room"]
    user_id = request.query.get("user_id") or f"anon-{uuid.uuid4().hex[:8]}"
    user_name = request.query.get("user_name") or user_id
    ws = web.WebSocketResponse(compress=False, max_msg_size=64 * 1024)
    await ws.prepare(request)
    room = request.app[ROOMS].setdefault(room_id, set())
    others = list(room)
    room.add(ws)  # before any await: two arrivals at once each see the other's join
    status = {"status": "connected", "user_id": user_id, "room_id": room_id,
              "online_users": [], "total_participants": len(room)}
    await ws.send_str(envelope("connection_status", room_id, status))
    joined = {"user_id": user_id, "user_name": user_name, "joined_at": now_iso(), "meta": {}}
    await broadcast(others, envelope("user_joined", room_id, joined))
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if frame.get("type") == "message":
                data = make_message(room_id, user_id, user_name, frame.get("data") or {})
                await broadcast(room, envelope("message", room_id, data))
                ack = {"client_msg_id": data["client_msg_id"], "id": data["id"],
                       "seq": data["seq"], "created_at": data["created_at"]}
                await ws.send_str(envelope("message_ack", room_id, ack))
            elif frame.get("type") == "ping":
                await ws.send_str(envelope("pong", room_id, {"server_time": now_iso()}))
    finally:
        room.discard(ws)
        left = {"user_id": user_id, "user_name": user_name, "left_at": now_iso()}
        await broadcast(room, envelope("user_left", room_id, left))
    return ws


async def rest_send(request: web.Request) -> web.Response:
    room_id = request.match_info["room"]
    body = await request.json()
    data = make_message(room_id, body["sender_id"], body.get("sender_name") or "", body)
    await broadcast(request.app[ROOMS].get(room_id, set()), envelope("message", room_id, data))
    return web.json_response({"data": data, "status": "success", "timestamp": now_iso()},
                             status=201)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app() -> web.Application:
    app = web.Application()
    app[ROOMS] = {}
    app.router.add_get("/ws/{room}", ws_handler)
    app.router.add_post("/api/v1/rooms/{room}/messages", rest_send)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port, print=None,
                access_log=None, backlog=4096)


if __name__ == "__main__":
    main()
