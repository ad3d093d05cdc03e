"""Shared parts of the federation tests: real nodes on 127.0.0.1, a follower's federation over a
fresh node, signed test feeds, a fake node the test controls, and dumps of the follow tables.
Every socket here is on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from node.catalog import FeedReplacement, FollowedTrack
from node.cid import cid_of_bytes
from node.datadir import Node, init_data_dir, open_node
from node.federation.context import Federation, now_text
from node.federation.follows import FollowService
from node.federation.http import Limits, OutboundClient
from node.federation.runtime import FederationRuntime
from node.feed import build_feed, format_timestamp, parse_json, serialize
from node.identity import Identity
from node.manifest import build_manifest, content_ref
from node.publish import Publisher
from node.settings import Config, render_config
from node.signing import sign_document
from node.terms import Terms
from node.web.app import create_app
from node.web.state import FEDERATION, NODE, PUBLISHER
from tests.support.net import loopback_socket, serving

FOLLOW_TABLES = (
    "follows",
    "follow_tracks",
    "follow_releases",
    "known_mirrors",
    "websub_subscriptions",
)


def node_settings(port: int, name: str, **settings: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "node.name": name,
        "node.url": f"http://127.0.0.1:{port}/",
        "federation.allow_private_addresses": True,
        # Polls so rare that only WebSub can explain a change within a test.
        "federation.poll_interval_seconds": 3600,
    }
    values.update({key.replace("__", "."): value for key, value in settings.items()})
    return values


async def make_node_dir(root: Path, port: int, name: str, **settings: Any) -> Path:
    """An initialised data directory for a node at http://127.0.0.1:{port}/, first feed signed."""
    init_data_dir(root, name, f"http://127.0.0.1:{port}/")
    (root / "config.toml").write_text(render_config(node_settings(port, name, **settings)))
    async with open_node(root) as node:
        await Publisher(node).publish_feed()
        node.store.close()
    return root


@asynccontextmanager
async def follower_federation(
    tmp_path: Path, *, limits: Limits | None = None, **settings: Any
) -> AsyncIterator[Federation]:
    """A follower's federation context over a fresh node in `tmp_path / "follower"` (its own
    URL on port 9, where nothing listens), its outbound client allowed loopback addresses."""
    root = await make_node_dir(tmp_path / "follower", 9, "Follower", **settings)
    async with open_node(root) as node, OutboundClient(allow_private=True, limits=limits) as client:
        yield Federation(node, node.catalog, client)
        node.store.close()


@asynccontextmanager
async def follow_service(
    tmp_path: Path, *, limits: Limits | None = None, **settings: Any
) -> AsyncIterator[FollowService]:
    """The follow service of `follower_federation`: the federation tests' follower."""
    async with follower_federation(tmp_path, limits=limits, **settings) as federation:
        yield FollowService(federation)


def replacement(artist: str, body: bytes, replacing: tuple[int, str] | None) -> FeedReplacement:
    """The catalog's replacement of `artist`'s stored feed (`replacing` its sequence and CID,
    None when none is stored) by the feed `body`."""
    feed = parse_json(body)
    return FeedReplacement(
        artist=artist,
        replacing=replacing,
        sequence=feed["sequence"],
        body=body,
        cid=cid_of_bytes(body),
        etag=None,
        updated=feed["updated"],
        expires=feed["expires"],
        accepted_at=now_text(),
        name=feed["name"],
        tracks=feed["tracks"],
    )


async def add_follow(tx: object, artist: str) -> None:
    """Record a follow of `artist` (at port 9, where nothing listens) in the transaction `tx`."""
    await tx.add_follow(  # type: ignore[attr-defined]
        artist=artist,
        name="Someone",
        url="http://127.0.0.1:9/",
        feed_url="http://127.0.0.1:9/feed.json",
        hub_url=None,
        mirror=False,
        followed_at=now_text(),
    )


async def followed_fakes(federation: Federation, count: int) -> list[FakeNode]:
    """`count` fake artists whose feeds a test makes (nothing is fetched), followed."""
    fakes = [FakeNode(Identity.generate(), url="http://127.0.0.1:9/") for _ in range(count)]
    async with federation.transaction() as tx:
        for fake in fakes:
            await add_follow(tx, fake.artist.did)
    return fakes


