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

Every response status is counted per kind, every 206 body is compared with the same bytes of the
take as served whole before the load, and the node's VmRSS is read from /proc/PID/status once a
second. Afterwards the feed must list every track an upload published.

This is the long mode, one command; `run_load` is the same run as a function, which
tests/test_load.py calls in a short mode. Prints the figures as JSON and exits 1 when
`problems` finds any: a 5xx, a 4xx to the feed (it always exists), a failed connection, a ranged
request not answered 206 or with other bytes than the take's, an upload not answered 201 or
missing from the feed, the node exiting, or a peak RSS over `--rss-cap-mib`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import threading
import time
import wave
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.common import publish_node, running, stave_run_command

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "audio" / "tone.mp3"
TAKE_BYTES = 5 * 1024 * 1024
RANGE_BYTES = 64 * 1024
UPLOADS_AT_ONCE = 2


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


async def build_node(root: Path, sources: Path) -> str:
    """Publish the take; return its CID."""
    sources.mkdir()
    take = sources / "take.wav"
    write_take(take)
    [manifest], _ = await publish_node(root, "Load Test", [take])
    cid: str = manifest["audio"]["cid"]
    return cid


def rss_kib(pid: int) -> int | None:
    """The process's resident memory in KiB, or None once it has gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return None


class Load:
    """The clients' shared state: what they may still do, and every outcome counted."""

    def __init__(self, url: str, token: str, cid: str, take: bytes, uploads: int) -> None:
        self.url = url
        self.token = token
        self.cid = cid
        self.take = take
        self.statuses: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.first_errors: dict[str, str] = {}
        self.wrong_ranges = 0
        self.published_titles: list[str] = []
        self.uploads_left = uploads
        self.upload_turns = asyncio.Semaphore(UPLOADS_AT_ONCE)
        self.upload = FIXTURE.read_bytes()

    async def client(self, session: aiohttp.ClientSession, deadline: float, seed: int) -> None:
        """One client's loop until the deadline: a feed, range or upload request at a time."""
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
                self.note_error(kind, response.status, body)
                return response.status
        if kind == "range":
            start = rng.randrange(0, len(self.take) - RANGE_BYTES)
            end = start + RANGE_BYTES
            headers = {"Range": f"bytes={start}-{end - 1}"}
            async with session.get(f"{self.url}ipfs/{self.cid}", headers=headers) as response:
                body = await response.read()
                if response.status == 206 and body != self.take[start:end]:
                    self.wrong_ranges += 1
                self.note_error(kind, response.status, body)
                return response.status
        title = f"Load {rng.randrange(10**9)}"
        async with self.upload_turns:
            form = aiohttp.FormData()
            form.add_field("file", self.upload, filename=f"load-{rng.randrange(10**9)}.mp3")
            form.add_field("title", title)
            async with session.post(
                self.url + "api/tracks",
                data=form,
                headers={"Authorization": f"Bearer {self.token}"},
            ) as response:
                body = await response.read()
                self.note_error(kind, response.status, body)
                if response.status == 201:
                    self.published_titles.append(title)
                return response.status

    def note_error(self, kind: str, status: int, body: bytes) -> None:
        """Keep the start of the first body of each error status, for the report."""
        if status >= 400:
            self.first_errors.setdefault(f"{kind} {status}", body[:200].decode(errors="replace"))


async def drive(
    url: str, token: str, cid: str, pid: int, clients: int, duration: float, uploads: int
) -> tuple[Load, list[int], float, list[str]]:
    """Run the clients against a running node.

    Returns the counts, the RSS samples (KiB), the seconds the clients ran, and the titles of
    the tracks the feed lists afterwards.
    """
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        # A thread of its own, so that the samples keep their pace however busy the clients are.
        while (kib := rss_kib(pid)) is not None:
            samples.append(kib)
            if stop.wait(1):
                return

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with session.get(f"{url}ipfs/{cid}") as response:
            response.raise_for_status()
            take = await response.read()
        load = Load(url, token, cid, take, uploads)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        deadline = started + duration
        await asyncio.gather(*(load.client(session, deadline, n) for n in range(clients)))
        elapsed = time.monotonic() - started
        stop.set()
        sampler.join()
        async with session.get(url + "feed.json") as response:
            feed = await response.json() if response.status == 200 else {}
    listed = [track["title"] for track in feed.get("tracks", [])]
    return load, samples, elapsed, listed


