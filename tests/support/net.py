"""Loopback sockets for the servers tests and benchmarks start: nothing here leaves 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def loopback_socket(port: int = 0) -> socket.socket:
    """A TCP socket bound to `port` (by default a free one) on 127.0.0.1, for a server to
    listen on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@asynccontextmanager
async def serving(app: web.Application, sock: socket.socket) -> AsyncIterator[web.AppRunner]:
    """`app` served on the bound socket `sock` for the length of the block."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield runner
    finally:
        await runner.cleanup()
