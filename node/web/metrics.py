"""The node's metrics in the Prometheus text exposition format (version 0.0.4), at `/metrics`.

Counters are kept in memory for the life of the process: requests by route, method and status,
and response body bytes by route. Gauges are read when `/metrics` is scraped, each from a
source other modules register with `Metrics.set_gauge` (federation feeds `stave_follows`).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from node import __version__

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

GaugeSource = Callable[[], Awaitable[float] | float]
"""Where a gauge's value comes from: a function or coroutine function with no arguments."""

UNMATCHED_ROUTE = "unmatched"


@dataclass(frozen=True)
class _Gauge:
    help: str
    source: GaugeSource


async def _zero() -> float:
    return 0.0


class Metrics:
    """Counters updated as responses are sent, and gauges read on every scrape."""

    def __init__(self) -> None:
        self.started = time.time()
        self._requests: Counter[tuple[str, str, str]] = Counter()
        self._bytes: Counter[str] = Counter()
        self._gauges: dict[str, _Gauge] = {}
        self.set_gauge("stave_follows", "Artists this node follows.", _zero)

    def count_response(self, route: str, method: str, status: int, body_bytes: int) -> None:
        """Record one response: its route pattern, method, status and body size in bytes."""
        self._requests[(route, method, str(status))] += 1
        if body_bytes:
            self._bytes[route] += body_bytes

    def count_bytes(self, route: str, body_bytes: int) -> None:
        """Record body bytes streamed without a Content-Length (CARs)."""
        self._bytes[route] += body_bytes

    def set_gauge(self, name: str, help: str, source: GaugeSource) -> None:
        """Expose gauge `name`, read from `source` at every scrape; replaces an earlier source."""
        self._gauges[name] = _Gauge(help, source)

    def requests(self, route: str, status: int, method: str = "GET") -> int:
        """How many responses with this route, method and status were sent so far."""
        return self._requests[(route, method, str(status))]

    async def render(self) -> str:
        """The whole exposition, gauges read now."""
        lines = [
            "# HELP stave_build_info The running Stave version.",
            "# TYPE stave_build_info gauge",
            f'stave_build_info{{version="{_label(__version__)}"}} 1',
            "# HELP process_start_time_seconds When the node started, in Unix seconds.",
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {self.started:.3f}",
            "# HELP stave_http_requests_total HTTP responses sent, by route, method and status.",
            "# TYPE stave_http_requests_total counter",
        ]
        for (route, method, status), count in sorted(self._requests.items()):
            labels = f'route="{_label(route)}",method="{_label(method)}",status="{status}"'
            lines.append(f"stave_http_requests_total{{{labels}}} {count}")
        lines += [
            "# HELP stave_http_response_bytes_total Response body bytes served, by route.",
            "# TYPE stave_http_response_bytes_total counter",
        ]
        for route, count in sorted(self._bytes.items()):
            lines.append(f'stave_http_response_bytes_total{{route="{_label(route)}"}} {count}')
        for name, gauge in sorted(self._gauges.items()):
            value = await _read(name, gauge.source)
            lines += [f"# HELP {name} {gauge.help}", f"# TYPE {name} gauge"]
            if value is not None:
                lines.append(f"{name} {_number(value)}")
        return "\n".join(lines) + "\n"


async def _read(name: str, source: GaugeSource) -> float | None:
    try:
        value = source()
        if inspect.isawaitable(value):
            value = await value
        return float(value)
    except Exception:  # a broken source must not take the whole scrape down
        log.exception("metrics: cannot read gauge %s", name)
        return None


def _label(value: str) -> str:
    """A label value escaped as the text format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def route_of(request: web.Request) -> str:
    """The route pattern that answered `request` (`/ipfs/{cid}`), never the raw path."""
    resource = request.match_info.route.resource
    return UNMATCHED_ROUTE if resource is None else resource.canonical


def body_size(request: web.BaseRequest, response: web.StreamResponse) -> int:
    """The body bytes a prepared response sends, when its headers say (else 0)."""
    if request.method == "HEAD" or response.status in (204, 304) or response.status < 200:
        return 0
    return response.content_length or 0
