"""The feed routes (PROTOCOL §6, §7): `/feed.json`, `/feed.rss` and `/.well-known/stave`.

The signed feed is served as the exact bytes stored under its CID. `FeedCache` keeps those bytes,
their gzip form and the rendered RSS in memory, keyed by the feed's CID, and notices a new feed
cheaply: it stats the catalog's files on each request and asks the catalog only when they
changed (or a second has passed), so a feed published by `stave add` in another process is
served within a second, and one published in this process at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from node import __version__, pinning
from node.catalog import FeedRecord
from node.datadir import Node
from node.errors import StaveError
from node.feed import build_node_document, parse_timestamp, serialize
from node.publish import Publisher
from node.rotation import ROTATION_PATH
from node.signing import sign_document
from node.web import rss
from node.web.state import FEEDS, NODE, PUBLISHER

log = logging.getLogger(__name__)

FEED_CACHE_CONTROL = "public, max-age=60"
FEED_JSON_TYPE = "application/json"
# How long a snapshot is trusted when the catalog's files look unchanged.
RECHECK_SECONDS = 1.0
# The feed is signed again once less than this part of its lifetime is left.
RESIGN_FRACTION = 0.5
RESIGN_CHECK_SECONDS = 3600.0
# What `FeedCache` reads of a feed document: the tracks, their audio and cover references.
MEDIA_TYPE_MEMBERS = ("tracks", "audio", "cover", "cid", "mediaType")


@dataclass(frozen=True)
class Representation:
    """One response body, precomputed with its gzip form and its strong ETag."""

    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes, etag: str) -> Representation:
        return cls(body=body, gzipped=gzip.compress(body, compresslevel=6, mtime=0), etag=etag)


@dataclass
class FeedSnapshot:
    """The node's current feed and what is derived from it.

    The parsed document is not kept (for 1,000 tracks it is about three times the size of the
    bytes): the RSS, rendered once per feed, parses the bytes again.
    """

    record: FeedRecord
    json: Representation
    media_types: dict[str, str]
    rss: Representation | None = field(default=None, repr=False)


class FeedCache:
    """The current feed of one open node, reloaded when the catalog's latest feed changes."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._snapshot: FeedSnapshot | None = None
        self._stamp: tuple[int, ...] | None = None
        self._checked = 0.0
        self._lock = asyncio.Lock()
        self._node_document: bytes | None = None
        self._node_document_ipns: str | None = None
        catalog = str(node.data.catalog_path)
        self._catalog_files = (catalog, catalog + "-wal")

    def _catalog_stamp(self) -> tuple[int, ...]:
        """Changes whenever a transaction commits to the catalog (WAL mode: the -wal file)."""
        stamp: list[int] = []
        for path in self._catalog_files:
            try:
                st = os.stat(path)
            except OSError:
                stamp += [0, 0, 0]
            else:
                stamp += [st.st_ino, st.st_size, st.st_mtime_ns]
        return tuple(stamp)

    def invalidate(self) -> None:
        """Make the next request ask the catalog for its latest feed."""
        self._stamp = None

    async def current(self) -> FeedSnapshot | None:
        """The latest feed, or None before the first one is published."""
        stamp = self._catalog_stamp()
        # Not while nothing is loaded: the stamp is taken before the catalog is asked, so until
        # the first answer lands it would hand concurrent requests a None (a 404 for a feed that
        # exists; benchmarks/load.py caught it).
        if (
            self._snapshot is not None
            and stamp == self._stamp
            and time.monotonic() - self._checked < RECHECK_SECONDS
        ):
            return self._snapshot
        async with self._lock:
            if stamp == self._stamp and time.monotonic() - self._checked < RECHECK_SECONDS:
                return self._snapshot  # another request refreshed it while this one waited
            # Taken before asking, so a commit that lands meanwhile is noticed next time.
            self._stamp, self._checked = stamp, time.monotonic()
            latest = await self._node.catalog.latest_feed()
            if latest is None:
                self._snapshot = None
            elif self._snapshot is None or self._snapshot.record.cid != latest.cid:
                feed_cids = [feed.cid for feed in await self._node.catalog.feeds()]
                self._snapshot = await asyncio.to_thread(self._load, latest, feed_cids)
            return self._snapshot

    def _load(self, record: FeedRecord, feed_cids: list[str]) -> FeedSnapshot:
        with self._node.store.open(record.cid) as f:
            body = f.read()
        document = json.loads(body, object_hook=_media_type_fields)
        media_types = dict.fromkeys(feed_cids, FEED_JSON_TYPE)
        for manifest in document.get("tracks", []):
            for member in ("audio", "cover"):
                ref = manifest.get(member)
                if ref:
                    media_types[ref["cid"]] = ref["mediaType"]
        log.info("serving feed %d (%s)", record.sequence, record.cid)
        return FeedSnapshot(
            record=record, json=Representation.of(body, f'"{record.cid}"'), media_types=media_types
        )

    async def rss(self, snapshot: FeedSnapshot) -> Representation:
        """The feed as RSS, rendered once per feed."""
        if snapshot.rss is None:
            base_url = self._node.base_url
            body = await asyncio.to_thread(_render_rss, snapshot.json.body, base_url)
            snapshot.rss = Representation.of(body, f'"{snapshot.record.cid}.rss"')
        return snapshot.rss

    async def media_type(self, cid: str) -> str | None:
        """The media type the catalog gives the content under `cid` (CIDv1 base32), if any.

        A CID's bytes never change, so a known one is answered without looking for a new feed.
        """
        if self._snapshot is not None and (known := self._snapshot.media_types.get(cid)):
            return known
        snapshot = await self.current()
        return None if snapshot is None else snapshot.media_types.get(cid)

    async def node_document(self) -> bytes:
        """The signed `/.well-known/stave` document, signed again when its IPNS name changes."""
        node = self._node
        ipns = await pinning.ipns_name(node)
        if self._node_document is None or self._node_document_ipns != ipns:
            document = build_node_document(
                artist=node.identity.did,
                name=node.config["node.name"],
                base_url=node.base_url,
                ipns=ipns,
                software_version=__version__,
                rotation=(
                    node.base_url + ROTATION_PATH if node.data.rotation_path.exists() else None
                ),
            )
            self._node_document = serialize(sign_document(document, node.identity))
            self._node_document_ipns = ipns
        return self._node_document


