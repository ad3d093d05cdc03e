"""Federation: following other nodes, WebSub, mirroring. (Placeholder until it is built.)"""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Add federation's routes and lifecycle to `app`."""
