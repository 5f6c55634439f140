"""Memory under attacks that once grew it without bound, against `chatapi serve` in a
subprocess.

Each attack runs for `ATTACK_SECONDS` (10 s, as long as the attacks first seen; every one is
refused, capped or cut within its first second, so the bounds do not depend on it), after a
`WARMUP_SECONDS` (1 s) round of the same attack. The server's RSS (/proc/<pid>/status
VmRSS) is sampled throughout:

- peak: at most `PEAK_BOUND_MB` (64 MB) over the RSS before the warm-up (cold);
- after: within `AFTER_BOUND_MB` (24 MB) of the RSS after the warm-up, within
  `SETTLE_SECONDS`. CPython keeps freed small-object arenas that are still partly used, so
  the first burst of a new allocation pattern raises RSS once (the peak bound covers it);
  a leak grows with every round, which this catches.

The attacks: engine.io polling handshakes as fast as they go (no credential); polling
POSTs over the 64 KiB limit; WebSocket PINGs from a client that never reads, on /ws (API
key) and on /socket.io (no credential); a Socket.IO binary event announcing ~10 billion
attachments followed by 64 KiB binary frames (API key). The server runs with the default
20 s heartbeat: no heartbeat cut ends an attack early.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import signal
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.ports import free_port
from tests.test_cli import CHATAPI, clean_env

ATTACK_SECONDS = 10.0
WARMUP_SECONDS = 1.0
PEAK_BOUND_MB = 64
AFTER_BOUND_MB = 24
SETTLE_SECONDS = 8.0
START_TIMEOUT = 20.0
IO_TIMEOUT = 5.0
WORKERS = 16  # concurrent HTTP attackers
SOCKETS = 4  # concurrent WebSocket attackers, each writing as fast as the server reads
MAX_PAYLOAD = 64 * 1024
ADMIN_KEY = "memory-test-admin-key-0123456789"


@dataclass
class Target:
    pid: int
    port: int
    api_key: str
    room_id: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024


def _wait_until_up(port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # the port opens when it opens: nothing to await


def _post(url: str, key: str, body: dict[str, str]) -> dict[str, str]:
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST", headers={
        "X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=IO_TIMEOUT) as resp:
        return json.loads(resp.read())["data"]


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Target]:
    """A fresh server per attack: memory one attack freed would hide the next one's growth."""
    port = free_port()
    tmp = tmp_path
    log = (tmp / "server.log").open("wb")  # a pipe nobody reads would fill and stall it
    proc = subprocess.Popen(
        [CHATAPI, "serve", "--host", "127.0.0.1", "--port", str(port),
         "--database-url", f"sqlite:///{tmp / 'chatapi.db'}", "--drain-seconds", "1"],
        stdout=log, stderr=subprocess.STDOUT,
        env=clean_env(CHATAPI_ADMIN_KEY=ADMIN_KEY))
    try:
        _wait_until_up(port)
        base = f"http://127.0.0.1:{port}/api/v1"
        client = _post(base + "/clients", ADMIN_KEY, {"name": "memory"})
        room = _post(base + "/rooms", client["api_key"], {"name": "lobby"})
        yield Target(proc.pid, port, client["api_key"], room["id"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# -- a WebSocket client that writes frames and never reads ----------------------------------

def frame(opcode: int, payload: bytes) -> bytes:
    """A client frame, masked with a zero key (the payload goes as is)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", size)
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", size)
    return head + b"\0\0\0\0" + payload


class Deaf:
    """A raw WebSocket that never reads what the server sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, target: Target, path: str) -> Deaf:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", target.port, limit=2**20), IO_TIMEOUT)
        writer.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def read_text(self) -> bytes:
        """One frame's payload (only for the handshake steps)."""
        head = await asyncio.wait_for(self.reader.readexactly(2), IO_TIMEOUT)
        size = head[1] & 0x7F
        if size == 126:
            size = struct.unpack("!H", await self.reader.readexactly(2))[0]
        return await asyncio.wait_for(self.reader.readexactly(size), IO_TIMEOUT)

    async def send(self, data: bytes) -> bool:
        """Write; False once the server has closed (or stopped reading for `IO_TIMEOUT`)."""
        if self.writer.is_closing():
            return False
        self.writer.write(data)
        try:
            await asyncio.wait_for(self.writer.drain(), IO_TIMEOUT)
        except (TimeoutError, ConnectionError):
            return False
        return True

    def abort(self) -> None:
        self.writer.transport.abort()


# -- the attacks ------------------------------------------------------------------------------

Attack = Callable[[Target, aiohttp.ClientSession], Awaitable[None]]
duration: contextvars.ContextVar[float] = contextvars.ContextVar("duration")


async def until_over(work: Callable[[], Awaitable[None]], patience: float = IO_TIMEOUT,
                     workers: int = WORKERS) -> None:
    """`work` again and again on `workers` concurrent workers for `duration` seconds, each
    given up after `patience` seconds."""
    deadline = asyncio.get_running_loop().time() + duration.get()

    async def worker() -> None:
        while asyncio.get_running_loop().time() < deadline:
            try:
                await asyncio.wait_for(work(), patience)
            except (TimeoutError, aiohttp.ClientError, ConnectionError,
                    asyncio.IncompleteReadError):
                pass

    await asyncio.gather(*(worker() for _ in range(workers)))


async def polling_sessions(target: Target, http: aiohttp.ClientSession) -> None:
    async def handshake() -> None:
        async with http.get(target.base + "/socket.io/?EIO=4&transport=polling") as resp:
            await resp.read()
            assert resp.status in (200, 429), resp.status

    await until_over(handshake)


async def oversized_posts(target: Target, http: aiohttp.ClientSession) -> None:
    body = b"4" + b"x" * (MAX_PAYLOAD + 16 * 1024)

    async def post() -> None:
        async with http.get(target.base + "/socket.io/?EIO=4&transport=polling") as resp:
            if resp.status != 200:
                return
            sid = json.loads((await resp.text())[1:])["sid"]
        url = f"{target.base}/socket.io/?EIO=4&transport=polling&sid={sid}"
        async with http.post(url, data=body) as resp:
            assert resp.status == 413, resp.status

    # a POST left unanswered is abandoned, as an attacker would
    await until_over(post, patience=0.5, workers=4 * WORKERS)


def deaf_pings(path: Callable[[Target], str], connect_first: bool = False) -> Attack:
    pings = frame(9, b"p" * 125) * 64

    async def attack(target: Target, http: aiohttp.ClientSession) -> None:
        async def session() -> None:
            sock = await Deaf.open(target, path(target))
            try:
                if connect_first:
                    await sock.read_text()  # engine.io OPEN
                while await sock.send(pings):
                    pass
            finally:
                sock.abort()

        await until_over(session, workers=SOCKETS)

    return attack


async def binary_attachments(target: Target, http: aiohttp.ClientSession) -> None:
    header = frame(1, b'459999999999-["message",{"_placeholder":true,"num":0}]')
    attachment = frame(2, b"b" * (MAX_PAYLOAD - 1024))  # under the frame limit

    async def session() -> None:
        sock = await Deaf.open(target, "/socket.io/?EIO=4&transport=websocket")
        try:
            await sock.read_text()  # OPEN
            await sock.send(frame(1, b"40" + json.dumps({"token": target.api_key}).encode()))
            await sock.read_text()  # CONNECT
            if await sock.send(header):
                while await sock.send(attachment * 4):
                    pass
        finally:
            sock.abort()

    await until_over(session, workers=SOCKETS)


ATTACKS: dict[str, Attack] = {
    "H1-polling-sessions": polling_sessions,
    "H2-oversized-polling-posts": oversized_posts,
    "H3-deaf-pings-ws": deaf_pings(lambda t: f"/ws/{t.room_id}?token={t.api_key}"),
    "H3-deaf-pings-socketio": deaf_pings(lambda t: "/socket.io/?EIO=4&transport=websocket",
                                         connect_first=True),
    "H4-binary-attachments": binary_attachments,
}


async def watch_peak(target: Target, stop: asyncio.Event) -> float:
    peak = target.rss_mb()
    while not stop.is_set():
        peak = max(peak, target.rss_mb())
        try:
            await asyncio.wait_for(stop.wait(), 0.05)
        except TimeoutError:
            pass
    return max(peak, target.rss_mb())


async def settled(target: Target, bound: float) -> float:
    """RSS once it is within `bound` MB (or `SETTLE_SECONDS` later)."""
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    # RSS is the kernel's figure: there is no event to await
    while (rss := target.rss_mb()) > bound and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    return rss


@pytest.mark.parametrize("name", ATTACKS)
async def test_attack_leaves_memory_bounded(target: Target, name: str) -> None:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=IO_TIMEOUT)) as http:
        cold = target.rss_mb()
        stop = asyncio.Event()
        peak_task = asyncio.ensure_future(watch_peak(target, stop))
        try:
            duration.set(WARMUP_SECONDS)
            await ATTACKS[name](target, http)
            baseline = target.rss_mb()
            duration.set(ATTACK_SECONDS)
            await ATTACKS[name](target, http)
        finally:
            stop.set()
            peak = await peak_task
        after = await settled(target, baseline + AFTER_BOUND_MB)
        async with http.get(target.base + "/healthz") as resp:
            assert resp.status == 200  # and the server still serves
    print(f"\n{name}: cold {cold:.1f} MB, warmed {baseline:.1f} MB, peak {peak:.1f} MB, "
          f"after {after:.1f} MB")
    assert peak <= cold + PEAK_BOUND_MB, (name, cold, peak)
    assert after <= baseline + AFTER_BOUND_MB, (name, baseline, after)