def _media_type_fields(value: dict[str, Any]) -> dict[str, Any]:
    """Of each object in a feed as it is parsed, only the members media types are read from.

    The whole parsed document of 1,000 tracks is about 3 MB of small objects; parsed whole and
    dropped, it left about 2 MB more resident than this (measured, benchmarks/idle.py).
    """
    return {key: value[key] for key in MEDIA_TYPE_MEMBERS if key in value}


def _render_rss(feed: bytes, base_url: str) -> bytes:
    """The RSS of a feed's bytes, parsed again: a snapshot keeps only the bytes."""
    return rss.render_rss(json.loads(feed), base_url)


# --- responses --------------------------------------------------------------------------------


def accepts_gzip(request: web.BaseRequest) -> bool:
    """Whether Accept-Encoding allows gzip (RFC 9110 §12.5.3), `q=0` meaning no."""
    for entry in request.headers.get("Accept-Encoding", "").lower().split(","):
        coding, _, params = entry.strip().partition(";")
        if coding.strip() not in ("gzip", "x-gzip", "*"):
            continue
        q = params.strip()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False


def etag_matches(request: web.BaseRequest, etag: str) -> bool:
    """If-None-Match against our ETag, by weak comparison (RFC 9110 §13.1.2)."""
    header = request.headers.get("If-None-Match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in header.split(","))


def representation_response(
    request: web.Request,
    representation: Representation,
    content_type: str,
    links: list[str],
) -> web.Response:
    """A 200 (gzip when asked) or a 304 for a precomputed body, with caching headers."""
    response = web.Response(status=200)
    headers = response.headers
    headers["ETag"] = representation.etag
    headers["Cache-Control"] = FEED_CACHE_CONTROL
    headers["Vary"] = "Accept-Encoding"
    for link in links:
        headers.add("Link", link)
    if etag_matches(request, representation.etag):
        response.set_status(304)
        return response
    headers["Content-Type"] = content_type
    if accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        response.body = representation.gzipped
    else:
        response.body = representation.body
    return response


def _links(node: Node, self_url: str) -> list[str]:
    return [f'<{node.base_url}websub>; rel="hub"', f'<{self_url}>; rel="self"']


async def _snapshot(request: web.Request) -> FeedSnapshot:
    snapshot = await request.app[FEEDS].current()
    if snapshot is None:
        raise web.HTTPNotFound(text="this node has not published a feed yet")
    return snapshot


# The feed routes are on the root app, so `request.app` is enough: `config_dict` would build a
# ChainMap on every request, and followers' conditional GETs are most of a node's traffic.


async def feed_json(request: web.Request) -> web.Response:
    """The current signed feed document, byte for byte as stored under its CID."""
    snapshot = await _snapshot(request)
    node = request.app[NODE]
    return representation_response(
        request, snapshot.json, FEED_JSON_TYPE, _links(node, node.feed_url)
    )


async def feed_rss(request: web.Request) -> web.Response:
    """The current feed as RSS 2.0 with the Podcasting 2.0 namespace."""
    snapshot = await _snapshot(request)
    node = request.app[NODE]
    representation = await request.app[FEEDS].rss(snapshot)
    links = _links(node, node.base_url + "feed.rss")
    return representation_response(request, representation, rss.CONTENT_TYPE, links)


async def node_document(request: web.Request) -> web.Response:
    """The signed StaveNode document (PROTOCOL §7)."""
    body = await request.config_dict[FEEDS].node_document()
    return web.Response(
        body=body,
        headers={"Content-Type": FEED_JSON_TYPE, "Cache-Control": "public, max-age=300"},
    )


async def rotation_statements(request: web.Request) -> web.Response:
    """The artist's key rotation statements, oldest first (docs/protocol-extensions.md)."""
    path = request.config_dict[NODE].data.rotation_path
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise web.HTTPNotFound(text="this node's key has never been rotated") from None
    return web.Response(
        body=body,
        headers={"Content-Type": FEED_JSON_TYPE, "Cache-Control": "public, max-age=300"},
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/feed.json", feed_json)
    app.router.add_get("/feed.rss", feed_rss)
    app.router.add_get("/.well-known/stave", node_document)
    app.router.add_get("/" + ROTATION_PATH, rotation_statements)


# --- keeping the feed fresh -------------------------------------------------------------------


def needs_resigning(record: FeedRecord, expires_days: int, now: datetime) -> bool:
    """Whether less than half of the feed's lifetime is left."""
    left = parse_timestamp(record.expires, "feed expires") - now
    return left.total_seconds() < expires_days * 86400 * RESIGN_FRACTION


async def resign_if_due(node: Node, publisher: Publisher) -> None:
    """Publish the first feed if there is none, or the next one when the latest is ageing."""
    try:
        latest = await node.catalog.latest_feed()
        days = node.config["feed.expires_days"]
        if latest is None or needs_resigning(latest, days, datetime.now(UTC)):
            feed = await publisher.publish_feed()
            log.info("signed feed %d so that followers do not see it expire", feed.sequence)
    except StaveError as e:
        log.error("cannot sign the next feed: %s", e)


async def keep_feed_fresh(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: a running node's feed never expires; checked at start, then hourly."""
    node, publisher = app[NODE], app[PUBLISHER]
    await resign_if_due(node, publisher)

    async def every_hour() -> None:
        while True:
            await asyncio.sleep(RESIGN_CHECK_SECONDS)
            await resign_if_due(node, publisher)

    task = asyncio.create_task(every_hour(), name="stave-feed-resign")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
