"""A real ChatAPI server (`chatapi serve`, a subprocess) on a loopback port, for the fuzzers.

The fuzzers are ordinary synchronous Hypothesis tests: schemathesis calls the server with
`requests`, and the WebSocket and Socket.IO clients run on a client event loop in a
background thread (`LiveServer.run`, always with a timeout). The server is its own process
so it has its own interpreter lock (generation and serving use both cores), and what it
logs is kept to be checked for tracebacks.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import schemathesis

from compat.http import ADMIN
from tests.conftest import ADMIN_KEY
from tests.ports import free_port

T = TypeVar("T")
CHATAPI = str(Path(sys.executable).with_name("chatapi"))
START_TIMEOUT = 20.0
HTTP_TIMEOUT = 10.0
# Limits high enough that the fuzzers are not rate limited away (a 429 or 4004 is still a
# documented answer when it happens).
SERVER_FLAGS = {
    "--rate-limit-per-second": "10000", "--rate-limit-burst": "100000",
    "--ws-events-per-second": "10000", "--ws-events-burst": "100000",
    "--drain-seconds": "2", "--log-level": "info",
}


class LiveServer:
    """`chatapi serve` on a free loopback port, plus a client event loop in a thread."""

    def __init__(self, workdir: Path, **flags: str) -> None:
        self.port = free_port()
        self.log_path = workdir / "server.log"
        self.args = [CHATAPI, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                     "--database-url", f"sqlite:///{workdir / 'chatapi.db'}",
                     "--admin-key", ADMIN_KEY]
        for flag, value in {**SERVER_FLAGS, **flags}.items():
            self.args += [flag, value]
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_seen = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-clients",
                                       daemon=True)

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATAPI_")}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         env={**env, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if requests.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chatapi serve did not start:\n{self.log()}")
            time.sleep(0.1)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(START_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(START_TIMEOUT)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run `coro` on the client loop; give up (and cancel it) after `timeout` s."""
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self.loop)
        return future.result(timeout + 1.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def new_log(self) -> str:
        """What the server logged since the last call."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_seen)
            text = log.read()
        self.log_seen += len(text)
        return text.decode(errors="replace")

    def assert_no_traceback(self, what: object) -> None:
        """The server logged no traceback since the last check (`what` names the input)."""
        text = self.new_log()
        if "Traceback" in text:
            last = [line for line in text.splitlines() if line and not line[0].isspace()]
            raise AssertionError(f"server traceback after {what!r}: {last[-1][:300]}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, key: str, json: Any = None) -> tuple[int, Any]:
        resp = requests.request(method, f"{self.base_url}/api/v1{path}", json=json,
                                headers={"X-API-Key": key}, timeout=HTTP_TIMEOUT)
        return resp.status_code, resp.json()

    def new_tenant(self) -> dict[str, Any]:
        """A fresh client (tenant) created with the admin key: {id, api_key, token_secret…}."""
        status, body = self.api("POST", "/clients", ADMIN_KEY,
                                {"name": f"fuzz-{uuid.uuid4().hex[:8]}"})
        assert status == 201, body
        return body["data"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("fuzz"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def schema(live: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{live.base_url}/openapi.json", timeout=HTTP_TIMEOUT)


@pytest.fixture(scope="module")
def keys(live: LiveServer) -> dict[str, Any]:
    """The credential each route kind is fuzzed with; the tenant key follows rotate-key."""
    tenant = live.new_tenant()
    return {"tenant": tenant, ADMIN: ADMIN_KEY}
