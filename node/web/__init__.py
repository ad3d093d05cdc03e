"""The web node: `create_app(data_dir)` builds the aiohttp application `stave run` serves."""

from node.web.app import create_app

__all__ = ["create_app"]
