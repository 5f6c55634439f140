"""`pip install .` ships every package, the demo page and the docs assets."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [
    "app/cli.py", "app/services/messages.py", "app/realtime/hub.py", "compat/ws.py",
    "storage/sqlite.py", "storage/mongo.py", "static/index.html", "static/chatapi.js",
    "static/chatapi.mjs", "static/docs.html", "static/docs.js",
]


def test_wheel_ships_code_and_static_files(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("chatapi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert [path for path in SHIPPED if path not in names] == []
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "chatapi = app.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
