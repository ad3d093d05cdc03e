"""Idle memory and cold start of `stave run` on a node with 1,000 tracks and 1,000 follows.

    python -m benchmarks.idle [--tracks 1000] [--follows 1000] [--settle 10] [--starts 5]

Builds a data directory with N published tracks (short generated WAV tones, published in one
batch with `Publisher.add_many`) and M follows: a fixture server in its own process
(`benchmarks.federation`'s, on loopback) serves M signed feeds of one track each; their node
documents are read, the artists recorded through the federation transaction and one full sync
run, so every follow has an accepted feed. The poll interval is then set to a year, so the node
idles once its startup work is done. The fixture server keeps running while the node is
measured (the node subscribes to the fixture hubs on startup).

- Idle resident memory: start `stave run`, GET /healthz and /feed.json, wait `--settle` seconds,
  read VmRSS from /proc/PID/status. Goal: at most 60 MB. Reference measured in the same run: a
  bare aiohttp server process (`import aiohttp`, one route, idle) read the same way. For scale
  only (not measured here): Navidrome documents under 50 MB, a small Funkwhale install about
  500 MB.
- Cold start: time from spawning `stave run --port 0` to the first 200 of GET /healthz (and of
  GET /feed.json), best of `--starts`. Goal: at most 1.5 s. References measured in the same
  run: `python -c pass`, and nginx starting and serving a static file (when installed).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    HOST,
    START_TIMEOUT,
    nginx_binary,
    nginx_config,
    running,
    start_nginx,
    stave_run_command,
    stop,
    wait_for_200,
)
from tests.support.audio import write_tone
from tests.support.net import free_port

GOAL_RSS_MB = 60.0
GOAL_COLD_START_SECONDS = 1.5
YEAR_SECONDS = 365 * 24 * 3600

BARE_AIOHTTP = """
import sys
from aiohttp import web

