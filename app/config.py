"""Settings: every one has a `--flag` and a `CHATAPI_*` environment variable; flags win."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import Any

from app.clientip import Network, parse_networks

ENV_PREFIX = "CHATAPI_"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8000
    database_url: str = "sqlite:///chatapi.db"
    redis_url: str = ""
    # Redis keys and the pub/sub channel start with this (several deployments, or tests,
    # can share one Redis).
    redis_prefix: str = "chatapi"
    admin_key: str = ""
    public_url: str = ""
    cors_origins: str = "*"
    drain_seconds: float = 10.0
    log_level: str = "info"
    # REST rate limit: a token bucket per credential.
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 200
    # Peers whose `X-Forwarded-For` is believed (IPs or CIDRs, comma-separated).
    trusted_proxies: str = ""
    # Raw WebSocket / Socket.IO limits.
    ws_compression: bool = False
    ws_max_frame_bytes: int = 64 * 1024
    ws_events_per_second: float = 20.0
    ws_events_burst: int = 60
    max_connections_per_credential: int = 1000
    send_queue_bytes: int = 1024 * 1024
    slow_consumer_seconds: float = 5.0
    heartbeat_seconds: float = 20.0
    recovery_limit: int = 500
    typing_throttle_seconds: float = 2.0
    typing_timeout_seconds: float = 6.0
    presence_ttl_seconds: float = 30.0
    # Content limits.
    max_content_length: int = 10_000
    max_meta_bytes: int = 16 * 1024
    max_meta_depth: int = 8
    max_body_bytes: int = 256 * 1024
    # Input
    # Levels of objects/arrays in any JSON a client sends (REST body, WebSocket frame,
    # Socket.IO event); deeper input is a validation error, never a RecursionError.
    max_json_depth: int = 32

    # Limits
    # REST bucket shared by all credentials of one tenant (0: 5x the per-credential one).
    tenant_rate_limit_per_second: float = 0.0
    tenant_rate_limit_burst: int = 0
    # A recovery replay costs one rate-limit token per this many replayed messages.
    recovery_messages_per_token: int = 50
    # Sockets per Redis client (a node has three: rate limits, presence, pub/sub publish).
    redis_max_connections: int = 32
    # SQLite list/search queries: their own connections, each query cut off after this.
    sqlite_read_connections: int = 2
    sqlite_read_timeout_seconds: float = 2.0

    # Transport bounds
    # engine.io long-polling sessions (Socket.IO before, or instead of, its WebSocket
    # upgrade) per client IP and in total; a new one over either gets 429 / 503.
    max_polling_sessions_per_ip: int = 500
    max_polling_sessions: int = 10_000
    # a polling POST's body must arrive within this many seconds (else 408)
    poll_body_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise ValueError(f"{ENV_PREFIX}TRUSTED_PROXIES: {exc}") from None

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @cached_property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    def demo_url(self, room_id: str, key: str) -> str:
        base = self.public_url or f"http://localhost:{self.port}"
        return f"{base.rstrip('/')}/?room={room_id}&token={key}"


def _coerce(kind: Any, raw: str, name: str) -> Any:
    if kind in (bool, "bool"):
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{name}: expected on/off, got {raw!r}")
    if kind in (int, "int"):
        return int(raw)
    if kind in (float, "float"):
        return float(raw)
    return raw


def from_env(env: Mapping[str, str] | None = None, base: Settings | None = None) -> Settings:
    """Settings from `CHATAPI_*` variables on top of `base` (defaults if None)."""
    env = os.environ if env is None else env
    changes: dict[str, Any] = {}
    for field in fields(Settings):
        key = ENV_PREFIX + field.name.upper()
        if key in env:
            changes[field.name] = _coerce(field.type, env[key], key)
    return replace(base or Settings(), **changes)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add one `--flag` per setting; unset flags stay None so the environment applies."""
    for field in fields(Settings):
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(flag, dest=field.name, default=None, metavar="VALUE",
                            help=f"env {ENV_PREFIX}{field.name.upper()}, default {field.default!r}")


def from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment, then flags on top."""
    settings = from_env(env)
    changes: dict[str, Any] = {}
    for field in fields(Settings):
        raw = getattr(args, field.name, None)
        if raw is not None:
            changes[field.name] = _coerce(field.type, raw, "--" + field.name.replace("_", "-"))
    return replace(settings, **changes)
