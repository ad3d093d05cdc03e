"""The public HTML pages: the artist page, one page per track, and the terms page."""

from __future__ import annotations

from aiohttp import web


def setup_routes(app: web.Application) -> None:
    """Add the public pages' routes to `app`."""
