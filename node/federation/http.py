"""The one HTTP client for every request Stave sends to another node.

Every outbound request goes through `OutboundClient`, which enforces:

- http and https only, and never a downgrade from https to http on a redirect;
- destinations judged on the address they RESOLVE to: private, loopback, link-local and other
  non-global addresses are refused unless `federation.allow_private_addresses` is true. Names are
  checked by `GuardedResolver`, which the connector connects through, so every address a name
  resolves to — at every resolution, including after a redirect — is checked before a socket
  is opened; a name that rebinds to a private address is refused. IP literals, which aiohttp
  does not resolve, are checked before the request;
- connect, read (silence) and total timeouts, the total covering the whole exchange including
  the body, so a slow-drip answer cannot hold a request open;
- a size cap on every body, checked against Content-Length first and then while reading;
- redirects followed by hand, at most `Limits.max_redirects` hops, each hop checked again;
- at most `Limits.per_host` requests in flight to one host (scheme, host, port) at a time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDictProxy
from yarl import URL

from node import __version__
from node.errors import FederationError

USER_AGENT = f"Stave/{__version__} (+https://stave.invalid/federation)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_SIZE = 1024 * 1024
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class Limits:
    """Timeouts (seconds), the redirect limit and the per-host concurrency of outbound requests."""

    connect_seconds: float = 5.0
    read_seconds: float = 15.0
    total_seconds: float = 30.0
    max_redirects: int = 5
    per_host: int = 4
    max_connections: int = 64


def address_refusal(address: str) -> str | None:
    """Why a connection to this IP address is refused when private addresses are not allowed.

    None means the address is globally routable. IPv4 addresses carried inside IPv6 ones
    (IPv4-mapped, NAT64, 6to4, Teredo) are judged by the IPv4 address they carry.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: list[ipaddress.IPv4Address] = []
        if ip.ipv4_mapped is not None:
            embedded.append(ip.ipv4_mapped)
        if ip in NAT64_PREFIX:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.sixtofour is not None:
            embedded.append(ip.sixtofour)
        if ip.teredo is not None:
            embedded.extend(ip.teredo)
        for inner in embedded:
            if (reason := address_refusal(str(inner))) is not None:
                return reason
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "not a globally routable address"
    return None


