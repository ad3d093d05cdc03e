"""Benchmark: following 1,000 feeds served on loopback (not a timed test).

    python -m benchmarks.federation [--feeds 1000] [--tracks 10] [--hosts 16]

A fixture server in a separate process (the followed nodes are not on this node's CPU in real
life either) serves N signed feeds of T signed tracks, spread over several loopback addresses
(127.0.0.1, 127.0.0.2, …), each feed with its node document, a hub that accepts and a strong
ETag with 304 on If-None-Match. The follower is a real data directory and the real services:
node documents are read and the artists recorded (timed apart), then it prints

- the rate of proofs verified during the first full sync round (N × (T + 1) proofs: each
  feed's and each track's), as a ratio to the raw Ed25519 verification rate of `cryptography`
  measured in the same run on a pre-loaded key (goal: at least 0.5);
- the time of a sync round in which nothing changed — conditional GETs answered 304 — (goal:
  at most 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.catalog import open_catalog
from node.datadir import init_data_dir, open_node
from node.federation.context import Federation, now_text
from node.federation.discovery import fetch_node_document
from node.federation.follows import FollowService
from node.federation.http import Limits, OutboundClient
from node.feed import (
    FollowState,
    build_feed,
    build_node_document,
    format_timestamp,
    judge_feed,
    serialize,
)
from node.identity import Identity
from node.manifest import build_manifest, content_ref
from node.settings import Config, render_config
from node.signing import sign_document
from node.terms import Terms

GOAL_RATIO = 0.5
GOAL_UNCHANGED_SECONDS = 5.0
_CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


# --- the fixture server (its own process) ---------------------------------------------------


def _identity(index: int) -> Identity:
    seed = hashlib.sha256(f"stave-benchmark-artist-{index}".encode()).digest()
    return Identity(Ed25519PrivateKey.from_private_bytes(seed))


def _documents(index: int, base: str, tracks: int) -> tuple[bytes, bytes]:
    """The signed node document and feed of fixture artist `index` at `base`."""
    identity = _identity(index)
    now = datetime.now(UTC)
    terms = Terms.from_config(Config())
    manifests = [
        sign_document(
            build_manifest(
                track_id=f"urn:uuid:{uuid.UUID(int=index * 1000 + n)}",
                revision=1,
                artist=identity.did,
                title=f"Track {n} of artist {index}",
                published=format_timestamp(now),
                duration_seconds=180.5 + n,
                audio=content_ref(_CID, "audio/mpeg", 4_000_000 + n),
                cover=None,
                terms=terms,
            ),
            identity,
        )
        for n in range(tracks)
    ]
    feed = build_feed(
        artist=identity.did,
        name=f"Artist {index}",
        url=base,
        sequence=1,
        previous=None,
        updated=now,
        expires_days=7,
        terms=terms,
        tracks=manifests,
        withdrawn=[],
    )
    node_document = build_node_document(
        artist=identity.did, name=f"Artist {index}", base_url=base, ipns=None, software_version="b"
    )
    return (
        serialize(sign_document(node_document, identity)),
        serialize(sign_document(feed, identity, created=feed["updated"])),
    )


def serve(feeds: int, tracks: int, hosts: int, ready: Connection) -> None:
    """Serve the fixture feeds until terminated; sends the base URLs through `ready`."""
    asyncio.run(_serve(feeds, tracks, hosts, ready))


async def _serve(feeds: int, tracks: int, hosts: int, ready: Connection) -> None:
    addresses = [f"127.0.0.{1 + n}" for n in range(hosts)]
    documents: dict[str, tuple[bytes, bytes, str]] = {}

    async def node_document(request: web.Request) -> web.Response:
        return web.Response(body=documents[request.match_info["i"]][0])

    async def feed(request: web.Request) -> web.Response:
        _, body, etag = documents[request.match_info["i"]]
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=body, content_type="application/json", headers={"ETag": etag})

    async def hub(request: web.Request) -> web.Response:
        return web.Response(status=202)

    async def mirrors(request: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/a/{i}/.well-known/stave", node_document)
    app.router.add_get("/a/{i}/feed.json", feed)
    app.router.add_post("/a/{i}/websub", hub)
    app.router.add_get("/a/{i}/mirrors", mirrors)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ports = []
    for address in addresses:
        site = web.TCPSite(runner, address, 0)
        await site.start()
        ports.append(runner.addresses[-1][1])
    bases = [f"http://{addresses[i % hosts]}:{ports[i % hosts]}/a/{i}/" for i in range(feeds)]
    for index, base in enumerate(bases):
        node_doc, body = _documents(index, base, tracks)
        documents[str(index)] = (node_doc, body, '"' + hashlib.sha256(body).hexdigest() + '"')
    ready.send(bases)
    await asyncio.Event().wait()


# --- the follower ---------------------------------------------------------------------------


def raw_verify_rate(seconds: float = 2.0) -> float:
    """Ed25519 verifications per second with `cryptography`, one core, key pre-loaded."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    message = os.urandom(64)  # eddsa-jcs-2022 signs two SHA-256 digests: 64 bytes
    signature = key.sign(message)
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(500):
            public.verify(signature, message)
        count += 500
    return count / elapsed


def verification_rate(body: bytes, artist: str, proofs: int, seconds: float = 2.0) -> float:
    """Proofs per second of the follower's whole feed check alone, one core, one feed over
    and over (no network, no catalog): where the pipeline's time would go at best."""
    state = FollowState(artist=artist)
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        judge_feed(body, state, max_bytes=8 * 1024**2, now=datetime.now(UTC))
        count += 1
    return count * proofs / elapsed


