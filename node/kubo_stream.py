"""Reading Kubo's answers: one HTTP/1.1 response with its trailers, JSON lines, refusals.

aiohttp does not expose HTTP trailers, and Kubo reports a failure in the middle of a streaming
answer (`cat`, `dag/export`, `pin/add`) only in its `X-Stream-Error` trailer, so node/kubo.py
reads those answers with the reader here, which keeps them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import suppress
from typing import Any

from node.errors import KuboError

CHUNK_SIZE = 1024 * 1024


class Exchange:
    """Reads one HTTP/1.1 response: status, headers, body in any framing, and trailers."""

    def __init__(self, reader: asyncio.StreamReader, timeout: float) -> None:
        self._reader = reader
        self._timeout = timeout
        self.trailers: dict[str, str] = {}

    async def _line(self) -> bytes:
        async with asyncio.timeout(self._timeout):
            line = await self._reader.readuntil(b"\n")
        return line.rstrip(b"\r\n")

    async def _exactly(self, size: int) -> bytes:
        async with asyncio.timeout(self._timeout):
            return await self._reader.readexactly(size)

    async def _fields(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        while line := await self._line():
            name, _, value = line.decode("latin-1").partition(":")
            fields[name.strip().lower()] = value.strip()
        return fields

    async def read_head(self) -> tuple[int, dict[str, str]]:
        status_line = (await self._line()).decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise OSError(f"not an HTTP response: {status_line[:80]!r}")
        status = int(parts[1])
        fields = await self._fields()
        if status == 100:  # "100 Continue", then the real answer
            return await self.read_head()
        return status, fields

    async def body(self, headers: Mapping[str, str]) -> AsyncIterator[bytes]:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size_line = (await self._line()).split(b";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError as e:
                    raise OSError(f"bad chunk size {size_line[:20]!r}") from e
                if size == 0:
                    self.trailers = await self._fields()
                    return
                while size:
                    piece = await self._exactly(min(size, CHUNK_SIZE))
                    size -= len(piece)
                    yield piece
                await self._line()
        elif "content-length" in headers:
            remaining = int(headers["content-length"])
            while remaining:
                piece = await self._exactly(min(remaining, CHUNK_SIZE))
                remaining -= len(piece)
                yield piece
        else:
            while True:
                async with asyncio.timeout(self._timeout):
                    piece = await self._reader.read(CHUNK_SIZE)
                if not piece:
                    return
                yield piece


async def json_lines(stream: AsyncIterator[bytes], command: str) -> AsyncIterator[Any]:
    """Yield each JSON value of a newline-delimited JSON byte stream."""
    pending = b""
    async for chunk in stream:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield _json(line, command)
    if pending.strip():
        yield _json(pending, command)


def _json(line: bytes, command: str) -> Any:
    try:
        return json.loads(line)
    except ValueError as e:
        raise KuboError(f"kubo {command}: Kubo's answer is not JSON") from e


def refusal(command: str, status: int, body: bytes) -> KuboError:
    """Kubo's JSON error `{"Message", "Code", "Type"}`, or the plain text it sent instead."""
    message = ""
    with suppress(ValueError):
        error = json.loads(body)
        if isinstance(error, dict) and isinstance(error.get("Message"), str):
            message = error["Message"]
    if not message:
        text = body.decode("utf-8", "replace").strip().splitlines()
        message = f"HTTP {status}" + (f": {text[0][:200]}" if text else "")
    return KuboError(f"kubo {command}: {message}")
