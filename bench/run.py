"""ChatAPI benchmark: ChatAPI and two bare baselines, side by side, in one run.

    .venv/bin/python -m bench            # full run (≈ 12 minutes on a quiet machine)
    .venv/bin/python -m bench --quick    # smoke run (≈ 1-2 minutes)
    .venv/bin/python -m bench -w w1,w1-sio --rounds 2

For each workload, every applicable server is started fresh (alternating, the order rotated
each round), pinned to CPU 0; the Node load generator (bench/loadgen) runs pinned to CPU 1,
reads the server's CPU time and RSS from /proc over each measurement window and returns one
JSON result. The tables go to stdout, everything to bench/results/<stamp>.json.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

if __package__ in (None, ""):  # `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import profile, report
from bench.seed import seed_messages
from bench.servers import (
    BENCH_DIR,
    CAPABILITIES,
    REPO,
    VENV_BIN,
    Cluster,
    Server,
    chatapi_available,
    taskset_prefix,
)

LOADGEN_DIR = BENCH_DIR / "loadgen"
RESULTS_DIR = BENCH_DIR / "results"
ALL_SERVERS = ("chatapi", "aiohttp", "sio", "chatapi-2node")


@dataclass(frozen=True)
class Scale:
    """Sizes and durations of one run (`--quick` shrinks them)."""

    subs: int = 1000
    w1_rates: tuple[int, ...] = (10, 50, 100)
    warm_s: float = 1.0
    measure_s: float = 5.0
    idle_conns: int = 5000
    idle_per_room: int = 10
    w3_rates: tuple[int, ...] = (50, 100, 200)
    w4_rooms: int = 100
    w4_subs: int = 10
    w4_rates: tuple[int, ...] = (5, 20, 50)
    presence_members: int = 1000
    rest_seed: int = 100_000
    rest_rate: int = 1000
    rest_measure_s: float = 10.0
    history_n: int = 2000
    quiet_wait_s: float = 15.0  # per measurement: wait this long at most for a quiet machine
    retries: int = 2  # re-runs of a fan-out step or REST phase that other processes disturbed


FULL = Scale()
QUICK = Scale(subs=200, w1_rates=(10, 50), warm_s=0.5, measure_s=2.0, idle_conns=1000,
              w3_rates=(50, 200), w4_rooms=20, w4_rates=(5, 20), presence_members=300,
              rest_seed=5000, rest_rate=500, rest_measure_s=3.0, history_n=300,
              quiet_wait_s=3.0, retries=0)


@dataclass(frozen=True)
class Workload:
    name: str
    needs: str  # the capability a server must have ("ws", "sio", "rest", "storage")
    servers: tuple[str, ...]
    rooms: Callable[[Scale], int]
    spec: Callable[[Scale], dict[str, Any]]
    about: str


def _ladder(rates: tuple[int, ...], sc: Scale, window: int, concurrency: int | None = None,
            busy_room: bool = False) -> list[dict[str, Any]]:
    """Max first (its figure decides which open-loop steps are above capacity), then rates.

    `busy_room` adds a second max step where 4 members take turns publishing (8 messages
    outstanding): one publishing socket is handled in order by the server, so with a single
    publisher events never arrive faster than they are fanned out, and write coalescing
    has nothing to coalesce.
    """
    timing = {"warm_s": sc.warm_s, "measure_s": sc.measure_s}
    top = {"kind": "max", "window": window, **timing}
    if concurrency:
        top["concurrency"] = concurrency
    extra = [{"kind": "max", "window": 2 * window, "publishers": 4, **timing}] if busy_room else []
    return [top, *extra, *({"kind": "rate", "rate": r, **timing} for r in rates)]


def _fanout(proto: str, publish: str, subs: int, steps: list[dict[str, Any]]
            ) -> dict[str, Any]:
    return {"scenario": "fanout", "proto": proto, "publish": publish, "subs_per_room": subs,
            "connect_concurrency": 50, "steps": steps, "content_chars": 64}


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("w1", "ws", ("chatapi", "aiohttp"), lambda sc: 1,
             lambda sc: _fanout("ws", "ws", sc.subs, _ladder(sc.w1_rates, sc, 4, busy_room=True)),
             "1 room x N raw WebSocket subscribers; one member publishes over the socket"),
    Workload("w1-sio", "sio", ("chatapi", "sio"), lambda sc: 1,
             lambda sc: _fanout("sio", "sio", sc.subs,
                                _ladder(sc.w1_rates, sc, 4, busy_room=True)),
             "1 room x N Socket.IO subscribers; one member emits `message`"),
    Workload("w2", "ws", ("chatapi", "aiohttp"), lambda sc: sc.idle_conns // sc.idle_per_room,
             lambda sc: {"scenario": "idle", "proto": "ws", "per_room": sc.idle_per_room,
                         "connect_concurrency": 50, "settle_s": 2},
             "N idle raw WebSocket connections, 10 per room"),
    Workload("w2-sio", "sio", ("chatapi", "sio"), lambda sc: sc.idle_conns // sc.idle_per_room,
             lambda sc: {"scenario": "idle", "proto": "sio", "per_room": sc.idle_per_room,
                         "connect_concurrency": 50, "settle_s": 2},
             "N idle Socket.IO connections (joined), 10 per room"),
    Workload("w3", "rest", ("chatapi", "aiohttp"), lambda sc: 1,
             lambda sc: _fanout("ws", "rest", sc.subs, _ladder(sc.w3_rates, sc, 8, 16)),
             "REST POST /rooms/{id}/messages into a room of N raw subscribers "
             "(ChatAPI stores first; the bare loop does not store)"),
    Workload("w4", "ws", ("chatapi", "aiohttp"), lambda sc: sc.w4_rooms,
             lambda sc: _fanout("ws", "ws", sc.w4_subs, _ladder(sc.w4_rates, sc, 2)),
             "100 rooms x 10 raw subscribers, one publisher per room (rate is per room)"),
    Workload("w4-sio", "sio", ("chatapi", "sio"), lambda sc: sc.w4_rooms,
             lambda sc: _fanout("sio", "sio", sc.w4_subs, _ladder(sc.w4_rates, sc, 2)),
             "W4 with Socket.IO clients"),
    Workload("presence", "ws", ("chatapi", "aiohttp"), lambda sc: 1 + sc.retries,
             lambda sc: {"scenario": "presence", "proto": "ws", "n": sc.presence_members,
                         "connect_concurrency": 20},
             "a room fills to N members; each arrival's user_joined goes to all already there"),
    Workload("presence-sio", "sio", ("chatapi", "sio"), lambda sc: 1 + sc.retries,
             lambda sc: {"scenario": "presence", "proto": "sio", "n": sc.presence_members,
                         "connect_concurrency": 20},
             "presence with Socket.IO clients"),
    Workload("w1-2node", "ws", ("chatapi", "chatapi-2node"), lambda sc: 1,
             lambda sc: _fanout("ws", "ws", sc.subs, _ladder(sc.w1_rates, sc, 4)),
             "W1 on one node, and split across two nodes sharing Redis (publisher on node A, "
             "subscribers alternate A/B)"),
    Workload("rest", "storage", ("chatapi",), lambda sc: 1,
             lambda sc: {"scenario": "rest", "rate": sc.rest_rate,
                         "measure_s": sc.rest_measure_s, "max_concurrency": 16,
                         "history_n": sc.history_n, "rest_concurrency": 64},
             "foundation: REST sends and history pages in a room holding many messages"),
)}
DEFAULT_WORKLOADS = ("w1", "w1-sio", "w2", "w2-sio", "w3", "w4", "presence", "presence-sio",
                     "rest", "w1-2node")


def ensure_loadgen() -> None:
    """Install the load generator's pinned dependencies on first use (npm ci)."""
    if (LOADGEN_DIR / "node_modules" / "ws").exists() and \
            (LOADGEN_DIR / "node_modules" / "socket.io-client").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("bench needs Node.js ≥ 18 and npm for the load generator")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=LOADGEN_DIR, check=True,
                   timeout=300)


