"""Serving the app: listen, say where, run until SIGTERM or SIGINT, then shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from node.datadir import DataDir
from node.errors import UsageError
from node.settings import Config
from node.web.app import create_app
from node.web.metrics import body_size

log = logging.getLogger(__name__)

ACCESS_LOG_LINE = '%s "%s %s HTTP/%d.%d" %d %d "%s" "%s" %.6fs'


class AccessLog(AbstractAccessLogger):
    """One INFO line per response on `stave.access`: client, request line, status, body bytes
    (sendfile's too), referer, user agent and seconds taken.

    The record is made directly: aiohttp's configurable formatter and the caller lookup of
    `Logger.info` cost more than the rest of serving a small response (profiled).
    """

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        headers = request.headers
        version = request.version
        arguments = (
            request.remote or "-",
            request.method,
            request.path_qs,
            version.major,
            version.minor,
            response.status,
            body_size(request, response) or response.body_length,
            headers.get("Referer", "-"),
            headers.get("User-Agent", "-"),
            time,
        )
        self.logger.handle(
            self.logger.makeRecord(
                self.logger.name, logging.INFO, __file__, 0, ACCESS_LOG_LINE, arguments, None
            )
        )


def print_url(url: str) -> None:
    print(url, flush=True)


def url_of(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    """The http URL of a listening socket's address."""
    host, port = address[0], address[1]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


async def serve(
    data_dir: Path,
    host: str,
    port: int,
    *,
    config: Config | None = None,
    shutdown_timeout: float = 10.0,
    on_listening: Callable[[str], None] = print_url,
) -> None:
    """Serve the node in `data_dir` on host:port until SIGTERM or SIGINT.

    `on_listening` is called with the URL once the socket listens (the real port when `port` is
    0). On a signal the node stops accepting connections, lets requests in flight finish for up
    to `shutdown_timeout` seconds, runs the app's cleanup (closing the catalog), and returns.
    """
    # Access log records need no thread or process names; skipping them is the logging HOWTO's
    # own advice for speed (https://docs.python.org/3/howto/logging.html#optimization).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    settings = config if config is not None else DataDir(data_dir).load_config()
    runner = web.AppRunner(
        create_app(data_dir, config=config),
        access_log=logging.getLogger("stave.access"),
        access_log_class=AccessLog,
        shutdown_timeout=shutdown_timeout,
        # An idle connection is closed and a stalled body cut off (node/web/limits.py). Handlers
        # are not cancelled when a client leaves (aiohttp's default): a publish once its upload
        # has arrived runs to its end rather than stopping between its steps.
        keepalive_timeout=settings["server.keepalive_timeout"],
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as e:
            raise UsageError(f"{host}:{port}: cannot listen there ({e.strerror or e})") from e
        for address in runner.addresses:
            on_listening(url_of(address))
        await stop.wait()
        log.info("stopping: finishing requests in flight")
    finally:
        for number in signals:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(number)
        await runner.cleanup()
