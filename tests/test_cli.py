"""`chatapi serve` and `chatapi create-client` as real subprocesses (SPEC §1)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.ports import free_port

CHATAPI = str(Path(sys.executable).with_name("chatapi"))
START_TIMEOUT = 20.0
DRAIN_SECONDS = 3




def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATAPI_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


class Served:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.output = ""

    async def read_until(self, pattern: str) -> re.Match[str]:
        """Read stdout until `pattern` matches what was printed so far."""
        async with asyncio.timeout(START_TIMEOUT):
            while not (found := re.search(pattern, self.output)):
                line = await self.proc.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise AssertionError(f"exited before {pattern!r}: {self.output}")
                self.output += line.decode()
        return found

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(DRAIN_SECONDS + 5):
            return await self.proc.wait()


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator:
    started: list[Served] = []

    async def start(*args: str, port: int | None = None, **env: str) -> Served:
        port = port or free_port()
        proc = await asyncio.create_subprocess_exec(
            CHATAPI, "serve", "--host", "127.0.0.1", "--port", str(port),
            "--database-url", f"sqlite:///{tmp_path / 'cli.db'}",
            "--drain-seconds", str(DRAIN_SECONDS), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=clean_env(**env))
        served = Served(proc, port)
        started.append(served)
        await served.read_until(rf"(?:Running on|http://127\.0\.0\.1:{port})")
        return served

    yield start
    for served in started:
        if served.proc.returncode is None:
            served.proc.kill()
            await served.proc.wait()


async def test_first_start_bootstrap_and_clean_shutdown(
        serve: object, http: aiohttp.ClientSession) -> None:
    first = await serve()  # type: ignore[operator]
    key = (await first.read_until(r"API key[^:]*: (sk_\S+)")).group(1)
    url = await first.read_until(r"http://localhost:(\d+)/\?room=([0-9a-f-]{36})&token=(\S+)")
    assert url.group(1) == str(first.port) and url.group(3) == key
    base = f"http://127.0.0.1:{first.port}"
    async with http.get(f"{base}/api/v1/rooms", headers={"X-API-Key": key}) as resp:
        assert resp.status == 200
        rooms = (await resp.json())["data"]
    assert [(r["name"], r["id"]) for r in rooms] == [("general", url.group(2))]
    assert await first.stop() == 0

    second = await serve()  # type: ignore[operator]
    async with http.get(f"{base.rsplit(':', 1)[0]}:{second.port}/healthz") as resp:
        assert resp.status == 200
    assert await second.stop() == 0
    assert "sk_" not in second.output and "API key" not in second.output


async def test_create_client_prints_a_working_key(
        serve: object, tmp_path: Path, http: aiohttp.ClientSession) -> None:
    proc = await asyncio.create_subprocess_exec(
        CHATAPI, "create-client", "acme", "--database-url", f"sqlite:///{tmp_path / 'cli.db'}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env())
    async with asyncio.timeout(START_TIMEOUT):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err
    key = re.search(r"api key:\s+(sk_\S+)", out.decode()).group(1)  # type: ignore[union-attr]
    assert re.search(r"token secret:\s+\S+", out.decode())
    served = await serve()  # type: ignore[operator]
    url = f"http://127.0.0.1:{served.port}/api/v1/clients/me"
    async with http.get(url, headers={"X-API-Key": key}) as resp:
        assert resp.status == 200 and (await resp.json())["data"]["name"] == "acme"
    assert "sk_" not in served.output  # a client existed already: no bootstrap
    assert await served.stop() == 0


async def test_flags_win_over_environment(serve: object, http: aiohttp.ClientSession) -> None:
    env_port = free_port()
    served = await serve(  # type: ignore[operator]
        CHATAPI_PORT=str(env_port), CHATAPI_ADMIN_KEY="env-admin-key-0123456789")
    async with http.get(f"http://127.0.0.1:{served.port}/healthz") as resp:
        assert resp.status == 200
    async with http.get(f"http://127.0.0.1:{served.port}/api/v1/clients",
                        headers={"X-API-Key": "env-admin-key-0123456789"}) as resp:
        assert resp.status == 200  # the env still applies where no flag is given
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(f"http://127.0.0.1:{env_port}/healthz"):
            pass
    assert "sk_" not in served.output  # admin key set: no bootstrap client
    assert await served.stop() == 0
