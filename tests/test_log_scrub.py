"""Secrets never reach the log: a real `chatapi serve` gets hostile requests carrying
credentials where aiohttp's parser logs them, and its captured output is searched."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.logscrub import REDACTED, ScrubSecrets, scrub
from tests.ports import free_port
from tests.test_cli import Served, clean_env

CHATAPI = str(Path(sys.executable).with_name("chatapi"))
SECRET = "SECRETQ"
HOSTILE = [
    f"GET /x?token={SECRET}1 HTTP/1.1 junk\r\n\r\n".encode(),  # bad request line
    f"GET /api/v1/rooms?api_key={SECRET}2 HTTP/1.1\r\nX-API-Key {SECRET}3\r\n\r\n".encode(),
    f"GET / HTTP/1.1\r\nX-API-Key: {SECRET}4{'a' * 9000}\r\n\r\n".encode(),  # line too long
    f"GET /ws/x?key={SECRET}5&token={SECRET}6 HTTP/1.1\r\nHost: x\r\n"
    f"Authorization: Bearer {SECRET}7\r\nBad Header\r\n\r\n".encode(),
]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        CHATAPI, "serve", "--host", "127.0.0.1", "--port", str(port),
        "--database-url", f"sqlite:///{tmp_path / 'scrub.db'}", "--admin-key", "a" * 32,
        "--drain-seconds", "2", "--log-level", "debug",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=clean_env())
    server = Served(proc, port)
    await server.read_until(rf"http://127\.0\.0\.1:{port}")
    yield server
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def _send(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(request)
        await asyncio.wait_for(writer.drain(), 5)
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_hostile_requests_leave_no_secret_in_the_log(served: Served) -> None:
    for request in HOSTILE:
        answer = await _send(served.port, request)
        assert answer.startswith(b"HTTP/1.") and b'"status": "error"' in answer
    assert await served.stop() == 0
    served.output += (await served.proc.stdout.read()).decode()  # type: ignore[union-attr]
    assert "Error handling request" in served.output  # the parser's rejections were logged
    assert REDACTED in served.output
    assert SECRET not in served.output


@pytest.mark.parametrize(("text", "clean"), [
    ("b'GET /x?token=abc HTTP/1.1'", f"b'GET /x?token={REDACTED} HTTP/1.1'"),
    ("/ws/r?user_id=u&key=k1&api_key=k2&x=1", f"/ws/r?user_id=u&key={REDACTED}"
                                              f"&api_key={REDACTED}&x=1"),
    ("{'Authorization': 'Bearer a.b.c', 'X-API-Key': 'sk_1'}",
     f"{{'Authorization': 'Bearer {REDACTED}', 'X-API-Key': '{REDACTED}'}}"),
    ("monkey=1 tokens=2 user_id=3", "monkey=1 tokens=2 user_id=3"),
])
def test_scrub(text: str, clean: str) -> None:
    assert scrub(text) == clean


def test_filter_rewrites_message_arguments_and_traceback() -> None:
    try:
        raise ValueError("bad line b'GET /?token=s3cr3t'")
    except ValueError:
        record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1,
                                   "from %s: %s", ("1.2.3.4", "key=s3cr3t"), sys.exc_info())
    assert ScrubSecrets().filter(record)
    formatted = logging.Formatter().format(record)
    assert "s3cr3t" not in formatted and "1.2.3.4" in formatted and REDACTED in formatted
