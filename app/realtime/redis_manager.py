"""python-socketio's AsyncRedisManager with our local fan-out (imported only when chosen)."""

from __future__ import annotations

from socketio import AsyncRedisManager

from app.realtime.emitter import FastLocalEmit


class FastRedisManager(AsyncRedisManager, FastLocalEmit):
    """Pub/sub is python-socketio's; each node's local delivery is FastLocalEmit's."""
