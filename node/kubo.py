"""An async client for the RPC API of Kubo, the reference IPFS implementation.

Kubo's RPC is POST-only (`POST /api/v0/<command>?arg=…`). A refused call answers with a JSON
error `{"Message", "Code", "Type"}`; a call whose answer is already streaming when it fails
reports the failure in the `X-Stream-Error` HTTP trailer. Both become `KuboError("kubo <command>:
<Kubo's message>")`, and a Kubo that cannot be reached becomes `KuboError("Kubo is not reachable
at <api>: <reason>")`.

aiohttp does not expose HTTP trailers, so the answers that stream and can fail part-way (`cat`,
`dag/export`, `pin/add`) are read by a small HTTP/1.1 reader that keeps them (node/kubo_stream.py);
every other call goes through aiohttp.

Every `add` passes the import parameters of PROTOCOL §3 explicitly, so the node's own `Import.*`
settings can never change a CID.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from yarl import URL

from node.errors import KuboError
from node.ipns import ipns_name_of_key
from node.kubo_stream import CHUNK_SIZE, Exchange, json_lines, refusal

DEFAULT_API = "http://127.0.0.1:5001"

# PROTOCOL §3: the unixfs-v1-2025 import profile, every parameter explicit.
IMPORT_PARAMETERS: Mapping[str, str] = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": "size-1048576",
    "max-file-links": "1024",
    "trickle": "false",
    "hash": "sha2-256",
}

_STREAM_ERROR_TRAILER = "x-stream-error"
_MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True)
class KuboPeer:
    """What `id` tells about the Kubo node: its peer id, listen addresses and agent."""

    peer_id: str
    addresses: tuple[str, ...]
    agent_version: str


class KuboClient:
    """A connection to one Kubo RPC API; use it as an async context manager.

    `authorization` is the whole `Authorization` header value Kubo's `API.Authorizations`
    expects ("Bearer …" or "Basic …"). `timeout` is how many seconds Kubo may stay silent during
    a call, `connect_timeout` how long connecting may take.
    """

    def __init__(
        self,
        api: str = DEFAULT_API,
        authorization: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.api = api.rstrip("/")
        self._base = URL(self.api)
        if self._base.scheme not in ("http", "https") or not self._base.host:
            raise KuboError(f"Kubo API address {api!r} is not an http:// or https:// URL")
        self._headers = {"Authorization": authorization} if authorization else {}
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(
                total=None, connect=self._connect_timeout, sock_read=self._timeout
            ),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections to Kubo."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- node ---------------------------------------------------------------------------------

    async def version(self) -> str:
        """Return Kubo's version, e.g. "0.42.0"."""
        answer = await self._call("version")
        return _text(answer, "Version", "version")

    async def id(self) -> KuboPeer:
        """Return the Kubo node's peer id, its listen addresses and its agent version."""
        answer = await self._call("id")
        addresses = answer.get("Addresses") if isinstance(answer, dict) else None
        return KuboPeer(
            peer_id=_text(answer, "ID", "id"),
            addresses=tuple(a for a in addresses or () if isinstance(a, str)),
            agent_version=_text(answer, "AgentVersion", "id"),
        )

    async def swarm_connect(self, multiaddr: str) -> None:
        """Connect Kubo to the peer at `multiaddr` (which must end in /p2p/<peer id>)."""
        await self._call("swarm/connect", {"arg": multiaddr})

    # --- content ------------------------------------------------------------------------------

    async def add(self, path: Path, *, pin: bool = False) -> str:
        """Add the file at `path` with the import parameters of PROTOCOL §3; return its CID.

        The file is streamed from disk in 1 MiB chunks, never read whole. `pin=False` leaves
        pinning to `pin_add`.
        """
        try:
            file = path.open("rb")
            size = os.fstat(file.fileno()).st_size
        except OSError as e:
            raise KuboError(f"kubo add: cannot read {path}: {e.strerror}") from e
        with file:
            return await self._add(aiohttp.AsyncIterablePayload(_chunks(file)), size, pin)

    async def add_bytes(self, data: bytes, *, pin: bool = False) -> str:
        """Add `data` as one file with the import parameters of PROTOCOL §3; return its CID."""
        return await self._add(aiohttp.BytesIOPayload(io.BytesIO(data)), len(data), pin)

    async def _add(self, payload: aiohttp.Payload, size: int, pin: bool) -> str:
        form = aiohttp.MultipartWriter("form-data")
        payload.set_content_disposition("form-data", name="file", filename="file")
        payload.headers[aiohttp.hdrs.CONTENT_TYPE] = "application/octet-stream"
        form.append_payload(payload)
        params = {**IMPORT_PARAMETERS, "pin": _flag(pin), "progress": "false"}
        answers = await self._call_lines("add", params, data=form)
        cid: str | None = None
        added: str | int | None = None
        for answer in answers:
            if isinstance(answer, dict) and isinstance(answer.get("Hash"), str):
                cid = answer["Hash"]
                added = answer.get("Size")
                if not isinstance(added, str | int):
                    added = None
        if cid is None:
            raise KuboError("kubo add: Kubo's answer named no CID (the add failed part-way)")
        if added is not None and str(added).isdigit() and int(added) < size:
            raise KuboError(f"kubo add: Kubo stored {added} bytes of {size}")
        return cid

    async def cat(self, cid: str, *, offline: bool = False) -> AsyncIterator[bytes]:
        """Yield the bytes of the file `cid` (a CID or an /ipfs/ path) in chunks.

        `offline=True` serves only blocks Kubo already holds: a missing one is a KuboError
        instead of a fetch from the network.
        """
        params = {"arg": cid, "progress": "false", "offline": _flag(offline)}
        async for chunk in self._stream("cat", params):
            yield chunk

    async def dag_export(self, cid: str, *, offline: bool = False) -> AsyncIterator[bytes]:
        """Yield a CARv1 of the whole DAG under `cid`, in chunks (`offline` as for `cat`)."""
        params = {"arg": cid, "progress": "false", "offline": _flag(offline)}
        async for chunk in self._stream("dag/export", params):
            yield chunk

    # --- pins ---------------------------------------------------------------------------------

    async def pin_add(self, cid: str) -> None:
        """Pin `cid` and everything under it, fetching what Kubo lacks."""
        # With progress on, Kubo keeps talking while it fetches, so a long pin is not a timeout.
        pinned = False
        async for answer in json_lines(
            self._stream("pin/add", {"arg": cid, "recursive": "true", "progress": "true"}),
            "pin/add",
        ):
            if isinstance(answer, dict) and answer.get("Pins"):
                pinned = True
        if not pinned:
            raise KuboError(f"kubo pin/add: Kubo's answer did not confirm the pin of {cid}")

    async def pin_rm(self, cid: str) -> bool:
        """Unpin `cid`; return False, not an error, when it was not pinned."""
        try:
            await self._call("pin/rm", {"arg": cid, "recursive": "true"})
        except KuboError as e:
            if "not pinned" in str(e):
                return False
            raise
        return True

    async def pin_ls(self, cid: str | None = None) -> dict[str, str]:
        """Return the pins as {cid: type}, type being "recursive", "direct" or "indirect …".

        With `cid`, only that CID's pin, or {} when it is not pinned.
        """
        params = {"type": "all"}
        if cid is not None:
            params["arg"] = cid
        try:
            answer = await self._call("pin/ls", params)
        except KuboError as e:
            if cid is not None and "is not pinned" in str(e):
                return {}
            raise
        keys = answer.get("Keys") if isinstance(answer, dict) else None
        if not isinstance(keys, dict):
            raise KuboError("kubo pin/ls: Kubo's answer has no Keys")
        return {
            key: str(value.get("Type", "")) if isinstance(value, dict) else ""
            for key, value in keys.items()
        }

    # --- keys and IPNS ------------------------------------------------------------------------

    async def key_list(self) -> dict[str, str]:
        """Return Kubo's keys as {name: IPNS name (base36)}."""
        answer = await self._call("key/list", {"l": "true", "ipns-base": "base36"})
        keys = answer.get("Keys") if isinstance(answer, dict) else None
        if not isinstance(keys, list):
            raise KuboError("kubo key/list: Kubo's answer has no Keys")
        return {
            _text(key, "Name", "key/list"): _text(key, "Id", "key/list")
            for key in keys
            if isinstance(key, dict)
        }

    async def key_import(self, name: str, pem_pkcs8: bytes) -> str:
        """Import a private key (PEM, PKCS#8, cleartext) as `name`; return its IPNS name.

        Importing the same key under the same name again is a no-op; a different key already
        holding that name is a KuboError.
        """
        existing = (await self.key_list()).get(name)
        if existing is None:
            form = aiohttp.FormData()
            form.add_field(
                "key", pem_pkcs8, filename="key.pem", content_type="application/octet-stream"
            )
            params = {"arg": name, "format": "pem-pkcs8-cleartext", "ipns-base": "base36"}
            try:
                answer = await self._call("key/import", params, data=form)
            except KuboError as e:
                if "already exists" not in str(e):
                    raise
                existing = (await self.key_list()).get(name)  # imported meanwhile
            else:
                return _text(answer, "Id", "key/import")
        if existing is not None and existing == ipns_name(pem_pkcs8):
            return existing
        raise KuboError(f"kubo key/import: Kubo already holds a different key named {name!r}")

    async def name_publish(
        self, cid: str, key: str, lifetime_hours: int = 168, ttl_minutes: int = 5
    ) -> str:
        """Publish /ipfs/`cid` under the IPNS name of Kubo's key `key`; return that name.

        The record is valid for `lifetime_hours` and may be cached for `ttl_minutes`. It is
        published even when Kubo has no peers (it then lives in Kubo's datastore).
        """
        # Go's duration parser knows no days, so lifetimes are written in hours.
        params = {
            "arg": cid if cid.startswith("/") else f"/ipfs/{cid}",
            "key": key,
            "lifetime": f"{lifetime_hours}h",
            "ttl": f"{ttl_minutes}m",
            "allow-offline": "true",
            "ipns-base": "base36",
        }
        answer = await self._call("name/publish", params)
        return _text(answer, "Name", "name/publish")

    async def name_resolve(self, name: str) -> str:
        """Resolve the IPNS name `name` (bare or /ipns/…) to the path it points at (/ipfs/…)."""
        arg = name if name.startswith("/") else f"/ipns/{name}"
        answer = await self._call("name/resolve", {"arg": arg, "recursive": "true"})
        return _text(answer, "Path", "name/resolve")

    # --- transport ----------------------------------------------------------------------------

    def _url(self, command: str, params: Mapping[str, str]) -> URL:
        return self._base.with_path(f"{self._base.path.rstrip('/')}/api/v0/{command}").with_query(
            params
        )

    def _unreachable(self, reason: BaseException) -> KuboError:
        if isinstance(reason, TimeoutError):
            why = f"no answer within {self._connect_timeout:g} s"
        elif isinstance(reason, aiohttp.ClientConnectorError):
            why = _os_reason(reason.os_error)
        elif isinstance(reason, OSError):
            why = _os_reason(reason)
        else:
            why = str(reason) or type(reason).__name__
        return KuboError(f"Kubo is not reachable at {self.api}: {why}")

    async def _call(
        self, command: str, params: Mapping[str, str] | None = None, data: Any = None
    ) -> Any:
        """POST `command` and return its answer, one JSON value."""
        answers = await self._call_lines(command, params, data)
        if len(answers) != 1:
            raise KuboError(f"kubo {command}: expected one answer from Kubo, got {len(answers)}")
        return answers[0]

    async def _call_lines(
        self, command: str, params: Mapping[str, str] | None = None, data: Any = None
    ) -> list[Any]:
        """POST `command` and return every JSON value of its (newline-delimited) answer."""
        if self._session is None:
            raise KuboError(f"kubo {command}: the client is not open (use `async with`)")
        url = self._url(command, params or {})
        try:
            async with self._session.post(url, data=data) as response:
                body = await response.read()
                if response.status != 200:
                    raise refusal(command, response.status, body)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            raise self._unreachable(e) from e
        except TimeoutError as e:
            raise KuboError(
                f"kubo {command}: no answer from Kubo at {self.api} within {self._timeout:g} s"
            ) from e
        except aiohttp.ClientError as e:
            raise KuboError(f"kubo {command}: the connection to {self.api} failed: {e}") from e
        try:
            return [json.loads(line) for line in body.splitlines() if line.strip()]
        except ValueError as e:
            raise KuboError(f"kubo {command}: Kubo's answer is not JSON") from e

    async def _stream(self, command: str, params: Mapping[str, str]) -> AsyncIterator[bytes]:
        """POST `command` and yield the bytes of its answer, then check the error trailer.

        A minimal HTTP/1.1 exchange (one request, then the connection is closed), because
        aiohttp drops trailers and a stream that fails part-way must never look complete.
        """
        url = self._url(command, params)
        port = url.port or (443 if url.scheme == "https" else 80)
        context = ssl.create_default_context() if url.scheme == "https" else None
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(url.host, port, ssl=context)
        except (OSError, TimeoutError) as e:
            raise self._unreachable(e) from e
        try:
            head = [
                f"POST {url.raw_path_qs} HTTP/1.1",
                f"Host: {url.raw_authority}",
                "Content-Length: 0",
                "TE: trailers",
                "Connection: close",
                *(f"{name}: {value}" for name, value in self._headers.items()),
            ]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            exchange = Exchange(reader, self._timeout)
            status, headers = await exchange.read_head()
            if status != 200:
                body = b""
                async for chunk in exchange.body(headers):
                    body += chunk
                    if len(body) > _MAX_ERROR_BODY:
                        break
                raise refusal(command, status, body)
            async for chunk in exchange.body(headers):
                yield chunk
            if error := exchange.trailers.get(_STREAM_ERROR_TRAILER):
                raise KuboError(f"kubo {command}: {error}")
        except TimeoutError as e:
            raise KuboError(
                f"kubo {command}: no answer from Kubo at {self.api} within {self._timeout:g} s"
            ) from e
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            raise KuboError(f"kubo {command}: the connection to {self.api} broke: {e}") from e
        finally:
            writer.close()
            with suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


async def _chunks(file: BinaryIO) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(file.read, CHUNK_SIZE):
        yield chunk


def _text(answer: Any, field: str, command: str) -> str:
    value = answer.get(field) if isinstance(answer, dict) else None
    if not isinstance(value, str):
        raise KuboError(f"kubo {command}: Kubo's answer has no {field}")
    return value


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _os_reason(error: OSError) -> str:
    if error.errno == errno.ECONNREFUSED or isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return error.strerror or str(error)


def ipns_name(pem_pkcs8: bytes) -> str | None:
    """The IPNS name (base36 CIDv1, libp2p-key) Kubo gives an Ed25519 PEM PKCS#8 key.

    None when the PEM is not an Ed25519 private key.
    """
    try:
        key = serialization.load_pem_private_key(pem_pkcs8, password=None)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, Ed25519PrivateKey):
        return None
    return ipns_name_of_key(key.public_key())
