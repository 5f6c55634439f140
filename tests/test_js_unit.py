"""Run the JavaScript client's unit tests (`node --test tests/js/`) under pytest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_js_client_unit_tests() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the JS client unit tests (tests/js/) were not run")
    proc = subprocess.run(
        [node, "--test", "tests/js/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = f"{proc.stdout[-20000:]}\n{proc.stderr[-5000:]}"
    assert proc.returncode == 0, f"node --test tests/js/ failed:\n{output}"
