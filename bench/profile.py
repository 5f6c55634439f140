"""Summaries of py-spy's collapsed stacks (`--format raw`): where the server's CPU went."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any


def _short(frame: str) -> str:
    """`send_str (aiohttp/web_ws.py:123)` → `send_str (aiohttp/web_ws.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1:]
    elif len(parts) > 2:
        parts = parts[-2:]
    return f"{name} ({'/'.join(parts)})"


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    """Top functions by self and by inclusive samples, in % of all samples of the file."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_short(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        self_c[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return {"samples": 0}

    def pct(c: Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * n / total, 1)) for f, n in c.most_common(top)]

    return {"samples": total, "self": pct(self_c), "inclusive": pct(incl)}


def collect(workdir: Path) -> dict[str, Any]:
    """Every profile the load generator left in `workdir`, summarized."""
    return {p.stem: summarize(p) for p in sorted(workdir.glob("profile-*.txt"))}