async def healthz(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_get("/healthz", healthz)
print(f"http://127.0.0.1:{sys.argv[1]}/", flush=True)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

# What `stave run` loads before it opens anything: how much of its footprint is code, not data.
IMPORTS_ONLY = """
import node.cli, node.web.app, node.federation.runtime
from pathlib import Path
status = Path("/proc/self/status").read_text().splitlines()
print(next(line for line in status if line.startswith("VmRSS:")).split()[1])
"""


@dataclass(frozen=True)
class IdleFigures:
    """What one run measured; memory in MB (10^6 bytes), times in seconds."""

    tracks: int
    follows: int
    stave_rss_mb: float
    bare_aiohttp_rss_mb: float
    imports_rss_mb: float
    healthz_seconds: float
    feed_seconds: float
    healthz_runs: list[float]
    python_pass_seconds: float
    nginx_seconds: float | None


def resident_mb(pid: int) -> float:
    """VmRSS of a process, in MB (10^6 bytes)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise SystemExit(f"no VmRSS for process {pid}")


# --- building the node -------------------------------------------------------------------


async def build_node(root: Path, sources: Path, tracks: int, bases: list[str]) -> None:
    """Publish `tracks` tones and follow every fixture feed at `bases`, synced once."""
    from benchmarks.federation import follow_all
    from node.catalog import open_catalog
    from node.datadir import init_data_dir, open_node
    from node.federation.context import Federation
    from node.federation.follows import FollowService
    from node.federation.http import Limits, OutboundClient
    from node.publish import Publisher
    from node.settings import render_config

    sources.mkdir()
    files = []
    for index in range(tracks):
        path = sources / f"tone-{index:04d}.wav"
        write_tone(path, index)
        files.append(path)
    init_data_dir(root, "Benchmark Artist", f"http://{HOST}:8080/")
    settings = {
        "node.name": "Benchmark Artist",
        "node.url": f"http://{HOST}:8080/",
        "federation.allow_private_addresses": True,
        "federation.max_follows": max(5000, len(bases)),
        "federation.poll_interval_seconds": YEAR_SECONDS,
    }
    (root / "config.toml").write_text(render_config(settings), encoding="utf-8")
    async with open_catalog(root / "catalog.sqlite"):
        pass
    async with open_node(root) as node:
        if files:
            await Publisher(node).add_many(files)
        async with OutboundClient(
            allow_private=True, limits=Limits(per_host=8, max_connections=128)
        ) as client:
            service = FollowService(Federation(node, node.catalog, client))
            await follow_all(service, bases)
            outcomes = await service.sync_all()
            refused = [o for o in outcomes if o.verdict != "accepted"]
            if refused:
                raise SystemExit(f"{len(refused)} fixture feeds not accepted: {refused[0]}")
            service.close()
        node.store.close()


@contextmanager
def fixture_feeds(feeds: int) -> Iterator[list[str]]:
    """The base URLs of `feeds` signed feeds served by a fixture process on loopback."""
    from benchmarks.federation import _wait_for, serve

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    server = context.Process(target=serve, args=(feeds, 1, 4, send), daemon=True)
    server.start()
    try:
        yield _wait_for(receive, server)
    finally:
        server.terminate()
        server.join()


# --- measuring ---------------------------------------------------------------------------


def idle_rss(command: list[str], log: Path, paths: list[str], settle: float) -> float:
    with running(command, log) as (process, url):
        deadline = time.monotonic() + START_TIMEOUT
        for path in paths:
            wait_for_200(url + path, process, deadline)
        time.sleep(settle)
        if process.poll() is not None:
            raise SystemExit(f"{command[2]} exited while idle")
        return resident_mb(process.pid)


def imports_rss() -> float:
    """VmRSS in MB of a process that has only imported what `stave run` imports."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS_ONLY], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip()) * 1024 / 1e6


def cold_start(root: Path, log: Path) -> tuple[float, float]:
    """Seconds from spawning `stave run` to the first 200 of /healthz, then of /feed.json."""
    started = time.perf_counter()
    with running(stave_run_command(root), log) as (process, url):
        deadline = time.monotonic() + START_TIMEOUT
        wait_for_200(url + "healthz", process, deadline)
        healthz = time.perf_counter() - started
        wait_for_200(url + "feed.json", process, deadline)
        feed = time.perf_counter() - started
    return healthz, feed


def python_pass() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def nginx_start(tmp: Path) -> float | None:
    """Seconds from spawning nginx to its first 200 of a static file, or None without nginx."""
    nginx = nginx_binary()
    if nginx is None:
        return None
    shutil.rmtree(tmp, ignore_errors=True)
    www = tmp / "www"
    www.mkdir(parents=True)
    (www / "feed.json").write_text("{}", encoding="utf-8")
    port = free_port()
    conf = nginx_config(www, tmp, port)
    started = time.perf_counter()
    process = start_nginx(nginx, conf)
    try:
        wait_for_200(f"http://{HOST}:{port}/feed.json", process, time.monotonic() + START_TIMEOUT)
        return time.perf_counter() - started
    finally:
        stop(process)


def run(
    tracks: int = 1000, follows: int = 1000, settle: float = 10.0, starts: int = 5
) -> IdleFigures:
    """Build the node, then measure idle memory and cold start with their references."""
    with tempfile.TemporaryDirectory(prefix="stave-idle-bench-") as directory:
        tmp = Path(directory)
        tmp.chmod(0o755)  # nginx's worker runs as an unprivileged user
        log = tmp / "server.log"
        with fixture_feeds(follows) as bases:
            started = time.perf_counter()
            asyncio.run(build_node(tmp / "node", tmp / "sources", tracks, bases))
            print(
                f"node: {tracks} tracks, {follows} follows; built in "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
            stave_rss = idle_rss(
                stave_run_command(tmp / "node"), log, ["healthz", "feed.json"], settle
            )
            port = str(free_port())
            bare_rss = idle_rss(
                [sys.executable, "-c", BARE_AIOHTTP, port], log, ["healthz"], settle
            )
            imports = imports_rss()
            healthz_runs, feed_runs, pass_runs, nginx_runs = [], [], [], []
            for _ in range(starts):
                healthz, feed = cold_start(tmp / "node", log)
                healthz_runs.append(healthz)
                feed_runs.append(feed)
                pass_runs.append(python_pass())
                nginx = nginx_start(tmp / "nginx")
                if nginx is not None:
                    nginx_runs.append(nginx)
    return IdleFigures(
        tracks=tracks,
        follows=follows,
        stave_rss_mb=stave_rss,
        bare_aiohttp_rss_mb=bare_rss,
        imports_rss_mb=imports,
        healthz_seconds=min(healthz_runs),
        feed_seconds=min(feed_runs),
        healthz_runs=healthz_runs,
        python_pass_seconds=min(pass_runs),
        nginx_seconds=min(nginx_runs) if nginx_runs else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=1000)
    parser.add_argument("--follows", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=10.0, help="idle seconds (default 10)")
    parser.add_argument("--starts", type=int, default=5, help="cold starts, best kept (5)")
    args = parser.parse_args()
    f = run(args.tracks, args.follows, args.settle, args.starts)
    verdict = "meets" if f.stave_rss_mb <= GOAL_RSS_MB else "misses"
    print(
        f"idle RSS:     {f.stave_rss_mb:6.1f} MB ({verdict} the goal of {GOAL_RSS_MB:g} MB); "
        f"bare aiohttp {f.bare_aiohttp_rss_mb:.1f} MB, ratio "
        f"{f.stave_rss_mb / f.bare_aiohttp_rss_mb:.2f}"
    )
    print(f"              Stave's imports alone: {f.imports_rss_mb:.1f} MB")
    print("              for scale: Navidrome documents < 50 MB, a small Funkwhale ~500 MB")
    verdict = "meets" if f.healthz_seconds <= GOAL_COLD_START_SECONDS else "misses"
    runs = ", ".join(f"{t:.2f}" for t in f.healthz_runs)
    print(
        f"cold start:   {f.healthz_seconds:6.2f} s to /healthz [{runs}], {f.feed_seconds:.2f} s "
        f"to /feed.json ({verdict} the goal of {GOAL_COLD_START_SECONDS:g} s)"
    )
    nginx = "not installed" if f.nginx_seconds is None else f"{f.nginx_seconds:.3f} s"
    print(f"references:   python -c pass {f.python_pass_seconds:.3f} s, nginx start+serve {nginx}")


if __name__ == "__main__":
    main()
