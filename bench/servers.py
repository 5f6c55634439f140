"""Servers under test: ChatAPI and the two bare baselines, each a subprocess on a loopback port.

Every server is started fresh for one workload (its own temp directory and SQLite file),
pinned to CPU 0 when `taskset` is available, and stopped (SIGTERM, then SIGKILL of its
process group) afterwards. `prepare()` gives the credential and room ids the load generator
uses: for ChatAPI it creates a client with the admin key and the rooms over REST; the
baselines take any room name and no credential.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV_BIN = Path(sys.executable).parent

# What each server can be driven with: raw WebSocket, Socket.IO, REST publish, storage.
CAPABILITIES: dict[str, frozenset[str]] = {
    "chatapi": frozenset({"ws", "sio", "rest", "storage"}),
    "aiohttp": frozenset({"ws", "rest"}),
    "sio": frozenset({"sio"}),
    "chatapi-2node": frozenset({"ws", "sio", "rest"}),
}
LABELS = {
    "chatapi": "ChatAPI",
    "chatapi-2node": "ChatAPI, 2 nodes + Redis",
    "aiohttp": "bare aiohttp loop",
    "sio": "bare python-socketio",
}

# The bench drives thousands of users through one credential from one address, so the
# per-credential limits that protect a real deployment are lifted for it.
CHATAPI_BENCH_ENV = {
    "CHATAPI_LOG_LEVEL": "warning",
    "CHATAPI_RATE_LIMIT_PER_SECOND": "1000000",
    "CHATAPI_RATE_LIMIT_BURST": "1000000",
    "CHATAPI_WS_EVENTS_PER_SECOND": "1000000",
    "CHATAPI_WS_EVENTS_BURST": "1000000",
    "CHATAPI_MAX_CONNECTIONS_PER_CREDENTIAL": "1000000",
    "CHATAPI_DRAIN_SECONDS": "2",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def taskset_prefix(cpu: int | None) -> list[str]:
    """`taskset -c CPU` when pinning is possible (taskset present, ≥ 2 CPUs), else nothing."""
    if cpu is None or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(cpu)]


def chatapi_available(command: list[str]) -> bool:
    """True when `chatapi serve --help` runs (the server exists in this tree)."""
    try:
        done = subprocess.run([*command, "--help"], capture_output=True, timeout=20, cwd=REPO)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@dataclass
class Server:
    """One server process under test."""

    kind: str
    workdir: Path
    cpu: int | None = 0
    chatapi_command: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    database_url: str | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    admin_key: str = ""
    token: str = ""
    log_path: Path | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        return [self.pid]

    @property
    def ports(self) -> list[int]:
        return [self.port]

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    def command(self) -> list[str]:
        if self.kind == "chatapi":
            db = self.database_url or f"sqlite:///{self.workdir / 'chatapi.db'}"
            return [*self.chatapi_command, "--host", "127.0.0.1", "--port", str(self.port),
                    "--database-url", db]
        script = BENCH_DIR / "baselines" / f"{self.kind}_broadcast.py"
        return [sys.executable, str(script), "--host", "127.0.0.1", "--port", str(self.port)]

    def start(self, timeout: float = 40.0) -> None:
        """Start the process and wait until `/healthz` answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = dict(os.environ)
        env.pop("CHATAPI_REDIS_URL", None)
        if self.kind == "chatapi":
            self.admin_key = self.admin_key or "bench-admin-" + secrets.token_hex(16)
            env.update(CHATAPI_BENCH_ENV)
            env["CHATAPI_ADMIN_KEY"] = self.admin_key
        env.update(self.extra_env)
        self.log_path = self.workdir / f"{self.kind}-server.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*taskset_prefix(self.cpu), *self.command()], cwd=self.workdir, env=env,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}: "
                                   f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.kind} did not answer /healthz in {timeout}s: {self.log_tail()}")

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL of the whole process group; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=grace)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, method: str, path: str, body: dict[str, Any] | None = None,
            key: str | None = None) -> dict[str, Any]:
        """One JSON REST call; raises RuntimeError with the body on a non-2xx answer."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url(path), data=data, method=method)
        req.add_header("X-API-Key", key if key is not None else self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return dict(json.loads(resp.read() or b"{}"))
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path} → {e.code}: {e.read()[:300]!r}") from e

    def prepare(self, n_rooms: int) -> list[str]:
        """Credential (self.token) and `n_rooms` room ids to drive this server with."""
        if self.kind != "chatapi":
            return [str(uuid.uuid4()) for _ in range(n_rooms)]
        client = self.api("POST", "/api/v1/clients", {"name": "bench"}, key=self.admin_key)
        self.token = client["data"]["api_key"]

        def make(i: int) -> str:
            return str(self.api("POST", "/api/v1/rooms", {"name": f"bench-{i}"})["data"]["id"])

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(make, range(n_rooms)))


@dataclass
class Cluster:
    """Two ChatAPI nodes sharing one SQLite file and a private Redis (started here, on a free
    loopback port, no persistence). All three count as "the server": CPU and RSS are summed.
    """

    workdir: Path
    cpu: int | None = 0
    chatapi_command: list[str] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    nodes: list[Server] = field(default_factory=list)
    redis: subprocess.Popen[bytes] | None = None
    redis_port: int = 0
    kind: str = "chatapi-2node"

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    @property
    def token(self) -> str:
        return self.nodes[0].token

    @property
    def pids(self) -> list[int]:
        assert self.redis is not None
        return [n.pid for n in self.nodes] + [self.redis.pid]

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis_port = free_port()
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server not found (needed for the 2-node workload)")
        with open(self.workdir / "redis.log", "ab") as log:
            self.redis = subprocess.Popen(
                [*taskset_prefix(self.cpu), server, "--bind", "127.0.0.1", "--port",
                 str(self.redis_port), "--save", "", "--appendonly", "no"],
                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_redis()
        db = f"sqlite:///{self.workdir / 'shared.db'}"
        env = {**self.extra_env, "CHATAPI_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0"}
        admin = "bench-admin-" + secrets.token_hex(16)
        for name in ("node-a", "node-b"):
            node = Server("chatapi", self.workdir / name, cpu=self.cpu,
                          chatapi_command=self.chatapi_command, extra_env=env,
                          database_url=db, admin_key=admin)
            self.nodes.append(node)
            node.start()

    def _wait_redis(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not answer PING")

    def prepare(self, n_rooms: int) -> list[str]:
        rooms = self.nodes[0].prepare(n_rooms)
        for node in self.nodes[1:]:
            node.token = self.nodes[0].token
        return rooms

    def stop(self, grace: float = 5.0) -> int | None:
        codes = [n.stop(grace) for n in self.nodes]
        if self.redis is not None and self.redis.poll() is None:
            try:
                os.killpg(self.redis.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.redis.wait(timeout=5)
        return next((c for c in codes if c), codes[0] if codes else None)

    def alive(self) -> bool:
        return bool(self.nodes) and all(n.alive() for n in self.nodes) and \
            self.redis is not None and self.redis.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(f"[{n.workdir.name}] {n.log_tail(lines)}" for n in self.nodes)
