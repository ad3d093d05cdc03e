"""The application factory: one aiohttp app per data directory, for `stave run` and the tests."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web

from node import __version__, pinning
from node.datadir import open_node
from node.publish import Publisher
from node.settings import Config
from node.web.admin import setup as setup_admin
from node.web.api import setup as setup_api
from node.web.content import setup as setup_content
from node.web.crawlers import setup as setup_crawlers
from node.web.errors import error_middleware
from node.web.federation import setup as setup_federation
from node.web.fediverse import setup as setup_fediverse
from node.web.feedcache import FeedCache
from node.web.feeds import setup as setup_feeds
from node.web.limits import setup as setup_limits
from node.web.metrics import CONTENT_TYPE as METRICS_TYPE
from node.web.metrics import GaugeSource, Metrics, body_size, route_of
from node.web.pages import setup as setup_pages
from node.web.releases import setup as setup_releases
from node.web.signals import crawler_signals
from node.web.state import CRAWLER_SIGNALS, FEEDS, METRICS, NODE, PUBLISHER

log = logging.getLogger(__name__)

Lifecycle = Callable[[web.Application], AsyncIterator[None]]
Setup = Callable[[web.Application], None]

# The route modules, each adding its routes (and what serves them) to the app, in this order.
# None of them imports another: what several share lives below them (requests.py, views.py,
# auth.py, tracks.py, state.py, discography.py).
ROUTES: tuple[Setup, ...] = (
    setup_feeds,
    setup_content,
    setup_pages,
    setup_releases,
    setup_admin,
    setup_api,
    setup_federation,
    setup_fediverse,  # after federation: its lifecycle uses federation's connection
)


def create_app(data_dir: Path, *, config: Config | None = None) -> web.Application:
    """A web app serving the node in `data_dir`; `config` replaces its config.toml when given.

    The node is opened when the app starts and closed when it stops (a cleanup_ctx), so the
    app can be built anywhere, including before an event loop runs.
    """
    app = web.Application(middlewares=[error_middleware])
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_node_context(data_dir, config))
    pinning.setup(app, NODE)
    app.on_response_prepare.append(_response_counter(app[METRICS]))
    setup_crawlers(app)
    setup_limits(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    for setup in ROUTES:
        setup(app)
    return app


def _node_context(data_dir: Path, config: Config | None) -> Lifecycle:
    async def node_context(app: web.Application) -> AsyncIterator[None]:
        async with open_node(data_dir) as opened:
            node = opened if config is None else dataclasses.replace(opened, config=config)
            publisher = Publisher(node)
            app[NODE] = node
            app[PUBLISHER] = publisher
            app[FEEDS] = FeedCache(node)
            app[CRAWLER_SIGNALS] = crawler_signals(publisher.default_terms(), node.base_url)
            app[METRICS].set_gauge(
                "stave_tracks", "Published tracks (not withdrawn).", _tracks(app)
            )
            app[METRICS].set_gauge(
                "stave_feed_sequence", "Sequence number of the current feed.", _sequence(app)
            )
            log.info(
                "serving %s (%s) from %s", node.config["node.name"], node.identity.did, data_dir
            )
            try:
                yield
            finally:
                node.store.close()

    return node_context


def _tracks(app: web.Application) -> GaugeSource:
    async def count() -> float:
        return float(len(await app[NODE].catalog.tracks()))

    return count


def _sequence(app: web.Application) -> GaugeSource:
    async def sequence() -> float:
        snapshot = await app[FEEDS].current()
        return float(snapshot.record.sequence) if snapshot else 0.0

    return sequence


def _response_counter(
    counters: Metrics,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def count_response(request: web.Request, response: web.StreamResponse) -> None:
        size = body_size(request, response)
        counters.count_response(route_of(request), request.method, response.status, size)

    return count_response


async def healthz(request: web.Request) -> web.Response:
    """200 while the node is open and its catalog answers."""
    await request.config_dict[NODE].catalog.latest_feed()
    return web.json_response({"status": "ok", "version": __version__})


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus text exposition."""
    text = await request.config_dict[METRICS].render()
    return web.Response(body=text.encode("utf-8"), headers={"Content-Type": METRICS_TYPE})
