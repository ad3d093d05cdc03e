"""Benchmark: one new track fanned out to 10,000 fediverse followers (not a timed test).

    python -m benchmarks.fediverse_fanout [--followers 10000] [--inboxes 500] [--ports 10]

A fixture server in a separate process listens on `--ports` ports of 127.0.0.1 and serves
`--inboxes` shared inboxes spread over them; it verifies EVERY request in full — the draft-cavage
signature with httpsig.verify_request against the node's actor key, the Digest against the body
— answers 202 (401 to a request that does not verify) and counts arrivals per inbox and
activity. The node is a real data directory with `--followers` followers recorded in its
catalog, `k`-th follower on shared inbox `k mod --inboxes`. In a node process of its own the
track is published (`Publisher.add`, which queues the post's `Create` to every shared inbox) and
the delivery worker drains the queue with its defaults through the guarded client.

Printed: deliveries per second and the seconds from publishing to the last delivery (goal: all
delivered within 60 s); the node process's peak RSS (VmHWM; goal: at most 100 MB); the raw
RSA-2048 signing rate of `cryptography` measured in the same run, since every delivery is one
signature, and the ratio of the two. A second scenario gives every follower only a personal
inbox (no sharedInbox), so the same publish makes `--followers` deliveries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import tempfile
import time
import urllib.request
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GOAL_SECONDS = 60.0
SETTLE_SECONDS = 3.0  # after stave run listens: its first rounds of background work
DEADLINE_SECONDS = 300.0
GOAL_RSS_MB = 100.0
HOST = "127.0.0.1"


# --- the fixture inboxes (their own process) -----------------------------------------------


def serve(ports: int, pipe: Connection) -> None:
    """Serve the fixture inboxes until terminated: sends their ports through `pipe`, receives
    the node's actor public key (PEM), acknowledges it."""
    asyncio.run(_serve(ports, pipe))


