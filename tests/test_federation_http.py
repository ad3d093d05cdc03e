"""The guarded outbound client: destinations, redirects, size caps, timeouts, per-host limit.

Traffic goes only to servers on 127.0.0.1. Private and public destinations elsewhere are tested
by classification and resolution alone — a stub resolver answers for made-up names, and the
guard refuses before any connection is tried.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from node.errors import FederationError
from node.federation.http import (
    GuardedResolver,
    Limits,
    OutboundClient,
    RefusedDestination,
    address_refusal,
)
from tests.support.net import loopback_socket, serving

FAST = Limits(connect_seconds=2, read_seconds=2, total_seconds=2, max_redirects=3, per_host=2)


class StubResolver(AbstractResolver):
    """A fake DNS (nothing here may answer for real names): fixed answers per name, in turn."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        addresses = (
            self.answers[host].pop(0) if len(self.answers[host]) > 1 else self.answers[host][0]
        )
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fd00::1", "private"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "not a globally routable"),  # carrier-grade NAT
        ("198.51.100.7", "private"),  # documentation range
        ("not-an-address", "not an IP address"),
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    refusal = address_refusal(address)
    assert refusal is not None and reason in refusal


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(address) is None


async def test_resolver_refuses_a_name_with_any_private_answer() -> None:
    stub = StubResolver(
        {
            "intranet.example": [["10.0.0.1"]],
            "mixed.example": [["93.184.216.34", "169.254.169.254"]],
            "public.example": [["93.184.216.34"]],
        }
    )
    guard = GuardedResolver(stub, allow_private=False)
    with pytest.raises(RefusedDestination, match=r"10\.0\.0\.1, a private address"):
        await guard.resolve("intranet.example", 80)
    with pytest.raises(RefusedDestination, match="link-local"):
        await guard.resolve("mixed.example", 80)
    assert [r["host"] for r in await guard.resolve("public.example", 80)] == ["93.184.216.34"]
    allowed = GuardedResolver(stub, allow_private=True)
    assert [r["host"] for r in await allowed.resolve("intranet.example", 80)] == ["10.0.0.1"]


async def test_every_resolution_is_checked_so_rebinding_is_refused() -> None:
    # A name that first answers a public address, then a private one (DNS rebinding).
    stub = StubResolver({"rebind.example": [["93.184.216.34"], ["127.0.0.1"]]})
    guard = GuardedResolver(stub, allow_private=False)
    assert [r["host"] for r in await guard.resolve("rebind.example", 80)] == ["93.184.216.34"]
    with pytest.raises(RefusedDestination, match="loopback"):
        await guard.resolve("rebind.example", 80)


async def test_client_refuses_a_name_resolving_to_a_private_address_before_connecting() -> None:
    stub = StubResolver({"intranet.example": [["10.0.0.1"]], "meta.example": [["fd00::1"]]})
    async with OutboundClient(allow_private=False, limits=FAST, resolver=stub) as client:
        with pytest.raises(FederationError, match=r"refused: intranet\.example resolves to 10"):
            await client.get("http://intranet.example/feed.json", max_bytes=1000)
        with pytest.raises(FederationError, match="fd00::1, a private address"):
            await client.get("https://meta.example/", max_bytes=1000)
    assert stub.asked == ["intranet.example", "meta.example"]


# --- real servers on loopback ------------------------------------------------------------------