async def follow_all(service: FollowService, bases: list[str]) -> None:
    """Read every node document and record the artist, as `stave follow` does before it syncs."""
    client = service.federation.client
    documents = await asyncio.gather(*(fetch_node_document(client, base) for base in bases))
    async with service.federation.transaction() as tx:
        for document in documents:
            await tx.add_follow(
                artist=document.artist,
                name=document.name,
                url=document.base_url,
                feed_url=document.feed_url,
                hub_url=document.hub_url,
                mirror=False,
                followed_at=now_text(),
            )


def _wait_for(receive: Connection, server: Any) -> Any:
    while not receive.poll(1.0):
        if not server.is_alive():
            raise SystemExit("the fixture server failed to start (see its traceback above)")
    return receive.recv()


async def run(feeds: int, tracks: int, hosts: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    server = context.Process(target=serve, args=(feeds, tracks, hosts, send), daemon=True)
    server.start()
    try:
        print(f"fixture server: signing {feeds} feeds of {tracks} tracks …", flush=True)
        bases: list[str] = await asyncio.to_thread(_wait_for, receive, server)
        with tempfile.TemporaryDirectory(prefix="stave-bench-") as tmp:
            root = Path(tmp) / "follower"
            init_data_dir(root, "Benchmark follower", "http://127.0.0.1:9/")
            settings = {
                "node.name": "Benchmark follower",
                "node.url": "http://127.0.0.1:9/",
                "federation.allow_private_addresses": True,
                "federation.max_follows": max(5000, feeds),
            }
            (root / "config.toml").write_text(render_config(settings), encoding="utf-8")
            async with open_catalog(root / "catalog.sqlite"):
                pass
            return await _measure(root, bases, feeds, tracks)
    finally:
        server.terminate()
        server.join()


async def _measure(root: Path, bases: list[str], feeds: int, tracks: int) -> dict[str, Any]:
    raw_before = raw_verify_rate()
    async with (
        open_node(root) as node,
        OutboundClient(
            allow_private=True, limits=Limits(per_host=8, max_connections=128)
        ) as client,
    ):
        service = FollowService(Federation(node, node.catalog, client))
        started = time.perf_counter()
        await follow_all(service, bases)
        discovery = time.perf_counter() - started

        started = time.perf_counter()
        first = await service.sync_all()
        first_seconds = time.perf_counter() - started
        accepted = sum(o.verdict == "accepted" for o in first)
        if accepted != feeds:
            reasons = {o.reason for o in first if o.verdict != "accepted"}
            raise SystemExit(f"only {accepted} of {feeds} feeds accepted: {reasons}")

        unchanged_times = []
        for _ in range(3):
            started = time.perf_counter()
            again = await service.sync_all()
            unchanged_times.append(time.perf_counter() - started)
            assert all(o.verdict == "unchanged" for o in again), {o.reason for o in again}
        sample = await node.catalog.followed_feed(first[0].artist)
        assert sample is not None
        alone = verification_rate(sample.body, first[0].artist, tracks + 1)
        service.close()
        node.store.close()
    raw_after = raw_verify_rate()
    raw = statistics.mean([raw_before, raw_after])
    proofs = feeds * (tracks + 1)
    rate = proofs / first_seconds
    return {
        "feeds": feeds,
        "tracks_per_feed": tracks,
        "discovery_seconds": discovery,
        "first_sync_seconds": first_seconds,
        "proofs_verified": proofs,
        "proofs_per_second": rate,
        "raw_ed25519_per_second": raw,
        "raw_before_after": (raw_before, raw_after),
        "ratio": rate / raw,
        "unchanged_round_seconds": min(unchanged_times),
        "unchanged_rounds": unchanged_times,
        "verification_alone_per_second": alone,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--tracks", type=int, default=10)
    parser.add_argument("--hosts", type=int, default=16, help="loopback addresses to spread over")
    args = parser.parse_args()
    result = asyncio.run(run(args.feeds, args.tracks, args.hosts))
    print(
        f"followed {result['feeds']} feeds (node documents read in "
        f"{result['discovery_seconds']:.2f} s)"
    )
    print(
        f"first full sync: {result['first_sync_seconds']:.2f} s, "
        f"{result['proofs_verified']} proofs, {result['proofs_per_second']:.0f} proofs/s"
    )
    before, after = result["raw_before_after"]
    print(
        f"raw Ed25519 verify (cryptography, one core): {result['raw_ed25519_per_second']:.0f}/s"
        f" (before {before:.0f}, after {after:.0f})"
    )
    ok = "meets" if result["ratio"] >= GOAL_RATIO else "misses"
    print(f"ratio: {result['ratio']:.2f} ({ok} the goal of {GOAL_RATIO})")
    alone = result["verification_alone_per_second"]
    print(
        f"(for comparison: the feed check alone, one core, no network or catalog:"
        f" {alone:.0f} proofs/s, {alone / result['raw_ed25519_per_second']:.2f} of raw)"
    )
    rounds = ", ".join(f"{t:.2f}" for t in result["unchanged_rounds"])
    ok = "meets" if result["unchanged_round_seconds"] <= GOAL_UNCHANGED_SECONDS else "misses"
    print(
        f"sync round with nothing changed: {result['unchanged_round_seconds']:.2f} s "
        f"(rounds: {rounds}; {ok} the goal of {GOAL_UNCHANGED_SECONDS:g} s)"
    )


if __name__ == "__main__":
    main()
