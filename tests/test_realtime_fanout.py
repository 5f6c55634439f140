"""Throwaway fan-out probe (no tests here; the real benchmark is issue 6's `bench/`).

    .venv/bin/python -m tests.test_realtime_fanout [subscribers] [messages]

Starts `chatapi serve` (pinned to CPU 0) and a bare aiohttp `send_str` broadcast server as a
baseline, connects N raw subscribers from this process (pinned to CPU 1, counting frames
without parsing), publishes M ~300-byte messages over one raw WebSocket, and prints
deliveries/s and deliveries per server-CPU-second (from /proc/<pid>/stat).
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time

import aiohttp

from tests.ports import free_port

ADMIN = "probe-admin-key-0123456789"
MARK = b'"probe-'
BASELINE = r'''
import sys
from aiohttp import web
clients = set()
async def ws(request):
    sock = web.WebSocketResponse(compress=False)
    await sock.prepare(request)
    if request.query.get("pub"):
        async for msg in sock:
            for c in list(clients):
                await c.send_str(msg.data)
    else:
        clients.add(sock)
        await sock.send_str('{"type":"connection_status"}')
        try:
            async for _ in sock:
                pass
        finally:
            clients.discard(sock)
    return sock
app = web.Application(); app.router.add_get("/ws/{room}", ws)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
'''


class Counter(asyncio.Protocol):
    def __init__(self, ready: asyncio.Event) -> None:
        self.ready, self.count, self.tail, self.head = ready, 0, b"", b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.ready.is_set():
            self.head += data
            if b"connection_status" in self.head:
                self.ready.set()
        chunk = self.tail + data
        self.count += chunk.count(MARK)
        self.tail = chunk[-(len(MARK) - 1):]


async def subscribe(port: int, path: str) -> Counter:
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    transport, proto = await loop.create_connection(lambda: Counter(ready), "127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    transport.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    await asyncio.wait_for(ready.wait(), 30)
    return proto


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_http(port: int) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status < 500:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise TimeoutError("server did not start")


async def run(label: str, port: int, pid: int, path: str, pub: str, n: int, m: int) -> None:
    subs = [await subscribe(port, path) for _ in range(n)]
    payload = "x" * 200
    async with aiohttp.ClientSession() as http:
        publisher = await http.ws_connect(f"ws://127.0.0.1:{port}{pub}")
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        for i in range(m):
            await publisher.send_json({"type": "message",
                                       "data": {"content": f"probe-{i} {payload}"}})
        deadline = time.monotonic() + 120
        while sum(s.count for s in subs) < n * m and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
        await publisher.close()
    got = sum(s.count for s in subs)
    for sub in subs:
        if sub.transport is not None:
            sub.transport.abort()
    print(f"{label:<28} {got:>8} deliveries ({got / (n * m):.1%}) in {elapsed:6.2f}s: "
          f"{got / elapsed:>9,.0f}/s wall, {got / max(cpu, 1e-9):>9,.0f} per server-CPU-s "
          f"({cpu * 1e6 / max(got, 1):.1f} µs/delivery)")


async def main(n: int, m: int) -> None:
    os.sched_setaffinity(0, {1})
    pin = {"preexec_fn": lambda: os.sched_setaffinity(0, {0})}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "CHATAPI_DATABASE_URL": f"sqlite:///{tmp}/probe.db",
               "CHATAPI_ADMIN_KEY": ADMIN, "CHATAPI_HOST": "127.0.0.1",
               "CHATAPI_PORT": str(port), "CHATAPI_WS_EVENTS_PER_SECOND": "1000000",
               "CHATAPI_WS_EVENTS_BURST": "1000000", "CHATAPI_LOG_LEVEL": "warning",
               "CHATAPI_MAX_CONNECTIONS_PER_CREDENTIAL": "100000"}
        server = await asyncio.create_subprocess_exec(
            os.path.join(os.path.dirname(sys.executable), "chatapi"), "serve", env=env,
            stdout=subprocess.DEVNULL, **pin)
        base_port = free_port()
        baseline = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BASELINE, str(base_port), **pin)
        try:
            await wait_http(port)
            await wait_http(base_port)
            async with aiohttp.ClientSession(headers={"X-API-Key": ADMIN}) as http:
                api = f"http://127.0.0.1:{port}/api/v1"
                async with http.post(api + "/clients", json={"name": "probe"}) as r:
                    key = (await r.json())["data"]["api_key"]
                async with http.post(api + "/rooms", json={"name": "probe"},
                                     headers={"X-API-Key": key}) as r:
                    room = (await r.json())["data"]["id"]
            await run("bare aiohttp send_str loop", base_port, baseline.pid, "/ws/r",
                      "/ws/r?pub=1", n, m)
            await run("chatapi raw /ws (stored)", port, server.pid,
                      f"/ws/{room}?token={key}", f"/ws/{room}?token={key}&user_id=pub", n, m)
        finally:
            for proc in (server, baseline):
                proc.terminate()
            for proc in (server, baseline):
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    asyncio.run(main(*(args + [500, 200][len(args):])))
