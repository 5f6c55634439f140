"""`chatapi serve` stops on time whatever its clients do: a polling POST whose body trickles
in and an idle WebSocket do not hold SIGTERM's drain past `--drain-seconds`, and a second
SIGTERM or SIGINT during the drain exits at once."""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp
import pytest

from tests.test_cli import DRAIN_SECONDS, serve  # noqa: F401  (the fixture)

MARGIN = 1.5  # process exit after the drain: interpreter teardown on a busy machine


async def held_open(served, http: aiohttp.ClientSession) -> list[asyncio.Task]:
    """An idle raw WebSocket, and a polling POST whose body trickles and never ends."""
    key = (await served.read_until(r"API key[^:]*: (sk_\S+)")).group(1)
    room = (await served.read_until(r"\?room=([0-9a-f-]{36})")).group(1)
    base = f"http://127.0.0.1:{served.port}"
    ws = await asyncio.wait_for(
        http.ws_connect(f"{base}/ws/{room}?token={key}&user_id=idle"), 5)
    async with asyncio.timeout(5):
        async with http.get(f"{base}/socket.io/?EIO=4&transport=polling") as resp:
            sid = json.loads((await resp.text())[1:])["sid"]

    async def trickle():  # one byte now and then
        while True:
            yield b"4"
            await asyncio.sleep(0.2)

    post = asyncio.ensure_future(http.post(
        f"{base}/socket.io/?EIO=4&transport=polling&sid={sid}", data=trickle(),
        headers={"Content-Length": "60000"}))
    await asyncio.sleep(0.5)  # the POST's first bytes are in (it trickles: nothing to await)
    return [post, asyncio.ensure_future(ws.receive())]


async def exit_time(served) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(DRAIN_SECONDS + 10):
        await served.proc.wait()
    return loop.time() - started


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_the_drain_is_bounded_whatever_clients_hold_open(serve, sig):  # noqa: F811
    served = await serve()
    async with aiohttp.ClientSession() as http:
        held = await held_open(served, http)
        served.proc.send_signal(sig)
        took = await exit_time(served)
        for task in held:
            task.cancel()
    assert took <= DRAIN_SECONDS + MARGIN, took
    assert served.proc.returncode == 0


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
async def test_a_second_signal_during_the_drain_exits_at_once(serve, second):  # noqa: F811
    served = await serve()
    async with aiohttp.ClientSession() as http:
        held = await held_open(served, http)
        served.proc.send_signal(signal.SIGTERM)
        await served.read_until(r"shutting down, draining")
        served.proc.send_signal(second)
        took = await exit_time(served)
        for task in held:
            task.cancel()
    assert took <= 1.0, took
