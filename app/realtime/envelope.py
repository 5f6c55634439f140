"""The one wire shape, `{type, data, timestamp, room_id}`, encoded once per event.

Server → client WebSocket frames are unmasked, so the frame bytes for an event are the same
for every raw recipient: `text_frame` builds them once and the fan-out writes them as is.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from app.timeutil import now_ts

_LEN2 = struct.Struct("!BBH").pack
_LEN3 = struct.Struct("!BBQ").pack
_FIN_TEXT = 0x81
_FIN_BINARY = 0x82
_FIN_CLOSE = 0x88

PING_FRAME = b"\x89\x00"


def envelope(event_type: str, data: dict[str, Any], room_id: str | None) -> dict[str, Any]:
    return {"type": event_type, "data": data, "timestamp": now_ts(), "room_id": room_id}


def dumps(value: Any) -> str:
    """Compact JSON, UTF-8 kept as is (emoji round-trip without escapes)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def text_frame(payload: bytes, first: int = _FIN_TEXT) -> bytes:
    """A complete, unmasked, final WebSocket text frame carrying `payload`."""
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return _LEN2(first, 126, size) + payload
    return _LEN3(first, 127, size) + payload


def binary_frame(payload: bytes) -> bytes:
    """The same for binary payloads (engine.io's binary packets)."""
    return text_frame(payload, _FIN_BINARY)


def close_frame(code: int, reason: str) -> bytes:
    """A close frame: the code and a reason cut to fit a control frame (125 bytes)."""
    cut = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    payload = struct.pack("!H", code) + cut
    return bytes((_FIN_CLOSE, len(payload))) + payload


def pong_frame(payload: bytes) -> bytes:
    """Answer to a client PING (control frames carry at most 125 bytes)."""
    return bytes((0x8A, len(payload[:125]))) + payload[:125]
