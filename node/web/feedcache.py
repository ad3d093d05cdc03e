"""The current feed of a running node, kept in memory (PROTOCOL §6, §7).

The signed feed is served as the exact bytes stored under its CID. `FeedCache` keeps those bytes,
their gzip form and the rendered RSS in memory, keyed by the feed's CID, and notices a new feed
cheaply: it stats the catalog's files on each request and asks the catalog only when they
changed (or a second has passed), so a feed published by `stave add` in another process is
served within a second, and one published in this process at once.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from node import __version__, pinning
from node.catalog import FeedRecord
from node.datadir import Node
from node.feed import build_node_document, serialize
from node.rotation import ROTATION_PATH
from node.signing import sign_document
from node.web.rss import render_rss

log = logging.getLogger(__name__)

FEED_JSON_TYPE = "application/json"
# How long a snapshot is trusted when the catalog's files look unchanged.
RECHECK_SECONDS = 1.0
# What `FeedCache` reads of a feed document: the tracks, their audio and cover references.
MEDIA_TYPE_MEMBERS = ("tracks", "audio", "cover", "renditions", "cid", "mediaType")


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
            for ref in manifest.get("renditions") or []:  # listening copies (node/renditions.py)
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
    return render_rss(json.loads(feed), base_url)
