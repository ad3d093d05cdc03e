"""Bounds on what one client can make the node spend: failed credentials, slow bodies, uploads.

- **Failed credentials.** Every wrong admin token (bearer token on /api, or the /admin login
  form) counts against the client's address. After `server.max_failed_logins` failures within
  `server.failed_login_window_seconds`, every credentialed request from that address is answered
  429 with `Retry-After` until the oldest failure leaves the window, right token or not: a guesser
  gets a handful of tries per window, whatever it sends.
- **Slow bodies.** A request body must finish arriving, or bring at least `BODY_STEP_BYTES` more,
  within `server.body_timeout_seconds`; otherwise the request is answered 408 and its connection
  closed, so a client dripping a byte a second cannot hold a connection (or an upload slot).
- **Concurrent uploads.** At most `server.max_concurrent_uploads` uploads are received at once;
  beyond that, 503 with `Retry-After` before a byte of the body is read.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from node.settings import Config
from node.web.state import NODE

# A body that brings at least this many bytes per timeout period is making progress.
BODY_STEP_BYTES = 1024 * 1024
# Addresses remembered at most; the ones failing longest ago are forgotten first.
MAX_TRACKED_ADDRESSES = 10_000

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FailedCredentials:
    """Wrong-credential counts per client address over a sliding window."""

    def __init__(self, max_failures: int, window_seconds: float) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it may try now."""
        failures = self._failures.get(address)
        if failures is None:
            return None
        now = time.monotonic()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        if len(failures) < self.max_failures:
            return None
        return max(1, math.ceil(failures[0] + self.window - now))

    def failed(self, address: str) -> None:
        """Count one wrong credential from `address`."""
        failures = self._failures.pop(address, None) or deque(maxlen=self.max_failures)
        failures.append(time.monotonic())
        self._failures[address] = failures
        while len(self._failures) > MAX_TRACKED_ADDRESSES:
            self._failures.popitem(last=False)


class Limits:
    """The bounds of one running node (see the module docstring)."""

    def __init__(
        self,
        *,
        max_failed_logins: int,
        failed_login_window_seconds: float,
        body_timeout_seconds: float,
        max_concurrent_uploads: int,
    ) -> None:
        self.failures = FailedCredentials(max_failed_logins, failed_login_window_seconds)
        self.body_timeout = body_timeout_seconds
        self.max_uploads = max_concurrent_uploads
        self._uploads = 0

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        return cls(
            max_failed_logins=config["server.max_failed_logins"],
            failed_login_window_seconds=config["server.failed_login_window_seconds"],
            body_timeout_seconds=config["server.body_timeout_seconds"],
            max_concurrent_uploads=config["server.max_concurrent_uploads"],
        )

    def refuse_if_throttled(self, request: web.BaseRequest) -> None:
        """Raise 429 when the client has used up its wrong credentials for now."""
        wait = self.failures.retry_after(client_address(request))
        if wait is not None:
            raise web.HTTPTooManyRequests(
                text=f"too many wrong admin tokens from this address; try again in {wait} s",
                headers={"Retry-After": str(wait)},
            )

    def failed(self, request: web.BaseRequest) -> None:
        """Count one wrong credential from the client of `request`."""
        self.failures.failed(client_address(request))

    @asynccontextmanager
    async def upload_slot(self) -> AsyncIterator[None]:
        """Hold one of the upload slots while receiving an upload; 503 when none is free."""
        if self._uploads >= self.max_uploads:
            raise web.HTTPServiceUnavailable(
                text=f"already receiving {self.max_uploads} uploads; try again shortly",
                headers={"Retry-After": "10"},
            )
        self._uploads += 1
        try:
            yield
        finally:
            self._uploads -= 1


LIMITS = web.AppKey("limits", Limits)


def client_address(request: web.BaseRequest) -> str:
    """The address failures are counted against: the peer's, as the socket reports it."""
    return request.remote or "-"


def limits_of(request: web.Request) -> Limits | None:
    """The running node's limits, or None before it has started."""
    return request.config_dict.get(LIMITS)


@web.middleware
async def body_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer 408 and close the connection when the request body stalls (module docstring)."""
    limits = limits_of(request)
    if limits is None or not request.body_exists or request.content.at_eof():
        return await handler(request)
    loop = asyncio.get_running_loop()
    period = limits.body_timeout
    try:
        async with asyncio.timeout(period) as deadline:
            watch = loop.create_task(_extend_while_arriving(request, deadline, period))
            try:
                return await handler(request)
            finally:
                watch.cancel()
    except TimeoutError:
        if not deadline.expired():
            raise
        response = web.Response(
            status=408, text=f"the request body stalled for {period:g} s; closing\n"
        )
        response.force_close()
        return response


async def _extend_while_arriving(
    request: web.Request, deadline: asyncio.Timeout, period: float
) -> None:
    loop = asyncio.get_running_loop()
    content = request.content
    mark = content.total_bytes
    while True:
        await asyncio.sleep(min(1.0, period / 4))
        if content.is_eof():
            deadline.reschedule(None)
            return
        if content.total_bytes - mark >= BODY_STEP_BYTES:
            mark = content.total_bytes
            deadline.reschedule(loop.time() + period)


def setup(app: web.Application) -> None:
    """Give `app` its limits once the node (and its config) is open, and the body deadline."""

    async def on_startup(app: web.Application) -> None:
        app[LIMITS] = Limits.from_config(app[NODE].config)

    app.on_startup.append(on_startup)
    app.middlewares.append(body_deadline)
