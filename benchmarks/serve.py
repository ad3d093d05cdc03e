"""Serving throughput of `stave run` against nginx serving the same bytes as static files.

    python -m benchmarks.serve [--tracks 1000] [--duration 10] [--connections 50]

Builds a node whose catalog of N tracks is published in one feed: a 20 MiB WAV take and N - 1
distinct short WAV tones. Starts `stave run` on a free loopback port (access log on, to a file),
and nginx (Debian's package, one worker, access log on, sendfile) on another, serving the feed's
exact bytes and the take's exact bytes as static files from a temporary directory. Then wrk
(2 threads) measures, for each server in turn:

- `GET /feed.json` answered 200 (requests/s),
- `GET /feed.json` with `If-None-Match` answered 304 (requests/s),
- a full `GET` of the 20 MiB take (bytes/s),
- a ranged `GET` of its first MiB, `Range: bytes=0-1048575` (bytes/s),
- a ranged `GET` from its middle to its end (`Range: bytes=N-`), as an audio player sends when
  the listener seeks (bytes/s),

alternating the servers for `--rounds` runs and keeping each one's best, then prints the figures
and the ratios against the goals (feed 200s at least 0.25 of nginx, streaming at least 0.8),
exiting 1 if one is missed. Needs `nginx` and `wrk` (`apt-get install nginx wrk`). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    HOST,
    START_TIMEOUT,
    nginx_binary,
    nginx_config,
    publish_node,
    running,
    start_nginx,
    stave_run_command,
    stop,
    wait_for_200,
)
from tests.support.audio import write_long_take, write_tone
from tests.support.net import free_port

BIG_FILE_BYTES = 20 * 1024 * 1024
RANGE = "bytes=0-1048575"
ARTIST = "Benchmark Artist"

WRK_SUMMARY = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SUMMARY %d %d %d %d\\n", summary.requests, summary.bytes,
    summary.duration, e.connect + e.read + e.write + e.timeout + e.status))
end
"""


@dataclass(frozen=True)
class Measured:
    requests: int
    bytes: int
    seconds: float
    errors: int

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def bytes_per_second(self) -> float:
        return self.bytes / self.seconds


@dataclass(frozen=True)
class Scenario:
    name: str
    unit: str  # "req/s" or "B/s"
    goal: float | None
    expected_status: int


async def build_node(root: Path, sources: Path, tracks: int) -> tuple[str, str, int]:
    """Publish a 20 MiB take and `tracks - 1` short tones in one feed.

    Returns the feed's CID, the take's CID and the take's size as stored (with its tags).
    """
    sources.mkdir()
    long_take = sources / "long-take.wav"
    write_long_take(long_take, BIG_FILE_BYTES)
    files = [long_take]
    for index in range(tracks - 1):
        path = sources / f"tone-{index:04d}.wav"
        write_tone(path, index)
        files.append(path)
    manifests, feed_cid = await publish_node(root, ARTIST, files)
    audio = manifests[0]["audio"]
    return feed_cid, audio["cid"], audio["size"]


@contextmanager
def nginx_running(www: Path, tmp: Path, workers: str) -> Iterator[str]:
    port = free_port()
    conf = nginx_config(www, tmp, port, workers)
    process = start_nginx(nginx_binary() or "/usr/sbin/nginx", conf)
    url = f"http://{HOST}:{port}/"
    try:
        wait_for_200(url + "feed.json", process, time.monotonic() + START_TIMEOUT)
        yield url
    finally:
        stop(process)


def fetch(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (names lower-cased) and body of one GET."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, received, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:  # 304 arrives as an "error"
        status, received, body = e.code, e.headers, e.read()
    return status, {name.lower(): value for name, value in received.items()}, body


def wrk(url: str, headers: dict[str, str], args: argparse.Namespace, script: Path) -> Measured:
    command = ["wrk", "-t", str(args.threads), "-c", str(args.connections),
               "-d", f"{args.duration}s", "--timeout", "30s", "-s", str(script)]  # fmt: skip
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("SUMMARY "))
    requests, body_bytes, micros, errors = (int(v) for v in line.split()[1:])
    return Measured(requests, body_bytes, micros / 1e6, errors)


