"""A weak `CHATAPI_ADMIN_KEY` (set, under 24 characters) stops `chatapi serve` before it
listens, with a message saying why."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.cli import MIN_ADMIN_KEY_LENGTH, weak_admin_key
from tests.ports import free_port
from tests.test_cli import CHATAPI, clean_env

START_TIMEOUT = 20.0


async def run_serve(tmp_path: Path, *args: str, **env: str) -> tuple[int | None, str]:
    proc = await asyncio.create_subprocess_exec(
        CHATAPI, "serve", "--host", "127.0.0.1", "--port", str(free_port()),
        "--database-url", f"sqlite:///{tmp_path / 'chatapi.db'}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env(**env))
    try:
        async with asyncio.timeout(START_TIMEOUT):
            _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, err.decode()


@pytest.mark.parametrize("how", ["env", "flag"])
async def test_a_short_admin_key_refuses_to_start(tmp_path: Path, how: str) -> None:
    key = "x" * (MIN_ADMIN_KEY_LENGTH - 1)
    if how == "env":
        code, err = await run_serve(tmp_path, CHATAPI_ADMIN_KEY=key)
    else:
        code, err = await run_serve(tmp_path, "--admin-key", key)
    assert code == 2
    assert "CHATAPI_ADMIN_KEY is 23 characters; it must be at least 24" in err
    assert key not in err  # the key itself is never printed
    assert not (tmp_path / "chatapi.db").exists()  # refused before anything was opened


def test_the_rule() -> None:
    assert weak_admin_key("") is None  # no admin key: admin routes are simply refused
    assert weak_admin_key("k" * 24) is None
    assert weak_admin_key("k" * 23) is not None
