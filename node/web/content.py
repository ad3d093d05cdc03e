"""`GET`/`HEAD /ipfs/{cid}`: stored content over HTTP (PROTOCOL §8).

Without a format, the file's bytes, sent with sendfile: byte ranges (RFC 9110 §14: one range is a
206 with Content-Range, several are a multipart/byteranges 206, none satisfiable a 416), a strong
`ETag: "{cid}"` and immutable caching. With `?format=raw|car` or the matching `Accept`, the IPFS
Trustless Gateway answers (https://specs.ipfs.tech/http-gateways/trustless-gateway/): one block,
or a CARv1 of the DAG streamed in depth-first order without duplicate blocks.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from node.cid import CID, IDENTITY, varint
from node.errors import ContentNotFound, StaveError, UsageError
from node.store import Store, car_header
from node.web.metrics import route_of
from node.web.requests import etag_matches
from node.web.state import FEEDS, METRICS, NODE

log = logging.getLogger(__name__)

IMMUTABLE: Final = "public, max-age=29030400, immutable"
RAW_TYPE: Final = "application/vnd.ipld.raw"
CAR_TYPE: Final = "application/vnd.ipld.car"
OCTET_STREAM: Final = "application/octet-stream"
# More ranges than this in one request are ignored and the whole file is sent (RFC 9110 §14.2).
MAX_RANGES: Final = 64
SENDFILE_FALLBACK_CHUNK: Final = 1024 * 1024

_RANGE_SPEC = re.compile(r"^(\d*)-(\d*)$", re.ASCII)


# --- byte ranges ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start` to `end` of a file, both inclusive."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(Exception):
    """No range of a valid Range header overlaps the file."""


def parse_ranges(header: str, size: int) -> list[ByteRange] | None:
    """The satisfiable ranges of a `Range` header for a file of `size` bytes, coalesced.

    None when the header is not a valid `bytes` range set (the header is then ignored, as RFC
    9110 §14.2 allows); RangeNotSatisfiable when it is valid but no range overlaps the file.
    """
    unit, equals, spec = header.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return None
    specs = [part.strip() for part in spec.split(",") if part.strip()]
    if not specs or len(specs) > MAX_RANGES:
        return None
    ranges: list[ByteRange] = []
    for part in specs:
        match = _RANGE_SPEC.match(part)
        if match is None or match.group(1) == match.group(2) == "":
            return None
        first, last = match.group(1), match.group(2)
        if first == "":  # a suffix: the last N bytes
            length = int(last)
            if length > 0 and size > 0:
                ranges.append(ByteRange(max(0, size - length), size - 1))
            continue
        start = int(first)
        if last and int(last) < start:
            return None
        end = int(last) if last else size - 1
        if start < size:
            ranges.append(ByteRange(start, min(end, size - 1)))
    if not ranges:
        raise RangeNotSatisfiable
    return _coalesce(ranges)


def _coalesce(ranges: list[ByteRange]) -> list[ByteRange]:
    """Overlapping or adjacent ranges merged; the request's order kept when none touch."""
    ordered = sorted(ranges, key=lambda r: r.start)
    merged = [ordered[0]]
    for r in ordered[1:]:
        last = merged[-1]
        if r.start <= last.end + 1:
            merged[-1] = ByteRange(last.start, max(last.end, r.end))
        else:
            merged.append(r)
    return ranges if len(merged) == len(ranges) else merged


# --- the file response ------------------------------------------------------------------------


