"""Schema versions seen from the command line: `chatapi serve` on older and newer SQLite
files, and `chatapi migrate` (real subprocesses, real files)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import uuid
from pathlib import Path

from storage.sqlite import MIGRATIONS, SCHEMA_VERSION
from tests.ports import free_port
from tests.test_cli import CHATAPI, START_TIMEOUT, Served, clean_env

TS = "2024-01-01T00:00:00.000Z"
# `chatapi` as it would be were the last SQLite step one that `serve` must not apply.
MANUAL_LAST_STEP = (
    "import sys, storage.sqlite as s; "
    "s.MANUAL_MIGRATIONS = frozenset({s.SCHEMA_VERSION}); "
    "from app.cli import main; sys.exit(main())")


def _old_file(path: Path, version: int) -> str:
    """A database as schema `version` left it, with a client, a room and a message."""
    room = str(uuid.uuid4())
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for statements in MIGRATIONS[:version]:
            for statement in statements:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {version}")
        db.execute("INSERT INTO clients VALUES ('c1', 'old', NULL, 'hash', 'secret', 1, ?)", (TS,))
        db.execute("INSERT INTO rooms (id, client_id, name, created_at, updated_at) "
                   "VALUES (?, 'c1', 'old room', ?, ?)", (room, TS, TS))
        db.execute("INSERT INTO messages (id, room_id, client_id, seq, sender_id, content, "
                   "created_at) VALUES ('m1', ?, 'c1', 1, 'alice', 'kept', ?)", (room, TS))
    finally:
        db.close()
    return room


def _version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


async def _run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean_env())
    async with asyncio.timeout(START_TIMEOUT):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _serve(path: Path) -> Served:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        CHATAPI, "serve", "--host", "127.0.0.1", "--port", str(port),
        "--database-url", f"sqlite:///{path}", "--log-level", "info",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=clean_env())
    served = Served(proc, port)
    try:
        await served.read_until(rf"(?:Running on|http://127\.0\.0\.1:{port})")
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return served


def _refusal(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


async def test_serve_upgrades_an_older_file_by_itself(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    room = _old_file(path, 1)
    served = await _serve(path)
    try:
        assert "storage upgraded: SQLite schema v1 -> v2" in served.output
        assert f"SQLite schema v{SCHEMA_VERSION - 1} -> v{SCHEMA_VERSION}" in served.output
        assert "sk_" not in served.output  # a client exists: no first-start bootstrap
    finally:
        assert await served.stop() == 0
    assert _version(path) == SCHEMA_VERSION
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT content FROM messages WHERE room_id = ?",
                          (room,)).fetchall() == [("kept",)]
        assert db.execute("SELECT count(*) FROM meta").fetchone() == (0,)
    finally:
        db.close()


async def test_serve_refuses_a_newer_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    _old_file(path, SCHEMA_VERSION)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    code, out, err = await _run(CHATAPI, "serve", "--port", str(free_port()),
                                "--database-url", f"sqlite:///{path}")
    assert code == 1, (out, err)
    assert "newer than this ChatAPI" in _refusal(err)
    code, _, err = await _run(CHATAPI, "migrate", "--database-url", f"sqlite:///{path}")
    assert code == 1 and "newer" in _refusal(err)
    assert _version(path) == SCHEMA_VERSION + 1


async def test_migrate_brings_an_older_file_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _old_file(path, 1)
    url = f"sqlite:///{path}"
    code, out, err = await _run(CHATAPI, "migrate", "--database-url", url)
    assert code == 0, err
    steps = [f"SQLite schema v{v} -> v{v + 1}" for v in range(1, SCHEMA_VERSION)]
    assert out.splitlines() == [*steps, "schema up to date"]
    assert _version(path) == SCHEMA_VERSION
    code, out, _ = await _run(CHATAPI, "migrate", "--database-url", url)
    assert code == 0 and out.splitlines() == ["schema up to date"]


async def test_serve_refuses_an_unsafe_step_until_migrate(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_file(path, SCHEMA_VERSION - 1)
    url = f"sqlite:///{path}"
    code, out, err = await _run(sys.executable, "-c", MANUAL_LAST_STEP, "serve",
                                "--port", str(free_port()), "--database-url", url)
    assert code == 1, (out, err)
    assert "`chatapi migrate`" in _refusal(err)
    assert _version(path) == SCHEMA_VERSION - 1
    code, out, err = await _run(sys.executable, "-c", MANUAL_LAST_STEP, "migrate",
                                "--database-url", url)
    assert code == 0, err
    assert _version(path) == SCHEMA_VERSION
    served = await _serve(path)
    assert await served.stop() == 0
