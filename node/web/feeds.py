"""The feed routes (PROTOCOL §6, §7): `/feed.json`, `/feed.rss` and `/.well-known/stave`.

The bytes served are kept by the app's `FeedCache` (node/web/feedcache.py). A running node also
signs the next feed before the latest one ages (`keep_feed_fresh`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web

from node.catalog import FeedRecord
from node.datadir import Node
from node.errors import StaveError
from node.feed import parse_timestamp
from node.publish import Publisher
from node.rotation import ROTATION_PATH
from node.web.feedcache import FEED_JSON_TYPE, FeedSnapshot, Representation
from node.web.requests import accepts_gzip, etag_matches
from node.web.rss import CONTENT_TYPE as RSS_TYPE
from node.web.state import FEEDS, NODE, PUBLISHER

log = logging.getLogger(__name__)

FEED_CACHE_CONTROL = "public, max-age=60"
# The feed is signed again once less than this part of its lifetime is left.
RESIGN_FRACTION = 0.5
RESIGN_CHECK_SECONDS = 3600.0


# --- responses --------------------------------------------------------------------------------


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
    return representation_response(request, representation, RSS_TYPE, links)


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


def setup(app: web.Application) -> None:
    """Add the feed routes to `app`, and the task that keeps its feed from expiring."""
    app.cleanup_ctx.append(keep_feed_fresh)
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
