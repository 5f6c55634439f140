"""python-socketio's AsyncRedisManager with our local fan-out (imported only when chosen)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from socketio import AsyncRedisManager

from app.realtime.emitter import FastLocalEmit
from app.realtime.redis_presence import MAX_CONNECTIONS, connect

log = logging.getLogger("chatapi.pubsub")

TIMEOUT_SECONDS = 1.0
LISTEN_RETRY_FIRST_SECONDS = 0.5
LISTEN_RETRY_CAP_SECONDS = 5.0  # upstream grows to 60 s: too long to "resume by itself"
PUBLISH_SKIP_SECONDS = 1.0  # after a failed publish, drop (not queue) events this long


class FastRedisManager(AsyncRedisManager, FastLocalEmit):
    """Pub/sub is python-socketio's; each node's local delivery is FastLocalEmit's.

    Hardened for Redis outages: publishing is bounded and fails soft (its own fail-fast
    client, one log line per outage); the listener retries with a capped backoff and is
    restarted if python-socketio's listening task ever returns.
    Can't do: deliver events published while this node was cut off from Redis; clients
    close that gap with `last_seq` / `after_seq` (SPEC §6).
    """

    def __init__(self, url: str, channel: str, max_connections: int = MAX_CONNECTIONS) -> None:
        # upstream's own client only carries the subscription: one connection
        super().__init__(url, channel=channel, redis_options={
            "socket_connect_timeout": TIMEOUT_SECONDS, "socket_timeout": TIMEOUT_SECONDS,
            "retry": Retry(NoBackoff(), 1), "max_connections": 2,
            "client_name": f"{channel}:sub"})
        self._publisher = connect(url, TIMEOUT_SECONDS, max_connections, name=channel)
        self._skip_until = 0.0
        self._publishing = True
        self._listening = False

    async def _publish(self, data: Any) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() < self._skip_until:
            return
        text = self.json.dumps(data)
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                await self._publisher.publish(self.channel, text)
        except Exception as exc:
            self._skip_until = loop.time() + PUBLISH_SKIP_SECONDS
            if self._publishing:
                self._publishing = False
                log.warning("pub/sub: cannot publish to Redis (%s); other nodes miss events "
                            "until it is back", exc or type(exc).__name__)
            return
        if not self._publishing:
            self._publishing = True
            log.warning("pub/sub: publishing to Redis again")

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        delay = LISTEN_RETRY_FIRST_SECONDS
        while True:
            try:
                await self._close_listener()
                self._redis_connect()
                async with asyncio.timeout(TIMEOUT_SECONDS):
                    await self.pubsub.subscribe(self.channel)
                if not self._listening:
                    self._listening = True
                    log.info("pub/sub: listening on %s", self.channel)
                delay = LISTEN_RETRY_FIRST_SECONDS
                async for message in self.pubsub.listen():
                    yield message
            except Exception as exc:
                if self._listening:
                    self._listening = False
                    log.warning("pub/sub: lost Redis (%s); retrying", exc or type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LISTEN_RETRY_CAP_SECONDS)

    async def _close_listener(self) -> None:
        pubsub, redis, self.pubsub, self.redis = self.pubsub, self.redis, None, None
        for resource in (pubsub, redis):
            if resource is not None:
                try:
                    async with asyncio.timeout(TIMEOUT_SECONDS):
                        await resource.aclose()
                except Exception:
                    log.debug("closing a lost Redis connection failed", exc_info=True)

    async def _thread(self) -> None:
        """Upstream's listening task, started again if it ever returns (it logs and ends)."""
        while True:
            await super()._thread()
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                return
            log.error("pub/sub: listener stopped; restarting it")
            await asyncio.sleep(LISTEN_RETRY_FIRST_SECONDS)

    async def close(self) -> None:
        """Stop listening and close both Redis clients."""
        thread = getattr(self, "thread", None)
        if isinstance(thread, asyncio.Future):
            thread.cancel()
            await asyncio.gather(thread, return_exceptions=True)
        await self._close_listener()
        await self._publisher.aclose()