class StoredFileResponse(web.StreamResponse):
    """A stored file, whole or in ranges, sent with sendfile where the transport allows.

    Takes ownership of the open file `source` and closes it once sent.
    """

    def __init__(
        self,
        source: IO[bytes],
        size: int,
        content_type: str,
        ranges: list[ByteRange] | None,
        headers: dict[str, str],
    ) -> None:
        super().__init__(status=200 if ranges is None else 206, headers=headers)
        self._source = source
        self._pieces: list[tuple[bytes, int, int]] = []  # (preamble, offset, count)
        epilogue = b""
        if ranges is None:
            self.headers["Content-Type"] = content_type
            self._pieces.append((b"", 0, size))
        elif len(ranges) == 1:
            (r,) = ranges
            self.headers["Content-Type"] = content_type
            self.headers["Content-Range"] = f"bytes {r.start}-{r.end}/{size}"
            self._pieces.append((b"", r.start, r.length))
        else:
            boundary = uuid.uuid4().hex
            self.headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
            for index, r in enumerate(ranges):
                preamble = (
                    ("\r\n" if index else "")
                    + f"--{boundary}\r\nContent-Type: {content_type}\r\n"
                    + f"Content-Range: bytes {r.start}-{r.end}/{size}\r\n\r\n"
                ).encode("ascii")
                self._pieces.append((preamble, r.start, r.length))
            epilogue = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._epilogue = epilogue
        self.content_length = sum(len(p) + count for p, _, count in self._pieces) + len(epilogue)

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        try:
            writer = await super().prepare(request)
            if request.method != "HEAD":
                for preamble, offset, count in self._pieces:
                    if preamble:
                        await self.write(preamble)
                    await self._send(request, offset, count)
                if self._epilogue:
                    await self.write(self._epilogue)
            return writer
        finally:
            self._source.close()

    async def _send(self, request: web.BaseRequest, offset: int, count: int) -> None:
        if count == 0:
            return
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("connection lost")
        sent = _sendfile_now(transport, self._source, offset, count)
        offset, count = offset + sent, count - sent
        if count == 0:
            return
        try:
            await asyncio.get_running_loop().sendfile(transport, self._source, offset, count)
            return
        except NotImplementedError:  # TLS, or a platform without sendfile
            pass
        while count > 0:
            chunk = await asyncio.to_thread(_read_at, self._source, offset, count)
            if not chunk:
                raise ConnectionResetError("stored file shrank while being sent")
            await self.write(chunk)
            offset += len(chunk)
            count -= len(chunk)


def _sendfile_now(
    transport: asyncio.BaseTransport, source: IO[bytes], offset: int, count: int
) -> int:
    """Send what the socket takes right now with one sendfile(2); bytes sent, 0 if it can't.

    Only on a plain TCP transport with nothing queued, where this is what the transport itself
    would do with the bytes. asyncio's `loop.sendfile`, used for the rest, stops reading and
    re-registers the socket with the selector on every call, which costs more than sending a
    MiB (https://github.com/python/cpython/blob/3.11/Lib/asyncio/selector_events.py).
    """
    if not hasattr(os, "sendfile") or transport.get_extra_info("sslcontext") is not None:
        return 0
    sock = transport.get_extra_info("socket")
    if sock is None or not isinstance(transport, asyncio.WriteTransport):
        return 0
    if transport.is_closing() or transport.get_write_buffer_size() != 0:
        return 0
    try:
        return os.sendfile(sock.fileno(), source.fileno(), offset, count)
    except (BlockingIOError, InterruptedError):
        return 0
    except ConnectionError:
        raise
    except OSError:  # a file or socket sendfile(2) refuses: let asyncio choose how to send
        return 0


def _read_at(source: IO[bytes], offset: int, count: int) -> bytes:
    source.seek(offset)
    return source.read(min(count, SENDFILE_FALLBACK_CHUNK))


@functools.lru_cache(maxsize=4096)
def _stored_path(store: Store, cid: str) -> Path:
    return store.path(cid)  # ContentNotFound is raised, and so not cached


def _is_stored(store: Store, cid: str) -> bool:
    try:
        return _stored_path(store, cid).is_file()
    except ContentNotFound:
        return False


def _open(store: Store, cid: str) -> tuple[IO[bytes], int]:
    """The stored file under `cid` (CIDv1 base32), open, and its size; ContentNotFound."""
    try:
        source = _stored_path(store, cid).open("rb")
    except FileNotFoundError as e:  # removed since its path was looked up
        raise ContentNotFound(f"{cid}: not in the content store") from e
    return source, os.fstat(source.fileno()).st_size


