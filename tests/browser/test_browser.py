"""Browser tests of the demo page: a real `chatapi serve`, Debian's Chromium, playwright-core.

The Node script `chat.browser.mjs` drives the browser; this wrapper owns the server
process (so it can stop and restart it on the same port and database file for the
offline test, through a tiny control endpoint) and runs the script.

Skips, saying why, when `node` or Chromium (`/usr/bin/chromium`, Debian package
`chromium`, or `CHATAPI_CHROMIUM`) is missing. Installs playwright-core with
`npm ci` on first use. `CHATAPI_UPDATE_SCREENSHOT=1` copies the screenshot it takes
to docs/screenshot.png; otherwise it goes to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.ports import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SCRIPT = HERE / "chat.browser.mjs"
KEY_RE = re.compile(r"\b(sk_(?:live|test)_[A-Za-z0-9]+)")
ROOM_RE = re.compile(r"[?&]room=([0-9a-fA-F-]{36})")


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHATAPI_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None




def _serve_command() -> list[str]:
    exe = Path(sys.executable).parent / "chatapi"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "app.cli"]


class Server:
    """`chatapi serve` as a subprocess that can be stopped and started again."""

    def __init__(self, port: int, db: Path) -> None:
        self.port = port
        self.db = db
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        env = dict(os.environ)
        env.update({
            "CHATAPI_RATE_LIMIT_PER_SECOND": "1000", "CHATAPI_RATE_LIMIT_BURST": "10000",
            "CHATAPI_WS_EVENTS_PER_SECOND": "1000", "CHATAPI_WS_EVENTS_BURST": "10000",
            "CHATAPI_DRAIN_SECONDS": "2", "CHATAPI_LOG_LEVEL": "warning",
        })
        env.pop("CHATAPI_ADMIN_KEY", None)
        cmd = [*_serve_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--database-url", f"sqlite:///{self.db}"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chatapi serve exited:\n{self.text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"chatapi serve did not listen within {timeout}s:\n{self.text()}")

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self.lock:
                self.output.append(line)

    def text(self) -> str:
        with self.lock:
            return "".join(self.output)

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _control_server(server: Server) -> ThreadingHTTPServer:
    """POST /stop and /start: lets the Node script take the chat server down and up."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            try:
                if self.path == "/stop":
                    server.stop()
                elif self.path == "/start":
                    server.start()
                else:
                    self.send_error(404)
                    return
            except Exception as exc:  # reported to the script, which fails the test
                self.send_response(500)
                self.end_headers()
                self.wfile.write(str(exc).encode())
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _ensure_playwright(node: str) -> None:
    if (HERE / "node_modules" / "playwright-core").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not on PATH: cannot install playwright-core for the browser tests")
    proc = subprocess.run([npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"npm ci failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(free_port(), tmp_path / "db.sqlite")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_demo_page_in_chromium(server: Server, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: browser tests not run")
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium not found (apt-get install chromium, or set CHATAPI_CHROMIUM): "
                    "browser tests not run")
    _ensure_playwright(node)

    first_start = server.text()
    key, room = KEY_RE.search(first_start), ROOM_RE.search(first_start)
    assert key and room, f"no API key / room in the first-start output:\n{first_start}"

    shot = tmp_path / "screenshot.png"
    control = _control_server(server)
    env = dict(os.environ)
    env.update({
        "CHATAPI_BASE_URL": server.base_url,
        "CHATAPI_TOKEN": key.group(1),
        "CHATAPI_ROOM": room.group(1),
        "CHATAPI_CONTROL_URL": f"http://127.0.0.1:{control.server_address[1]}",
        "CHATAPI_CHROMIUM": chromium,
        "CHATAPI_SCREENSHOT": str(shot),
        "CHATAPI_PROFILE_DIR": str(tmp_path / "profiles"),
    })
    try:
        proc = subprocess.run([node, "--test-reporter=spec", str(SCRIPT)], cwd=HERE, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
    finally:
        control.shutdown()
        control.server_close()
    report = f"{proc.stdout[-30000:]}\n{proc.stderr[-5000:]}"
    assert proc.returncode == 0, (f"browser tests failed:\n{report}\n"
                                  f"--- server output ---\n{server.text()[-5000:]}")
    assert re.search(r"\bpass \d+", proc.stdout) and not re.search(r"\bfail [1-9]", proc.stdout)

    artifacts = ROOT / "tests" / "artifacts"
    artifacts.mkdir(exist_ok=True)
    for png in tmp_path.glob("screenshot*.png"):
        shutil.copy(png, artifacts / png.name)
    if os.environ.get("CHATAPI_UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, ROOT / "docs" / "screenshot.png")