class Server:
    """A small aiohttp server on 127.0.0.1 whose routes the tests write."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.requests: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    app = web.Application()
    srv = Server(app)

    @web.middleware
    async def count(request: web.Request, handler: Any) -> web.StreamResponse:
        srv.requests.append(request.path_qs)
        srv.in_flight += 1
        srv.most_in_flight = max(srv.most_in_flight, srv.in_flight)
        try:
            response: web.StreamResponse = await handler(request)
            return response
        finally:
            srv.in_flight -= 1

    app.middlewares.append(count)

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def hop(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        if left == 0:
            return web.Response(text="arrived")
        raise web.HTTPFound(f"/hop/{left - 1}")

    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"x" * 1000)
        await response.write_eof()
        return response

    async def drip(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        for _ in range(100):
            await response.write(b"x")
            await asyncio.sleep(0.2)
        return response

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.3)
        return web.Response(text="slow")

    app.router.add_get("/", ok)
    app.router.add_get("/hop/{n}", hop)
    app.router.add_get("/away", away)
    app.router.add_get("/big", big)
    app.router.add_get("/big-chunked", big_chunked)
    app.router.add_get("/drip", drip)
    app.router.add_get("/slow", slow)
    sock = loopback_socket()
    srv.port = sock.getsockname()[1]
    async with serving(app, sock):
        yield srv


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
    ],
    ids=["ipv4-literal", "localhost", "ipv6-literal", "ipv4-mapped"],
)
async def test_loopback_is_refused_unless_allowed(server: Server, url: str) -> None:
    target = url.format(port=server.port)
    async with OutboundClient(allow_private=False, limits=FAST) as client:
        with pytest.raises(FederationError, match="loopback address") as refused:
            await client.get(target, max_bytes=1000)
    assert "federation.allow_private_addresses" in str(refused.value)
    assert server.requests == []  # refused before any connection
    async with OutboundClient(allow_private=True, limits=FAST) as client:
        answer = await client.get(server.url + "/", max_bytes=1000)
    assert (answer.status, answer.body) == (200, b"hello")


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/x", "file:///etc/passwd", "http://user:secret@127.0.0.1/", "http:///x"],
    ids=["ftp", "file", "credentials", "no-host"],
)
async def test_only_plain_http_and_https_urls(url: str) -> None:
    async with OutboundClient(allow_private=True, limits=FAST) as client:
        with pytest.raises(FederationError):
            await client.get(url, max_bytes=1000)


async def test_redirects_are_followed_up_to_the_limit(server: Server) -> None:
    async with OutboundClient(allow_private=True, limits=FAST) as client:
        answer = await client.get(server.url + "/hop/3", max_bytes=1000)
        assert (answer.status, answer.body, answer.url) == (200, b"arrived", server.url + "/hop/0")
        with pytest.raises(FederationError, match="more than 3 redirects"):
            await client.get(server.url + "/hop/4", max_bytes=1000)
        with pytest.raises(FederationError, match="only http and https"):
            await client.get(server.url + "/away?to=file:///etc/passwd", max_bytes=1000)
        not_followed = await client.get(
            server.url + "/hop/1", max_bytes=1000, follow_redirects=False
        )
        assert not_followed.status == 302


async def test_each_redirect_hop_is_checked_again(server: Server) -> None:
    # A policy that allows 127.0.0.1 only, so a second loopback address stands in for a
    # private one: the first hop is fine, the redirect to 127.0.0.2 (by IP or by a name
    # resolving to it) is refused before connecting.
    def policy(address: str) -> str | None:
        return None if address == "127.0.0.1" else "a private address"

    stub = StubResolver({"inside.example": [["127.0.0.2"]]})
    async with OutboundClient(
        allow_private=False, limits=FAST, resolver=stub, policy=policy
    ) as client:
        assert (await client.get(server.url + "/", max_bytes=100)).status == 200
        for target in (f"http://127.0.0.2:{server.port}/", f"http://inside.example:{server.port}/"):
            with pytest.raises(FederationError, match=r"127\.0\.0\.2.*a private address"):
                await client.get(f"{server.url}/away?to={target}", max_bytes=100)
    assert server.requests == [
        "/",
        f"/away?to=http://127.0.0.2:{server.port}/",
        f"/away?to=http://inside.example:{server.port}/",
    ]


async def test_bodies_over_the_cap_are_refused(server: Server) -> None:
    async with OutboundClient(allow_private=True, limits=FAST) as client:
        with pytest.raises(FederationError, match="5000 bytes, over the limit of 4096"):
            await client.get(server.url + "/big", max_bytes=4096)
        with pytest.raises(FederationError, match="larger than the limit of 4096"):
            await client.get(server.url + "/big-chunked", max_bytes=4096)
        assert len((await client.get(server.url + "/big", max_bytes=5000)).body) == 5000


async def test_a_slow_drip_answer_hits_the_total_timeout(server: Server) -> None:
    started = asyncio.get_running_loop().time()
    async with OutboundClient(allow_private=True, limits=FAST) as client:
        with pytest.raises(FederationError, match="no complete answer within 2 s"):
            await client.get(server.url + "/drip", max_bytes=1000)
    assert asyncio.get_running_loop().time() - started < 4


async def test_requests_to_one_host_are_limited(server: Server) -> None:
    async with OutboundClient(allow_private=True, limits=FAST) as client:
        answers = await asyncio.gather(
            *(client.get(server.url + "/slow", max_bytes=100) for _ in range(6))
        )
    assert [a.status for a in answers] == [200] * 6
    assert server.most_in_flight == 2