@functools.lru_cache(maxsize=4096)
def parse_cid(text: str) -> tuple[CID, str]:
    """A CID from the URL and its normal (CIDv1 base32) form; InvalidCID if malformed.

    Cached: parsing base32 in Python costs more than the rest of a small response.
    """
    cid = CID.parse(text)
    return cid, str(cid.to_v1())


# --- formats ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requested:
    """What the request asks for: a format (None: the file itself) and CAR parameters."""

    format: str | None
    from_query: bool
    dups: bool = False
    scope: str = "all"


def _accept_entries(accept: str) -> list[tuple[str, dict[str, str], float]]:
    entries = []
    for index, entry in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in entry.split(";"))
        values: dict[str, str] = {}
        for param in params:
            key, _, value = param.partition("=")
            values[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(values.pop("q", "1"))
        except ValueError:
            q = 0.0
        entries.append((media.lower(), values, q - index * 1e-6))
    return entries


def requested(request: web.Request) -> Requested:
    """The response format from `?format=` (which wins) or `Accept`; UsageError if unknown."""
    query = request.query
    accept_params: dict[str, str] = {}
    fmt = query.get("format")
    from_query = fmt is not None
    if fmt is not None:
        if fmt not in ("raw", "car"):
            raise UsageError(f"format {fmt!r}: this gateway serves raw and car only")
    elif "vnd.ipld" in (accept := request.headers.get("Accept", "")):
        best = 0.0
        for media, params, q in _accept_entries(accept):
            if q > best and media in (RAW_TYPE, CAR_TYPE):
                fmt, accept_params, best = media.rsplit(".", 1)[1], params, q
    if fmt != "car":
        return Requested(format=fmt, from_query=from_query)
    version = query.get("car-version", accept_params.get("version", "1"))
    if version != "1":
        raise UsageError(f"CAR version {version!r}: only version 1 is served")
    order = query.get("car-order", accept_params.get("order", "dfs"))
    if order not in ("dfs", "unk"):
        raise UsageError(f"CAR order {order!r}: only dfs is served")
    dups = query.get("car-dups", accept_params.get("dups", "n"))
    if dups not in ("y", "n"):
        raise UsageError(f"CAR dups {dups!r}: must be y or n")
    scope = query.get("dag-scope", "all")
    if scope not in ("block", "entity", "all"):
        raise UsageError(f"dag-scope {scope!r}: must be block, entity or all")
    if "entity-bytes" in query:
        raise UsageError("entity-bytes: not supported by this gateway; use a Range request")
    return Requested(format="car", from_query=from_query, dups=dups == "y", scope=scope)


def _negotiated_headers(cid: str, etag: str, what: Requested) -> dict[str, str]:
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "Vary": "Accept"}
    if what.format is not None:
        headers["X-Content-Type-Options"] = "nosniff"
        if not what.from_query:
            headers["Content-Location"] = f"/ipfs/{cid}?format={what.format}"
    return headers


# --- handlers ---------------------------------------------------------------------------------


async def content(request: web.Request) -> web.StreamResponse:
    """The content under a CID: its file, one block, or a CAR; 400 malformed, 404 unknown."""
    text = request.match_info["cid"]
    cid, normal = parse_cid(text)
    what = requested(request)
    if what.format == "raw":
        return await _raw_block(request, text, cid, what)
    if what.format == "car":
        return await _car(request, text, cid, what)
    return await _file(request, text, cid, normal, what)