def count_transactions(federation: Federation) -> list[int]:
    """A list that gains an item each time `federation` opens a transaction from now on."""
    transactions: list[int] = []
    real = federation.transaction

    def counted() -> Any:
        transactions.append(1)
        return real()

    federation.transaction = counted  # type: ignore[method-assign]
    return transactions


class RunningNode:
    """A real node: `create_app` served on a real TCP socket on 127.0.0.1."""

    def __init__(self, root: Path, sock: socket.socket) -> None:
        self.root = root
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.runner: web.AppRunner | None = None
        self.did = ""

    @classmethod
    async def create(cls, root: Path, name: str, **settings: Any) -> RunningNode:
        sock = loopback_socket()
        await make_node_dir(root, sock.getsockname()[1], name, **settings)
        running = cls(root, sock)
        await running.start()
        return running

    async def start(self) -> None:
        self.runner = web.AppRunner(create_app(self.root))
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()
        self.did = self.node.identity.did

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def restart(self) -> None:
        """Start again after `stop()` (which closed the socket), on the same port."""
        self.sock = loopback_socket(self.port)
        await self.start()

    @property
    def app(self) -> web.Application:
        assert self.runner is not None, "the node is stopped"
        return self.runner.app

    @property
    def node(self) -> Node:
        return self.app[NODE]

    @property
    def publisher(self) -> Publisher:
        return self.app[PUBLISHER]

    @property
    def runtime(self) -> FederationRuntime:
        return self.app[FEDERATION]

    async def followed_tracks(self, artist: str) -> list[FollowedTrack]:
        return await self.node.catalog.followed_tracks(artist)


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 30.0, what: str = "condition"
) -> Any:
    """The first truthy result of `check`, polled every 0.05 s; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def dump_follow_tables(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the follow tables of the catalog in `root`: the follower's stored state."""
    path = root / "catalog.sqlite"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            for table in FOLLOW_TABLES
        }