async def _serve(ports: int, pipe: Connection) -> None:
    from node.errors import SignatureError
    from node.fediverse.httpsig import load_public_key, verify_request

    arrivals: Counter[tuple[str, str]] = Counter()
    refusals: list[str] = []

    async def inbox(request: web.Request) -> web.Response:
        body = await request.read()
        url = f"http://{request.host}{request.path_qs}"
        try:
            verify_request("POST", url, dict(request.headers), body, key)
        except SignatureError as e:
            refusals.append(str(e))
            return web.Response(status=401, text=str(e))
        arrivals[(url, json.loads(body)["id"])] += 1
        return web.Response(status=202)

    async def stats(request: web.Request) -> web.Response:
        repeated = sum(1 for count in arrivals.values() if count > 1)
        report = {
            "requests": sum(arrivals.values()) + len(refusals),
            "verified": sum(arrivals.values()),
            "distinct": len(arrivals),
            "repeated": repeated,
            "refused": len(refusals),
            "first_refusal": refusals[0] if refusals else None,
        }
        arrivals.clear()
        refusals.clear()
        return web.json_response(report)

    async def count(request: web.Request) -> web.Response:
        return web.json_response(sum(arrivals.values()) + len(refusals))

    app = web.Application()
    app.router.add_post("/{path:.*}", inbox)
    app.router.add_get("/stats", stats)
    app.router.add_get("/count", count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    bound = []
    for _ in range(ports):
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        bound.append(runner.addresses[-1][1])
    pipe.send(bound)
    key = load_public_key(await asyncio.to_thread(pipe.recv))
    pipe.send("ready")
    await asyncio.Event().wait()


def fixture_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://{HOST}:{port}/stats", timeout=30) as response:
        stats: dict[str, Any] = json.load(response)
        return stats


def fixture_count(port: int) -> int:
    """Requests the fixture received so far."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/count", timeout=30) as response:
        return int(json.load(response))


# --- the node: the real `stave run`, and `stave add` beside it -----------------------------


def status_mb(pid: int, field: str) -> float:
    """A figure of /proc/PID/status (VmRSS, VmHWM …) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve_and_publish(root: Path, audio: Path, expected: int, port: int) -> dict[str, Any]:
    """`stave run` of the node; once settled, `stave add` of `audio`; wait until the fixture
    on `port` has had `expected` requests. The times, and `stave run`'s memory."""
    from benchmarks.common import running, stave_run_command
    from tests.support.cli import stave_command

    log = root.parent / f"{root.name}-run.log"
    with running(stave_run_command(root), log) as (process, _url):
        time.sleep(SETTLE_SECONDS)
        rss_before = status_mb(process.pid, "VmRSS")
        started = time.perf_counter()
        adding = subprocess.Popen(
            stave_command(root, "add", str(audio)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        first: float | None = None
        received = 0
        while received < expected or adding.poll() is None:
            if time.perf_counter() - started > DEADLINE_SECONDS:
                break
            if process.poll() is not None:
                raise SystemExit(f"stave run exited with {process.returncode}; see {log}")
            received = fixture_count(port)
            if received and first is None:
                first = time.perf_counter()
            time.sleep(0.02)
        finished = time.perf_counter()
        peak = status_mb(process.pid, "VmHWM")
        _, error = adding.communicate()
        if adding.returncode != 0:
            raise SystemExit(f"stave add failed: {error.decode().strip()}")
    counts = asyncio.run(_delivery_counts(root))
    return {
        "received": received,
        "first_seconds": (first or finished) - started,
        "delivery_seconds": finished - (first or started),
        "total_seconds": finished - started,
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak,
        "counts": counts,
    }


async def _delivery_counts(root: Path) -> dict[str, int]:
    from node.catalog import open_catalog

    async with open_catalog(root / "catalog.sqlite") as catalog:
        return await catalog.delivery_counts()


# --- the run -------------------------------------------------------------------------------


def raw_sign_rate(seconds: float = 2.0) -> float:
    """RSA-2048 PKCS#1 v1.5 SHA-256 signatures per second with `cryptography`, one core, over
    a draft-cavage signing string's length."""
    key = rsa.generate_private_key(65537, 2048)
    message = os.urandom(300)
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(50):
            key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        count += 50
    return count / elapsed


async def make_node(
    root: Path, followers: int, inboxes: int, ports: list[int], shared: bool
) -> str:
    """A node at `root` with `followers` followers; its actor public key."""
    from node.catalog import FediverseFollower
    from node.datadir import init_data_dir, open_node
    from node.federation.context import now_text
    from node.settings import render_config

    init_data_dir(root, "Benchmark Artist", "http://127.0.0.1:9/")
    settings = {
        "node.name": "Benchmark Artist",
        "node.url": "http://127.0.0.1:9/",
        "federation.allow_private_addresses": True,
    }
    (root / "config.toml").write_text(render_config(settings), encoding="utf-8")
    async with open_node(root) as node:
        async with node.catalog.transaction() as tx:
            for n in range(followers):
                k = n % inboxes
                server = f"http://{HOST}:{ports[k % len(ports)]}"
                await tx.add_fediverse_follower(
                    FediverseFollower(
                        actor=f"{server}/s{k}/users/{n}",
                        inbox=f"{server}/s{k}/users/{n}/inbox",
                        shared_inbox=f"{server}/s{k}/inbox" if shared else None,
                        domain=HOST,
                        acct=None,
                        follow_id=None,
                        followed_at=now_text(),
                    )
                )
        pem = node.actor_key.public_key_pem
        node.store.close()
    return pem


def _wait_for(receive: Connection, server: Any) -> Any:
    while not receive.poll(1.0):
        if not server.is_alive():
            raise SystemExit("the fixture server failed to start (see its traceback above)")
    return receive.recv()


def scenario(
    tmp: Path, name: str, followers: int, inboxes: int, ports: int, shared: bool, audio: Path
) -> dict[str, Any]:
    """Start the fixture inboxes, make the node with followers on them, give the fixture the
    node's key, fan the track out; the node's figures and the fixture's counts."""
    root = tmp / name
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    server = context.Process(target=serve, args=(ports, theirs), daemon=True)
    server.start()
    try:
        bound: list[int] = _wait_for(ours, server)
        ours.send(asyncio.run(make_node(root, followers, inboxes, bound, shared)))
        _wait_for(ours, server)  # the fixture has the key
        expected = inboxes if shared else followers
        result = serve_and_publish(root, audio, expected, bound[0])
        result["expected"] = expected
        result["fixture"] = fixture_stats(bound[0])
        result["ports"] = len(bound)
        return result
    finally:
        server.terminate()
        server.join()


def report(name: str, result: dict[str, Any], raw: float, followers: int) -> None:
    fixture = result["fixture"]
    deliveries = result["received"]
    seconds = result["delivery_seconds"]
    rate = deliveries / seconds if seconds else 0.0
    print(
        f"[{name}] {followers} followers, {result['expected']} inboxes over {result['ports']}"
        f" ports; catalog after: {result['counts']}"
    )
    print(
        f"[{name}] first delivery {result['first_seconds']:.2f} s after stave add started,"
        f" the last {result['total_seconds']:.2f} s after"
    )
    print(f"[{name}] deliveries: {rate:,.0f} deliveries/s ({deliveries} in {seconds:.2f} s)")
    ok = (
        "meets"
        if result["total_seconds"] <= GOAL_SECONDS and deliveries >= result["expected"]
        else "misses"
    )
    print(
        f"[{name}] publish to last delivery: {result['total_seconds']:.2f} s"
        f" ({ok} the goal of {GOAL_SECONDS:g} s)"
    )
    ok = "meets" if result["peak_rss_mb"] <= GOAL_RSS_MB else "misses"
    print(
        f"[{name}] stave run peak RSS: {result['peak_rss_mb']:.1f} MB (VmHWM;"
        f" {result['rss_before_mb']:.1f} MB before; {ok} the goal of {GOAL_RSS_MB:g} MB)"
    )
    print(f"[{name}] ratio to raw RSA-2048 signing: {rate / raw:.2f}")
    print(
        f"[{name}] fixture: {fixture['verified']} requests verified in full, {fixture['refused']}"
        f" refused, {fixture['distinct']} distinct (inbox, activity), {fixture['repeated']}"
        " received more than once"
    )
    if fixture["first_refusal"]:
        print(f"[{name}] first refusal: {fixture['first_refusal']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=10_000)
    parser.add_argument("--inboxes", type=int, default=500, help="shared inboxes")
    parser.add_argument("--ports", type=int, default=10, help="fixture ports on 127.0.0.1")
    parser.add_argument("--no-personal", action="store_true", help="skip the personal scenario")
    args = parser.parse_args()

    from tests.support.audio import write_wav

    raw_before = raw_sign_rate()
    with tempfile.TemporaryDirectory(prefix="stave-bench-") as directory:
        tmp = Path(directory)
        audio = write_wav(tmp / "track.wav", 4 * 1024 * 1024)
        shared = scenario(tmp, "shared", args.followers, args.inboxes, args.ports, True, audio)
        personal = None
        if not args.no_personal:
            personal = scenario(
                tmp, "personal", args.followers, args.followers, args.ports, False, audio
            )
    raw_after = raw_sign_rate()
    raw = (raw_before + raw_after) / 2
    print(
        f"raw RSA-2048 sign (cryptography, one core): {raw:,.0f}/s"
        f" (before {raw_before:,.0f}, after {raw_after:,.0f})"
    )
    report("shared inboxes", shared, raw, args.followers)
    if personal is not None:
        report("personal inboxes", personal, raw, args.followers)


if __name__ == "__main__":
    main()
