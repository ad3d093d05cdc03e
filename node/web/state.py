"""Typed application state: every `web.AppKey` the app uses, declared once.

Handlers read them with `request.config_dict[KEY]`, which also works from a sub-application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from node.datadir import Node
from node.publish import Publisher

if TYPE_CHECKING:
    from node.web.feeds import FeedCache
    from node.web.metrics import Metrics
    from node.web.signals import CrawlerSignals

NODE = web.AppKey("node", Node)
PUBLISHER = web.AppKey("publisher", Publisher)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
FEEDS: web.AppKey[FeedCache] = web.AppKey("feeds")
CRAWLER_SIGNALS: web.AppKey[CrawlerSignals] = web.AppKey("crawler_signals")