def human(value: float, unit: str) -> str:
    if unit == "B/s":
        return f"{value / 1e6:,.0f} MB/s"
    return f"{value:,.0f} req/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=1000, help="catalog size (default 1000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--nginx-workers", default="1", help="nginx worker_processes (1)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per server, best kept (2)")
    parser.add_argument("--only", default="", help="run the scenarios whose name has this")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not (shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists()):
            raise SystemExit(f"{tool} is not installed: apt-get install -y nginx wrk")

    with tempfile.TemporaryDirectory(prefix="stave-serve-bench-") as directory:
        tmp = Path(directory)
        tmp.chmod(0o755)  # nginx's worker runs as an unprivileged user and must read www/
        started = time.perf_counter()
        feed_cid, big_cid, big_size = asyncio.run(
            build_node(tmp / "node", tmp / "sources", args.tracks)
        )
        seek = f"bytes={big_size // 2}-"  # what an audio player sends when the listener seeks
        store = tmp / "node" / "store" / "files"
        www = tmp / "www"
        www.mkdir()
        shutil.copyfile(store / feed_cid, www / "feed.json")
        shutil.copyfile(store / big_cid, www / "long-take.wav")
        feed_size = (www / "feed.json").stat().st_size
        print(
            f"catalog: {args.tracks} tracks, feed.json {feed_size:,} bytes, the take "
            f"{big_size:,} bytes; built in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        script = tmp / "summary.lua"
        script.write_text(WRK_SUMMARY, encoding="utf-8")
        (tmp / "nginx").mkdir()

        with (
            running(stave_run_command(tmp / "node"), tmp / "stave.log") as (_, stave),
            nginx_running(www, tmp / "nginx", args.nginx_workers) as nginx,
        ):
            stave_feed, nginx_feed = stave + "feed.json", nginx + "feed.json"
            stave_big, nginx_big = f"{stave}ipfs/{big_cid}", nginx + "long-take.wav"
            stave_etag = fetch(stave_feed, {})[1]["etag"]
            nginx_etag = fetch(nginx_feed, {})[1]["etag"]
            runs: list[tuple[Scenario, tuple[str, dict[str, str]], tuple[str, dict[str, str]]]] = [
                (
                    Scenario("GET /feed.json (200)", "req/s", 0.25, 200),
                    (stave_feed, {}),
                    (nginx_feed, {}),
                ),
                (
                    Scenario("GET /feed.json (304)", "req/s", None, 304),
                    (stave_feed, {"If-None-Match": stave_etag}),
                    (nginx_feed, {"If-None-Match": nginx_etag}),
                ),
                (
                    Scenario("GET 20 MiB take (200)", "B/s", 0.8, 200),
                    (stave_big, {}),
                    (nginx_big, {}),
                ),
                (
                    Scenario("GET first MiB (206)", "B/s", 0.8, 206),
                    (stave_big, {"Range": RANGE}),
                    (nginx_big, {"Range": RANGE}),
                ),
                (
                    Scenario("GET seek to half (206)", "B/s", 0.8, 206),
                    (stave_big, {"Range": seek}),
                    (nginx_big, {"Range": seek}),
                ),
            ]
            runs = [run for run in runs if args.only in run[0].name]
            # Both servers must answer the same bytes before they are timed.
            for scenario, (s_url, s_headers), (n_url, n_headers) in runs:
                s_status, _, s_body = fetch(s_url, s_headers)
                n_status, _, n_body = fetch(n_url, n_headers)
                if not (s_status == n_status == scenario.expected_status and s_body == n_body):
                    raise SystemExit(f"{scenario.name}: stave {s_status}, nginx {n_status}")

            print(
                f"wrk: {args.threads} threads, {args.connections} connections, {args.duration} s"
                f" per run, best of {args.rounds}; nginx workers: {args.nginx_workers}\n"
            )
            header = f"{'scenario':<24}{'stave':>16}{'nginx':>16}{'ratio':>8}{'goal':>8}"
            print(header + "\n" + "-" * len(header), flush=True)
            failed = False
            for scenario, (s_url, s_headers), (n_url, n_headers) in runs:
                # Alternate the two servers and keep each one's best round: the machine is
                # shared, and a busy moment should not count against either.
                stave_rounds, nginx_rounds = [], []
                for _ in range(args.rounds):
                    stave_rounds.append(wrk(s_url, s_headers, args, script))
                    nginx_rounds.append(wrk(n_url, n_headers, args, script))
                measured_stave = max(stave_rounds, key=lambda m: m.requests_per_second)
                measured_nginx = max(nginx_rounds, key=lambda m: m.requests_per_second)
                if measured_stave.errors or measured_nginx.errors:
                    print(f"  errors: stave {measured_stave.errors}, nginx {measured_nginx.errors}")
                if scenario.unit == "B/s":
                    s_value = measured_stave.bytes_per_second
                    n_value = measured_nginx.bytes_per_second
                else:
                    s_value = measured_stave.requests_per_second
                    n_value = measured_nginx.requests_per_second
                ratio = s_value / n_value
                goal = f"≥{scenario.goal}" if scenario.goal else "-"
                if scenario.goal and ratio < scenario.goal:
                    failed = True
                    goal += " ✗"
                print(
                    f"{scenario.name:<24}{human(s_value, scenario.unit):>16}"
                    f"{human(n_value, scenario.unit):>16}{ratio:>8.2f}{goal:>8}",
                    flush=True,
                )
                extra = (
                    f"{'':<24}{human(measured_stave.requests_per_second, 'req/s'):>16}"
                    f"{human(measured_nginx.requests_per_second, 'req/s'):>16}"
                    if scenario.unit == "B/s"
                    else f"{'':<24}{human(measured_stave.bytes_per_second, 'B/s'):>16}"
                    f"{human(measured_nginx.bytes_per_second, 'B/s'):>16}"
                )
                print(extra, flush=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
