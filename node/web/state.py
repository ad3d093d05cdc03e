"""Typed application state: every `web.AppKey` the app uses, declared once."""

from __future__ import annotations

from aiohttp import web

from node.datadir import Node
from node.publish import Publisher

NODE = web.AppKey("node", Node)
PUBLISHER = web.AppKey("publisher", Publisher)