class RefusedDestination(OSError):
    """A name resolved to an address outbound requests may not reach (kept inside this module)."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host} resolves to {address}, {reason}")
        self.host = host
        self.address = address
        self.reason = reason


AddressPolicy = Callable[[str], str | None]


class GuardedResolver(AbstractResolver):
    """A resolver that refuses a name if ANY address it resolves to is refused.

    The connector connects only to addresses this resolver returned, so a check here is a check
    on the address actually connected to. `policy` says why an address is refused (None: it is
    not); it is `address_refusal` except in tests that need a narrower one on loopback.
    """

    def __init__(
        self,
        inner: AbstractResolver | None = None,
        *,
        allow_private: bool,
        policy: AddressPolicy = address_refusal,
    ) -> None:
        self._inner = inner
        self.allow_private = allow_private
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = aiohttp.ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        if not self.allow_private:
            for result in results:
                reason = self.policy(result["host"])
                if reason is not None:
                    raise RefusedDestination(host, result["host"], reason)
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


@dataclass(frozen=True)
class Fetched:
    """A complete answer: the final URL after redirects, its status, headers and body."""

    url: str
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class Streaming:
    """An answer whose body is read a chunk at a time, within the request's size cap."""

    def __init__(self, url: str, response: aiohttp.ClientResponse, max_bytes: int) -> None:
        self.url = url
        self.status = response.status
        self.headers = response.headers
        self._response = response
        self._max_bytes = max_bytes

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in chunks; FederationError once it passes the cap."""
        received = 0
        async for chunk in self._response.content.iter_chunked(CHUNK_SIZE):
            received += len(chunk)
            if received > self._max_bytes:
                raise FederationError(f"{self.url}: answer is larger than {self._max_bytes} bytes")
            yield chunk


def check_url(url: str | URL) -> URL:
    """`url` parsed, if outbound requests may be sent to it at all (scheme and host)."""
    try:
        parsed = URL(url) if isinstance(url, str) else url
    except (ValueError, TypeError) as e:
        raise FederationError(f"{url!s}: not a URL ({e})") from e
    if parsed.scheme not in ("http", "https"):
        raise FederationError(f"{url!s}: only http and https URLs are allowed")
    if not parsed.host:
        raise FederationError(f"{url!s}: has no host")
    if parsed.user is not None or parsed.password is not None:
        raise FederationError(f"{url!s}: URLs with credentials are not allowed")
    return parsed


def _literal_address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


class OutboundClient:
    """The guarded client. Use `async with OutboundClient(allow_private=...) as client`."""

    def __init__(
        self,
        *,
        allow_private: bool,
        limits: Limits | None = None,
        resolver: AbstractResolver | None = None,
        policy: AddressPolicy = address_refusal,
    ) -> None:
        self.allow_private = allow_private
        self.limits = limits or Limits()
        self.policy = policy
        self._resolver = GuardedResolver(resolver, allow_private=allow_private, policy=policy)
        self._session: aiohttp.ClientSession | None = None
        self._hosts: dict[tuple[str, str, int | None], asyncio.Semaphore] = {}

    async def __aenter__(self) -> OutboundClient:
        connector = aiohttp.TCPConnector(
            resolver=self._resolver,
            limit=self.limits.max_connections,
            limit_per_host=self.limits.per_host,
            ttl_dns_cache=10,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,  # never through a proxy taken from the environment
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.limits.connect_seconds,
                sock_read=self.limits.read_seconds,
            ),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def check_destination(self, url: str | URL) -> URL:
        """`url` parsed, if its scheme is allowed and, when it is an IP literal, its address."""
        parsed = check_url(url)
        if not self.allow_private:
            address = _literal_address(parsed.raw_host or "")
            if address is not None and (reason := self.policy(address)) is not None:
                raise FederationError(
                    f"{url!s}: refused: {address} is {reason}"
                    " (set federation.allow_private_addresses to allow it)"
                )
        return parsed

    async def get(
        self,
        url: str,
        *,
        max_bytes: int,
        headers: Mapping[str, str] | None = None,
        total_seconds: float | None = None,
        follow_redirects: bool = True,
    ) -> Fetched:
        """GET `url` and read the whole body (at most `max_bytes`); FederationError otherwise.

        Any status is returned as it is; only transport failures and limits raise.
        """
        async with self._exchange("GET", url, headers, None, total_seconds, follow_redirects) as (
            final,
            response,
        ):
            body = await _read_capped(final, response, max_bytes)
            return Fetched(str(final), response.status, response.headers, body)

    async def post(
        self,
        url: str,
        *,
        data: bytes | Mapping[str, str],
        max_bytes: int = 64 * 1024,
        headers: Mapping[str, str] | None = None,
        total_seconds: float | None = None,
    ) -> Fetched:
        """POST `data` (bytes, or a form) to `url` without following redirects."""
        async with self._exchange("POST", url, headers, data, total_seconds, False) as (
            final,
            response,
        ):
            body = await _read_capped(final, response, max_bytes)
            return Fetched(str(final), response.status, response.headers, body)

    @asynccontextmanager
    async def stream(
        self,
        url: str,
        *,
        max_bytes: int,
        total_seconds: float,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Streaming]:
        """GET `url` for reading its body in chunks, all within `total_seconds`."""
        async with self._exchange("GET", url, headers, None, total_seconds, True) as (
            final,
            response,
        ):
            length = response.content_length
            if length is not None and length > max_bytes:
                raise FederationError(f"{final}: answer is {length} bytes, over {max_bytes}")
            yield Streaming(str(final), response, max_bytes)

    @asynccontextmanager
    async def _exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        data: Any,
        total_seconds: float | None,
        follow_redirects: bool,
    ) -> AsyncIterator[tuple[URL, aiohttp.ClientResponse]]:
        if self._session is None:
            raise FederationError("the outbound client is not open")
        total = total_seconds if total_seconds is not None else self.limits.total_seconds
        target = self.check_destination(url)
        try:
            async with asyncio.timeout(total):
                for _hop in range(self.limits.max_redirects + 1):
                    async with AsyncExitStack() as hop:
                        await hop.enter_async_context(self._host_slot(target))
                        response = await hop.enter_async_context(
                            self._session.request(
                                method, target, headers=headers, data=data, allow_redirects=False
                            )
                        )
                        if not follow_redirects or response.status not in REDIRECT_STATUSES:
                            yield target, response
                            return
                        location = response.headers.get("Location")
                        if location is None:
                            raise FederationError(f"{target}: redirect without a Location")
                        following = target.join(URL(location))
                        if target.scheme == "https" and following.scheme == "http":
                            raise FederationError(
                                f"{target}: refused a redirect from https to http"
                            )
                        target = self.check_destination(following)
                raise FederationError(f"{url}: more than {self.limits.max_redirects} redirects")
        except TimeoutError as e:
            raise FederationError(f"{url}: no complete answer within {total:g} s") from e
        except aiohttp.ClientConnectorError as e:
            if isinstance(e.os_error, RefusedDestination):
                raise FederationError(
                    f"{url}: refused: {e.os_error}"
                    " (set federation.allow_private_addresses to allow it)"
                ) from e
            raise FederationError(f"{url}: cannot connect ({e.os_error.strerror or e})") from e
        except aiohttp.ClientError as e:
            raise FederationError(f"{url}: {e.__class__.__name__}: {e}") from e
        except ValueError as e:  # a malformed Location, header or URL from the other side
            raise FederationError(f"{url}: malformed answer ({e})") from e

    @asynccontextmanager
    async def _host_slot(self, url: URL) -> AsyncIterator[None]:
        key = (url.scheme, url.host or "", url.port)
        slot = self._hosts.get(key)
        if slot is None:
            slot = self._hosts[key] = asyncio.Semaphore(self.limits.per_host)
        async with slot:
            yield


async def _read_capped(url: URL, response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    length = response.content_length
    if length is not None and length > max_bytes:
        raise FederationError(f"{url}: answer is {length} bytes, over the limit of {max_bytes}")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > max_bytes:
            raise FederationError(f"{url}: answer is larger than the limit of {max_bytes} bytes")
    return bytes(body)
