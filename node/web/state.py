"""Typed application state: every `web.AppKey` the app's modules share, declared once.

Handlers read them with `request.config_dict[KEY]`, which also works from a sub-application.
Each value's type comes from a module below the routes, so nothing here imports its users.
"""

from __future__ import annotations

from aiohttp import web

from node.datadir import Node
from node.federation.runtime import FederationRuntime
from node.fediverse.runtime import FediverseRuntime
from node.publish import Publisher
from node.web.feedcache import FeedCache
from node.web.metrics import Metrics
from node.web.signals import CrawlerSignals

NODE = web.AppKey("node", Node)
PUBLISHER = web.AppKey("publisher", Publisher)
METRICS = web.AppKey("metrics", Metrics)
FEEDS = web.AppKey("feeds", FeedCache)
CRAWLER_SIGNALS = web.AppKey("crawler_signals", CrawlerSignals)
FEDERATION = web.AppKey("federation", FederationRuntime)
FEDIVERSE = web.AppKey("fediverse", FediverseRuntime)