def loadgen_selftest() -> None:
    """The load generator's own WebSocket/Socket.IO clients against the `ws` server (~1 s)."""
    done = subprocess.run([shutil.which("node") or "node", str(LOADGEN_DIR / "selftest.js")],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        sys.exit(f"load generator self-test failed:\n{done.stdout}{done.stderr}")


def raise_fd_limit(want: int = 65536) -> None:
    """Thousands of sockets per process: raise RLIMIT_NOFILE (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


LOCK_PATH = Path(tempfile.gettempdir()) / "chatapi-bench.lock"


def acquire_machine_lock(wait_s: float) -> IO[str]:
    """One bench run at a time on this machine (two would share the same two cores)."""
    fh = open(LOCK_PATH, "a+")  # held (locked) for the whole run
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                fh.seek(0)
                sys.exit(f"another bench run holds {LOCK_PATH}: {fh.read().strip()}")
            if not told:
                fh.seek(0)
                print(f"! waiting for another bench run to finish ({fh.read().strip()})",
                      flush=True)
                told = True
            time.sleep(2)
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}: {' '.join(sys.argv)}\n")
    fh.flush()
    return fh


def run_loadgen(spec: dict[str, Any], workdir: Path, pin: bool) -> dict[str, Any]:
    """Run one load generator scenario; its last stdout line is the JSON result."""
    path = workdir / "spec.json"
    path.write_text(json.dumps(spec))
    node = shutil.which("node") or "node"
    cmd = [*taskset_prefix(1 if pin else None), node, "--max-old-space-size=4096",
           str(LOADGEN_DIR / "loadgen.js"), str(path)]
    with open(workdir / "loadgen.log", "ab") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, start_new_session=True)
        _CHILDREN.append(proc)
        try:
            out, _ = proc.communicate(timeout=spec["timeout_s"] + 30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"error": "load generator timed out"}
        finally:
            _CHILDREN.remove(proc)
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
    if not lines:
        return {"error": f"load generator printed nothing (exit {proc.returncode})"}
    return dict(json.loads(lines[-1]))


_CHILDREN: list[subprocess.Popen[bytes]] = []
_SERVERS: list[Server | Cluster] = []


def _cleanup(*_args: object) -> None:
    for srv in list(_SERVERS):
        srv.stop(grace=2)
    for proc in list(_CHILDREN):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if _args:
        sys.exit(130)


def run_one(wl: Workload, kind: str, sc: Scale, args: argparse.Namespace, workdir: Path
            ) -> dict[str, Any]:
    """Start `kind` fresh, prepare it, drive workload `wl` against it, stop it."""
    cpu = 0 if args.pin else None
    srv: Server | Cluster
    if kind == "chatapi-2node":
        srv = Cluster(workdir, cpu=cpu, chatapi_command=args.chatapi_command,
                      extra_env=args.chatapi_env)
    else:
        srv = Server(kind, workdir, cpu=cpu, chatapi_command=args.chatapi_command,
                     extra_env=args.chatapi_env)
    _SERVERS.append(srv)
    t0 = time.monotonic()
    try:
        srv.start()
        n_rooms = wl.rooms(sc)
        rooms = srv.prepare(n_rooms)
        spec = wl.spec(sc)
        if spec["scenario"] == "rest" and isinstance(srv, Server):
            spec["history_max_seq"] = _seed_rest_room(srv, rooms[0], sc, workdir)
        spec.update({"host": "127.0.0.1", "ports": srv.ports, "token": srv.token,
                     "rooms": rooms, "server_pids": srv.pids,
                     "clk_tck": os.sysconf("SC_CLK_TCK"),
                     "timeout_s": args.scenario_timeout, "drain_s": 10,
                     "quiet_wait_s": sc.quiet_wait_s, "quiet_cpu": args.quiet_cpu,
                     "retries": sc.retries,
                     "ws_client": args.ws_client, "sio_client": args.sio_client})
        if args.profile:
            spec["profile"] = {"cmd": args.profile_cmd, "dir": str(workdir), "rate": 200,
                               "pids": [n.pid for n in getattr(srv, "nodes", [srv])]}
        result = run_loadgen(spec, workdir, args.pin)
        if args.profile:
            result["profiles"] = profile.collect(workdir)
        if "history_max_seq" in spec:
            result["history_max_seq"] = spec["history_max_seq"]
        if not srv.alive():
            result["server_died"] = srv.log_tail()
    except Exception as e:  # one failed run must not stop the others
        result = {"error": f"{type(e).__name__}: {e}"}
    finally:
        code = srv.stop()
        _SERVERS.remove(srv)
    result.update({"workload": wl.name, "server": kind, "server_label": srv.label,
                   "wall_s": round(time.monotonic() - t0, 1), "server_exit": code})
    if "error" in result:
        result["server_log_tail"] = srv.log_tail()
        result["loadgen_log"] = str(workdir / "loadgen.log")
    return result


def _seed_rest_room(srv: Server, room_id: str, sc: Scale, workdir: Path) -> int:
    """Fill the room with `sc.rest_seed` messages; returns the highest seq."""
    t0 = time.monotonic()
    top = seed_messages(srv, room_id, sc.rest_seed, workdir)
    print(f"    seeded {sc.rest_seed} messages in {time.monotonic() - t0:.1f}s", flush=True)
    return top


def run_all(names: list[str], wanted: list[str], sc: Scale, args: argparse.Namespace,
            logs: Path, deadline: float) -> list[dict[str, Any]]:
    """Every workload on every applicable server, alternating, order rotated per round."""
    runs: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for name in names:
            wl = WORKLOADS[name]
            kinds = [k for k in wl.servers if k in wanted and wl.needs in CAPABILITIES[k]]
            if kinds:
                kinds = kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)]
            for kind in kinds:
                if time.monotonic() > deadline:
                    print(f"! global deadline reached: skipping {name}/{kind}", flush=True)
                    continue
                print(f"--- round {rnd + 1} {name} on {kind}", flush=True)
                workdir = logs / f"r{rnd + 1}-{name}-{kind}"
                res = run_one(wl, kind, sc, args, workdir)
                for db in workdir.glob("*.db*"):
                    db.unlink()  # keep the logs, not the databases
                res["round"] = rnd + 1
                runs.append(res)
                print(report.one_line(res), flush=True)
    return runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: small N, short windows")
    p.add_argument("-w", "--workloads", default=",".join(DEFAULT_WORKLOADS),
                   help=f"comma list of {', '.join(WORKLOADS)} (default: %(default)s)")
    p.add_argument("-s", "--servers", default=",".join(ALL_SERVERS),
                   help="comma list of chatapi, aiohttp, sio, chatapi-2node (default: all)")
    p.add_argument("--rounds", type=int, default=1, help="repeat, rotating server order")
    p.add_argument("--subs", type=int, help="subscribers per room in W1/W1-sio/W3")
    p.add_argument("--measure", type=float, help="seconds per measurement window")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not use taskset")
    p.add_argument("--quiet-wait", type=float,
                   help="max seconds to wait before each measurement for other processes to "
                        "use < --quiet-cpu of a core (default 15, quick 3; 0 = never wait)")
    p.add_argument("--quiet-cpu", type=float, default=0.15, help="(default %(default)s)")
    p.add_argument("--retries", type=int,
                   help="re-runs of a disturbed step (other processes > 20%% of a core); the "
                        "least disturbed is kept (default 2, quick 0)")
    p.add_argument("--ws-client", choices=("raw", "ws"), default="raw",
                   help="load generator's WebSocket client: its own minimal one (default) or "
                        "the `ws` package (cross-check; more CPU per delivery)")
    p.add_argument("--sio-client", choices=("lite", "official", "upgrade"), default="lite",
                   help="Socket.IO client: minimal protocol-5 client (default), "
                        "socket.io-client on WebSocket (cross-check; ~2x CPU per delivery), "
                        "or socket.io-client polling first, then upgrading (browsers' default)")
    p.add_argument("--max-minutes", type=float,
                   help="global deadline (default 25 per round, quick 5 per round)")
    p.add_argument("--scenario-timeout", type=int, default=240,
                   help="hard limit per load generator run, seconds")
    p.add_argument("--chatapi", default=f"{VENV_BIN / 'chatapi'} serve",
                   help="command that starts ChatAPI (default: %(default)s)")
    p.add_argument("--chatapi-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for ChatAPI (repeatable)")
    p.add_argument("--out", type=Path, help="JSON results path (default bench/results/)")
    p.add_argument("--profile", action="store_true",
                   help="sample the server with py-spy (pip install py-spy) during the max "
                        "step / connect phase / REST phases; summaries in the output, "
                        "collapsed stacks in the logs (slightly disturbs the figures)")
    p.add_argument("--lock-wait", type=float, default=1800,
                   help="seconds to wait for another bench run on this machine to finish "
                        "(default %(default)s)")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="print the tables of an earlier run's JSON and exit")
    args = p.parse_args(argv)
    args.chatapi_command = args.chatapi.split()
    args.profile_cmd = shutil.which("py-spy", path=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    if args.profile and args.profile_cmd is None:
        p.error("--profile needs py-spy: .venv/bin/pip install py-spy")
    args.chatapi_env = dict(kv.split("=", 1) for kv in args.chatapi_env)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        data = json.loads(args.render.read_text())
        print(report.render(data["runs"], data["meta"]))
        return 0
    sc = QUICK if args.quick else FULL
    if args.subs:
        sc = Scale(**{**sc.__dict__, "subs": args.subs})
    if args.measure:
        sc = Scale(**{**sc.__dict__, "measure_s": args.measure})
    if args.quiet_wait is not None:
        sc = Scale(**{**sc.__dict__, "quiet_wait_s": args.quiet_wait})
    if args.retries is not None:
        sc = Scale(**{**sc.__dict__, "retries": args.retries})
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        sys.exit(f"unknown workloads: {unknown}; choose from {list(WORKLOADS)}")
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    if "chatapi" in wanted and not chatapi_available(args.chatapi_command):
        print(f"! ChatAPI is not runnable here ({args.chatapi} --help failed): baselines only",
              flush=True)
        wanted = [w for w in wanted if not w.startswith("chatapi")]
    if "chatapi-2node" in wanted and shutil.which("redis-server") is None:
        print("! redis-server not found: skipping the 2-node runs", flush=True)
        wanted.remove("chatapi-2node")
    lock = acquire_machine_lock(args.lock_wait)
    ensure_loadgen()
    loadgen_selftest()
    raise_fd_limit()
    signal.signal(signal.SIGTERM, _cleanup)
    signal.signal(signal.SIGINT, _cleanup)
    deadline = time.monotonic() + 60 * (args.max_minutes
                                        or (5 if args.quick else 25) * args.rounds)
    started = time.strftime("%Y%m%d-%H%M%S")
    runs = run_all(names, wanted, sc, args, RESULTS_DIR / "logs" / started, deadline)
    out = args.out or RESULTS_DIR / f"{started}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"started": started, "quick": args.quick, "scale": sc.__dict__,
            "pinned": args.pin and bool(taskset_prefix(0)), "cpus": os.cpu_count(),
            "python": sys.version.split()[0], "node": _node_version(), "repo": str(REPO),
            "git": _git_head(), "chatapi": args.chatapi,
            "chatapi_env": sorted(args.chatapi_env),
            "workloads": {n: WORKLOADS[n].about for n in names}}
    meta["rounds"] = args.rounds
    out.write_text(json.dumps({"meta": meta, "runs": runs}, indent=1, default=str))
    print()
    print(report.render(runs, meta))
    print(f"\nJSON: {out}")
    lock.close()
    return 0


def _node_version() -> str:
    try:
        return subprocess.run(["node", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except OSError:
        return "?"


def _git_head() -> str:
    try:
        # `-dirty`: the server ran from a working tree with uncommitted changes
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                              text=True, cwd=REPO, timeout=10).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