def dump_rotation_tables(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    """`dump_follow_tables` and the history of followed artists' key rotations."""
    path = root / "catalog.sqlite"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rotations = db.execute("SELECT * FROM follow_rotations ORDER BY 1, 2").fetchall()
    return {**dump_follow_tables(root), "follow_rotations": rotations}


def status_row(root: Path, artist: str) -> tuple[Any, ...] | None:
    path = root / "catalog.sqlite"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        row: tuple[Any, ...] | None = db.execute(
            "SELECT checked_at, synced_at, last_error, failures FROM follow_status"
            " WHERE artist = ?",
            (artist,),
        ).fetchone()
        return row


# --- signed documents made by hand (for the attacker's server and the benchmark) ------------


def signed_track(
    identity: Identity,
    title: str,
    audio_cid: str,
    *,
    artist: str | None = None,
    size: int = 1000,
) -> dict[str, Any]:
    """A track manifest signed by `identity` (claiming `artist`, by default its own did)."""
    manifest = build_manifest(
        track_id=f"urn:uuid:{uuid.uuid4()}",
        revision=1,
        artist=artist or identity.did,
        title=title,
        published=format_timestamp(datetime.now(UTC)),
        duration_seconds=1.5,
        audio=content_ref(audio_cid, "audio/mpeg", size),
        cover=None,
        terms=Terms.from_config(Config()),
    )
    return sign_document(manifest, identity)


def signed_feed(
    identity: Identity,
    *,
    sequence: int,
    tracks: Sequence[dict[str, Any]],
    url: str,
    artist: str | None = None,
    name: str = "Ada Example",
    updated: datetime | None = None,
    expires_days: int = 7,
    withdrawn: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The exact bytes of a feed signed by `identity` (claiming `artist`, by default its did)."""
    document = build_feed(
        artist=artist or identity.did,
        name=name,
        url=url,
        sequence=sequence,
        previous=None,
        updated=updated or datetime.now(UTC),
        expires_days=expires_days,
        terms=Terms.from_config(Config()),
        tracks=list(tracks),
        withdrawn=list(withdrawn),
    )
    return serialize(sign_document(document, identity, created=document["updated"]))


def signed_node_document(identity: Identity, base_url: str, name: str = "Ada Example") -> bytes:
    document = {
        "type": "StaveNode",
        "artist": identity.did,
        "name": name,
        "feed": base_url + "feed.json",
        "rss": base_url + "feed.rss",
        "hub": base_url + "websub",
        "ipns": None,
        "software": {"name": "stave", "version": "test"},
    }
    return serialize(sign_document(document, identity))


# --- a node the test controls completely ------------------------------------------------------


@dataclass
class FakeNode:
    """A Stave-like node the test writes: it holds an artist key, serves `feed` at /feed.json
    the way `mode` says, and records the WebSub requests sent to its hub."""

    artist: Identity
    url: str = ""
    feed: bytes = b""
    mode: str = "plain"
    hits: list[str] = field(default_factory=list)
    hub_requests: list[dict[str, str]] = field(default_factory=list)
    rotation: bytes | None = None  # served at /.well-known/stave-rotation.json; None: 404
    rotation_requests: int = 0
    content: dict[str, bytes] = field(default_factory=dict)  # served at /ipfs/{cid}


@asynccontextmanager
async def fake_node() -> AsyncIterator[FakeNode]:
    """A FakeNode served on 127.0.0.1 for the length of the block."""
    sock = loopback_socket()
    fake = FakeNode(Identity.generate(), url=f"http://127.0.0.1:{sock.getsockname()[1]}/")

    async def node_document(request: web.Request) -> web.Response:
        return web.Response(
            body=signed_node_document(fake.artist, fake.url), content_type="application/json"
        )

    async def feed(request: web.Request) -> web.StreamResponse:
        etag = '"' + hashlib.sha256(fake.feed).hexdigest() + '"'
        if fake.mode == "error":
            fake.hits.append("500")
            return web.Response(status=500, text="down for maintenance")
        if fake.mode == "plain" and request.headers.get("If-None-Match") == etag:
            fake.hits.append("304")
            return web.Response(status=304, headers={"ETag": etag})
        fake.hits.append(fake.mode)
        if fake.mode == "drip":  # a valid feed, one byte at a time
            response = web.StreamResponse(headers={"Content-Length": str(len(fake.feed))})
            await response.prepare(request)
            for index in range(len(fake.feed)):
                await response.write(fake.feed[index : index + 1])
                await asyncio.sleep(0.25)
            return response
        if fake.mode == "chunked":  # no Content-Length: the cap must hold while reading
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(fake.feed), 8192):
                await response.write(fake.feed[start : start + 8192])
            await response.write_eof()
            return response
        return web.Response(body=fake.feed, content_type="application/json", headers={"ETag": etag})

    async def hub(request: web.Request) -> web.Response:
        form = await request.post()
        fake.hub_requests.append({k: str(v) for k, v in form.items()})
        return web.Response(status=202)

    async def no_mirrors(request: web.Request) -> web.Response:
        return web.json_response([])

    async def rotation(request: web.Request) -> web.Response:
        fake.rotation_requests += 1
        if fake.rotation is None:
            raise web.HTTPNotFound()
        return web.Response(body=fake.rotation, content_type="application/json")

    async def content(request: web.Request) -> web.Response:
        data = fake.content.get(request.match_info["cid"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/.well-known/stave", node_document)
    app.router.add_get("/feed.json", feed)
    app.router.add_post("/websub", hub)
    app.router.add_get("/mirrors", no_mirrors)
    app.router.add_get("/.well-known/stave-rotation.json", rotation)
    app.router.add_get("/ipfs/{cid}", content)
    async with serving(app, sock):
        yield fake


def fake_feed(fake: FakeNode, sequence: int, *titles: str, **options: Any) -> bytes:
    """A feed signed by the fake node's artist, one track (with a made-up CID) per title."""
    cid = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    tracks = [signed_track(fake.artist, title, cid) for title in titles]
    return signed_feed(fake.artist, sequence=sequence, tracks=tracks, url=fake.url, **options)


def render_config_for(port: int, name: str, *, private: bool = True, **settings: Any) -> str:
    """The config.toml text of a test node, private addresses allowed or not."""
    values = node_settings(port, name, **settings)
    values["federation.allow_private_addresses"] = private
    return render_config(values)
