"""A bounded load test of `stave run` on loopback: many clients, zero 5xx, resident memory capped.

    python -m benchmarks.load [--clients 200] [--duration 60] [--uploads 20] [--rss-cap-mib 150]

Builds a node with one published track (a 5 MiB WAV take), starts
`stave run` on a free loopback port, then runs `--clients` concurrent clients for `--duration`
seconds, each in a loop picking one of:

- `GET /feed.json` (60 %),
- a ranged `GET /ipfs/{cid}` of the published take, a random 64 KiB range (35 %),
- an upload of the fixture MP3 through `POST /api/tracks` with the admin token (5 %), at most
  `--uploads` in all and two at a time (below `server.max_concurrent_uploads`), after which the
  client asks for the feed instead.

Every response status is counted per kind; the node's VmRSS is read from /proc/PID/status once a
second. Prints the figures as JSON and exits 1 on any 5xx, any 4xx to the feed (it always
exists), any failed connection, or a peak RSS over `--rss-cap-mib`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections import Counter
from pathlib import Path

import aiohttp

HOST = "127.0.0.1"
FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "audio" / "tone.mp3"
TAKE_BYTES = 5 * 1024 * 1024
RANGE_BYTES = 64 * 1024


def write_take(path: Path) -> None:
    """A WAV of about TAKE_BYTES of varied samples, so its CID is its own."""
    frames = TAKE_BYTES // 4
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(44100)
        rng = random.Random(7)
        block = bytes(rng.getrandbits(8) for _ in range(65536))
        for _ in range(frames * 4 // len(block)):
            out.writeframes(block)


async def build_node(root: Path, sources: Path) -> tuple[str, int]:
    """Publish the take; return its CID and stored size."""
    from node.datadir import init_data_dir, open_node
    from node.publish import Publisher

    sources.mkdir()
    take = sources / "take.wav"
    write_take(take)
    init_data_dir(root, "Load Test", f"http://{HOST}:8080/")
    async with open_node(root) as node:
        [manifest] = await Publisher(node).add_many([take])
        node.store.close()
    return manifest["audio"]["cid"], manifest["audio"]["size"]


def first_line(process: subprocess.Popen[bytes]) -> str:
    line: list[bytes] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: line.append(stdout.readline()))
    reader.start()
    reader.join(60)
    if not line or not line[0]:
        raise SystemExit("stave run printed no URL")
    return line[0].decode().strip()


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Load:
    def __init__(self, url: str, token: str, cid: str, size: int, args: argparse.Namespace):
        self.url = url
        self.token = token
        self.cid = cid
        self.size = size
        self.args = args
        self.statuses: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.first_errors: dict[str, str] = {}
        self.uploads_left = args.uploads
        self.upload_turns = asyncio.Semaphore(2)
        self.upload = FIXTURE.read_bytes()

    async def client(self, session: aiohttp.ClientSession, deadline: float, seed: int) -> None:
        rng = random.Random(seed)
        while time.monotonic() < deadline:
            roll = rng.random()
            kind = "feed"
            if roll >= 0.95 and self.uploads_left > 0:
                kind = "upload"
                self.uploads_left -= 1
            elif roll >= 0.60:
                kind = "range"
            try:
                status = await self.request(session, kind, rng)
                self.statuses[f"{kind} {status}"] += 1
            except (aiohttp.ClientError, TimeoutError) as e:
                self.failures[f"{kind} {type(e).__name__}"] += 1

    async def request(self, session: aiohttp.ClientSession, kind: str, rng: random.Random) -> int:
        if kind == "feed":
            async with session.get(self.url + "feed.json") as response:
                body = await response.read()
                if response.status >= 400:
                    self.first_errors.setdefault(f"feed {response.status}", body[:200].decode())
                return response.status
        if kind == "range":
            start = rng.randrange(0, self.size - RANGE_BYTES)
            headers = {"Range": f"bytes={start}-{start + RANGE_BYTES - 1}"}
            async with session.get(f"{self.url}ipfs/{self.cid}", headers=headers) as response:
                body = await response.read()
                assert response.status != 206 or len(body) == RANGE_BYTES
                return response.status
        async with self.upload_turns:
            form = aiohttp.FormData()
            form.add_field("file", self.upload, filename=f"load-{rng.randrange(10**9)}.mp3")
            form.add_field("title", f"Load {rng.randrange(10**9)}")
            async with session.post(
                self.url + "api/tracks",
                data=form,
                headers={"Authorization": f"Bearer {self.token}"},
            ) as response:
                await response.read()
                return response.status


async def run_load(url: str, token: str, cid: str, size: int, pid: int, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    load = Load(url, token, cid, size, args)
    samples: list[int] = []
    stop = asyncio.Event()

    async def sample() -> None:
        while not stop.is_set():
            samples.append(rss_kib(pid))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample())
    connector = aiohttp.TCPConnector(limit=args.clients)
    timeout = aiohttp.ClientTimeout(total=60)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = started + args.duration
        await asyncio.gather(*(load.client(session, deadline, n) for n in range(args.clients)))
    elapsed = time.monotonic() - started
    stop.set()
    await sampler
    return load, samples, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--rss-cap-mib", type=float, default=150.0)
    args = parser.parse_args()
    from node.datadir import DataDir

    with tempfile.TemporaryDirectory(prefix="stave-load-") as tmp:
        root = Path(tmp) / "node"
        cid, size = asyncio.run(build_node(root, Path(tmp) / "sources"))
        token = DataDir(root).admin_token()
        with (Path(tmp) / "run.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "node", "--data-dir", str(root), "run",
                 "--host", HOST, "--port", "0"],
                stdout=subprocess.PIPE,
                stderr=log,
            )  # fmt: skip
        try:
            url = first_line(process)
            idle = rss_kib(process.pid)
            load, samples, elapsed = asyncio.run(run_load(url, token, cid, size, process.pid, args))
        finally:
            process.terminate()
            process.wait(timeout=30)
    total = sum(load.statuses.values())
    server_errors = sum(n for k, n in load.statuses.items() if k.split()[1].startswith("5"))
    feed_errors = sum(n for k, n in load.statuses.items() if k.startswith("feed 4"))
    peak = max(samples) / 1024
    report = {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "requests": total,
        "requests_per_second": round(total / elapsed, 1),
        "statuses": dict(sorted(load.statuses.items())),
        "failed_connections": dict(load.failures),
        "first_error_bodies": load.first_errors,
        "server_errors": server_errors,
        "feed_errors": feed_errors,
        "rss_idle_mib": round(idle / 1024, 1),
        "rss_peak_mib": round(peak, 1),
        "rss_cap_mib": args.rss_cap_mib,
    }
    print(json.dumps(report, indent=2))
    if server_errors or feed_errors or load.failures or peak > args.rss_cap_mib:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