async def _file(
    request: web.Request, text: str, cid: CID, normal: str, what: Requested
) -> web.StreamResponse:
    etag = f'"{text}"'
    headers = _negotiated_headers(text, etag, what)
    headers["Accept-Ranges"] = "bytes"
    headers["X-Content-Type-Options"] = "nosniff"
    if cid.hash_code == IDENTITY:  # inline content: its bytes are the digest
        if etag_matches(request, etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=cid.digest, content_type=OCTET_STREAM, headers=headers)
    app = request.app  # this route is on the root app; config_dict would build a ChainMap
    store = app[NODE].store
    if etag_matches(request, etag):
        if not _is_stored(store, normal):
            raise ContentNotFound(f"{text}: not in the content store")
        return web.Response(status=304, headers=headers)
    # Opening a local file is quicker than handing it to a thread; the bytes go by sendfile.
    source, size = _open(store, normal)
    try:
        media_type = (
            await app[FEEDS].media_type(normal)
            or await app[NODE].catalog.followed_media_type(normal)  # mirrored audio
            or OCTET_STREAM
        )
        ranges = None
        range_header = request.headers.get("Range")
        if range_header is not None and _if_range_holds(request, etag):
            try:
                ranges = parse_ranges(range_header, size)
            except RangeNotSatisfiable:
                source.close()
                headers["Content-Range"] = f"bytes */{size}"
                return web.Response(status=416, headers=headers)
        return StoredFileResponse(source, size, media_type, ranges, headers)
    except BaseException:
        source.close()
        raise


def _if_range_holds(request: web.Request, etag: str) -> bool:
    """If-Range (RFC 9110 §13.1.5): ranges only while the client's validator is ours, exactly.

    A date never matches: content under a CID has no modification time to compare.
    """
    condition = request.headers.get("If-Range")
    return condition is None or condition.strip() == etag


async def _raw_block(request: web.Request, text: str, cid: CID, what: Requested) -> web.Response:
    etag = f'"{text}.raw"'
    headers = _negotiated_headers(text, etag, what)
    headers["Content-Disposition"] = f'attachment; filename="{text}.bin"'
    store = request.config_dict[NODE].store
    if cid.hash_code == IDENTITY:
        block = cid.digest
    else:
        block = await asyncio.to_thread(store.block, str(cid))
    if etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=block, content_type=RAW_TYPE, headers=headers)


async def _car(request: web.Request, text: str, cid: CID, what: Requested) -> web.StreamResponse:
    dups = "y" if what.dups else "n"
    suffix = "" if (what.scope, dups) == ("all", "n") else f".{what.scope}.dups-{dups}"
    etag = f'"{text}.car{suffix}"'
    headers = _negotiated_headers(text, etag, what)
    headers["Content-Type"] = f"{CAR_TYPE}; version=1; order=dfs; dups={dups}"
    headers["Content-Disposition"] = f'attachment; filename="{text}.car"'
    headers["Accept-Ranges"] = "none"
    store = request.config_dict[NODE].store
    root = cid.to_v1()
    if root.hash_code == IDENTITY:
        # An identity block is never sent: its bytes are in its CID (trustless gateway spec).
        pieces: Iterator[bytes] = iter([car_header(root)])
    elif what.scope == "block":
        block = await asyncio.to_thread(store.block, str(root))
        pieces = iter([car_header(root), _car_section(root, block)])
    else:
        pieces = await asyncio.to_thread(store.car, str(root), what.dups)
    if etag_matches(request, etag):
        return web.Response(status=304, headers=headers)
    if request.method == "HEAD":
        return web.Response(headers=headers)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    sent = 0
    try:
        while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
            await response.write(piece)
            sent += len(piece)
    except (StaveError, OSError) as e:
        # The status is already sent: end the stream so the client sees an incomplete CAR.
        log.error("CAR of %s broke off after %d bytes: %s", text, sent, e)
        if request.transport is not None:
            request.transport.close()
    finally:
        request.config_dict[METRICS].count_bytes(route_of(request), sent)
    return response


def _car_section(cid: CID, block: bytes) -> bytes:
    cid_bytes = cid.to_bytes()
    return varint(len(cid_bytes) + len(block)) + cid_bytes + block


def setup(app: web.Application) -> None:
    """Add the `/ipfs/{cid}` gateway to `app`."""
    app.router.add_get("/ipfs/{cid}", content)
