"""Serving the app: listen, say where, run until SIGTERM or SIGINT, then shut down gracefully.

The node is told where it listens before it opens: a `node.url` still at its default (never set
by the artist, who may give it to `stave init --url` or in config.toml) becomes the address the
node serves on, `http://host:port/`, so its feed links and node document name a port listeners
can reach. A node listening on every interface (0.0.0.0, ::) without a `node.url` is refused:
no address of its own is one listeners can be sent to. A `node.url` the artist set is used as is.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from node.datadir import DataDir
from node.errors import UsageError
from node.settings import DEFAULT_NODE_URL, Config
from node.web.app import create_app
from node.web.metrics import body_size

log = logging.getLogger(__name__)

ACCESS_LOG_LINE = '%s "%s %s HTTP/%d.%d" %d %d "%s" "%s" %.6fs'
# Hosts that listen on every interface: none of them is an address to give listeners.
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


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


def served_config(config: Config, host: str, port: int, config_path: Path) -> Config:
    """`config` as a node listening on host:port serves with it: `node.url` that address while
    it is still the default, or UsageError when the host is a wildcard (module docstring)."""
    if config["node.url"] != DEFAULT_NODE_URL:
        return config
    if _is_wildcard(host):
        raise UsageError(
            f"node.url is not set and {host or '0.0.0.0'} is not an address listeners can reach;"
            f' set url = "https://your.host/" under [node] in {config_path}'
        )
    return config.replace(node__url=url_of((host, port)))


def _is_wildcard(host: str) -> bool:
    try:
        return not host or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False  # a host name


class ListeningSite(web.BaseSite):
    """A site over sockets bound before the app started, so that the app knows its port."""

    def __init__(self, runner: web.BaseRunner, server: asyncio.Server) -> None:
        super().__init__(runner)
        self._bound = server

    @property
    def name(self) -> str:
        return url_of(self._bound.sockets[0].getsockname())

    async def start(self) -> None:
        await super().start()
        self._server = self._bound
        await self._bound.start_serving()


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

    The port is bound first, then the node opened with `served_config`. `on_listening` is called
    with the URL once the socket listens (the real port when `port` is 0). On a signal the node
    stops accepting connections, lets requests in flight finish for up to `shutdown_timeout`
    seconds, runs the app's cleanup (closing the catalog), and returns.
    """
    # Access log records need no thread or process names; skipping them is the logging HOWTO's
    # own advice for speed (https://docs.python.org/3/howto/logging.html#optimization).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    data = DataDir(data_dir)
    settings = config if config is not None else data.load_config()
    runner: web.AppRunner | None = None

    def protocol() -> asyncio.BaseProtocol:
        # Connections are accepted only once the runner is set up (ListeningSite.start).
        assert runner is not None and runner.server is not None
        return runner.server()

    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(protocol, host, port, start_serving=False)
    except OSError as e:
        raise UsageError(f"{host}:{port}: cannot listen there ({e.strerror or e})") from e
    try:
        bound_port = server.sockets[0].getsockname()[1] if server.sockets else port
        settings = served_config(settings, host, bound_port, data.config_path)
        runner = web.AppRunner(
            create_app(data_dir, config=settings),
            access_log=logging.getLogger("stave.access"),
            access_log_class=AccessLog,
            shutdown_timeout=shutdown_timeout,
            # An idle connection is closed and a stalled body cut off (node/web/limits.py).
            # Handlers are not cancelled when a client leaves (aiohttp's default): a publish once
            # its upload has arrived runs to its end rather than stopping between its steps.
            keepalive_timeout=settings["server.keepalive_timeout"],
        )
        await _run(runner, server, on_listening)
    finally:
        server.close()


async def _run(
    runner: web.AppRunner, server: asyncio.Server, on_listening: Callable[[str], None]
) -> None:
    """Set `runner` up, serve `server`'s sockets with it until a signal, then clean up."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    try:
        await runner.setup()
        await ListeningSite(runner, server).start()
        for address in runner.addresses:
            on_listening(url_of(address))
        await stop.wait()
        log.info("stopping: finishing requests in flight")
    finally:
        for number in signals:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(number)
        await runner.cleanup()
