"""The real MongoDB-wire server of the tests' MongoDB leg.

`CHATAPI_TEST_MONGODB_URL` given: that server (e.g. a real `mongod`), nothing is started.
Otherwise SecantusDB (`secantusd-py` from `.venv-secantus`, which `make test` builds): one per
pytest process (one per xdist worker), on a loopback port the OS picks, its data in a temp
dir, stopped at the end of the session. Every test gets its own database, dropped afterwards.

Without either, MongoDB-leg tests skip, unless `CHATAPI_TEST_REQUIRE_MONGODB=1` (set by
`make test`), which turns the missing server into a failure.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import threading
import uuid
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECANTUSD = ROOT / ".venv-secantus" / "bin" / "secantusd-py"
MONGODB_URL = os.environ.get("CHATAPI_TEST_MONGODB_URL", "")
REQUIRED = os.environ.get("CHATAPI_TEST_REQUIRE_MONGODB", "") == "1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LISTENING = re.compile(rb"listening on 127\.0\.0\.1:(\d+)")


class SecantusServer:
    """`secantusd-py` in its own process group, bound to 127.0.0.1 on a port the OS picks."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="chatapi-secantus-")
        self.port = 0
        self.output: deque[bytes] = deque(maxlen=200)
        self._listening = threading.Event()
        self.proc = subprocess.Popen(
            [str(SECANTUSD), "--host", "127.0.0.1", "--port", "0", "--log-level", "INFO",
             "--storage-path", str(Path(self.tmp.name) / "data")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.tmp.name, start_new_session=True)
        # Drained for the server's whole life, so a chatty log never blocks it.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._listening.wait(START_TIMEOUT) or not self.port:
            self.stop()
            raise RuntimeError("SecantusDB did not start:\n" + self.log())

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if not self.port and (found := LISTENING.search(line)):
                self.port = int(found.group(1))
                self._listening.set()
        self._listening.set()  # exited before listening: stop waiting

    def log(self) -> str:
        return b"".join(self.output).decode(errors="replace")[-4000:]

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL if it has not exited in time."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
            except ProcessLookupError:
                pass
        self._reader.join(STOP_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.tmp.cleanup()


def server_url() -> tuple[str, SecantusServer | None]:
    """The URL of the leg's server, and the SecantusDB started for it (None: given by URL)."""
    if MONGODB_URL:
        return MONGODB_URL, None
    if not SECANTUSD.exists():
        reason = f"no MongoDB-wire server: run `make secantus` ({SECANTUSD} is missing) or set " \
                 "CHATAPI_TEST_MONGODB_URL"
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    server = SecantusServer()
    return server.url, server


def with_database(url: str, database: str) -> str:
    """`url` naming `database` in its path (options kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def unique_database() -> str:
    return f"chatapi_test_{uuid.uuid4().hex[:16]}"


def drop_database(url: str, database: str) -> None:
    """Synchronous, so sync and async fixtures alike can call it (and `getfixturevalue`)."""
    from pymongo import MongoClient

    client: MongoClient = MongoClient(url, serverSelectionTimeoutMS=5000,
                                      connectTimeoutMS=5000, socketTimeoutMS=20_000)
    try:
        client.drop_database(database)
    finally:
        client.close()