def run_load(
    clients: int = 200, duration: float = 60.0, uploads: int = 20, rss_cap_mib: float = 150.0
) -> dict[str, Any]:
    """Build a node, serve it with `stave run` on loopback, load it, and return the figures.

    The figures are counts as measured, whatever they show; `problems(figures)` says what in
    them breaks the load test's promises.
    """
    from node.datadir import DataDir

    if not FIXTURE.is_file():
        raise RuntimeError(f"{FIXTURE}: the upload fixture is missing (../shared beside the repo)")
    with tempfile.TemporaryDirectory(prefix="stave-load-") as tmp:
        root = Path(tmp) / "node"
        cid = asyncio.run(build_node(root, Path(tmp) / "sources"))
        token = DataDir(root).admin_token()
        with running(stave_run_command(root), Path(tmp) / "run.log") as (process, url):
            idle = rss_kib(process.pid) or 0
            load, samples, elapsed, listed = asyncio.run(
                drive(url, token, cid, process.pid, clients, duration, uploads)
            )
            exit_code = process.poll()
    total = sum(load.statuses.values())
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": total,
        "requests_per_second": round(total / elapsed, 1),
        "statuses": dict(sorted(load.statuses.items())),
        "failed_connections": dict(load.failures),
        "first_error_bodies": load.first_errors,
        "server_errors": sum(n for k, n in load.statuses.items() if k.split()[1][0] == "5"),
        "feed_errors": sum(n for k, n in load.statuses.items() if k.startswith("feed 4")),
        "wrong_ranges": load.wrong_ranges,
        "uploads_requested": uploads,
        "uploads_published": len(load.published_titles),
        "uploads_missing_from_feed": sorted(set(load.published_titles) - set(listed)),
        "node_exit_code": exit_code,
        "rss_samples": len(samples),
        "rss_idle_mib": round(idle / 1024, 1),
        "rss_peak_mib": round(max(samples, default=0) / 1024, 1),
        "rss_cap_mib": rss_cap_mib,
    }


def problems(figures: dict[str, Any]) -> list[str]:
    """Each way the figures of a run break the load test's promises, one line each."""
    found = []
    if figures["server_errors"]:
        found.append(f"{figures['server_errors']} responses were 5xx")
    if figures["feed_errors"]:
        found.append(f"{figures['feed_errors']} feed requests were answered 4xx")
    if figures["failed_connections"]:
        found.append(f"failed connections: {figures['failed_connections']}")
    ranges_refused = sum(
        n for k, n in figures["statuses"].items() if k.startswith("range ") and k != "range 206"
    )
    if ranges_refused:
        found.append(f"{ranges_refused} ranged requests were not answered 206")
    if figures["wrong_ranges"]:
        found.append(f"{figures['wrong_ranges']} ranged responses were not the take's bytes")
    if figures["uploads_published"] != figures["uploads_requested"]:
        found.append(
            f"{figures['uploads_published']} of {figures['uploads_requested']} uploads answered 201"
        )
    if figures["uploads_missing_from_feed"]:
        found.append(f"uploads missing from the feed: {figures['uploads_missing_from_feed']}")
    if figures["node_exit_code"] is not None:
        found.append(f"the node exited during the load with status {figures['node_exit_code']}")
    if not figures["rss_samples"]:
        found.append("the node's resident memory was never sampled")
    if figures["rss_peak_mib"] > figures["rss_cap_mib"]:
        found.append(f"peak RSS {figures['rss_peak_mib']} MiB is over {figures['rss_cap_mib']} MiB")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--rss-cap-mib", type=float, default=150.0)
    args = parser.parse_args()
    try:
        figures = run_load(args.clients, args.duration, args.uploads, args.rss_cap_mib)
    except RuntimeError as e:
        raise SystemExit(f"benchmarks.load: {e}") from None
    print(json.dumps(figures, indent=2))
    if found := problems(figures):
        raise SystemExit("benchmarks.load: " + "; ".join(found))


if __name__ == "__main__":
    main()
