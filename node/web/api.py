"""The admin API under /api/: JSON, bearer token, the same use cases as the `stave` command."""

from __future__ import annotations

from aiohttp import web


def setup_routes(app: web.Application) -> None:
    """Add the admin API's routes to `app`."""
