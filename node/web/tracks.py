"""Publishing uploaded tracks, for the admin API and the admin pages alike: the fields a client
may give, the upload streamed to the store's tmp/ a chunk at a time (and always removed), and a
track as JSON.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam

from node.catalog import TrackRecord
from node.datadir import Node
from node.errors import UsageError
from node.publish import TrackChoices
from node.terms import check_copyright, check_license, check_use
from node.web.auth import AdminToken
from node.web.limits import limits_of
from node.web.state import NODE, PUBLISHER

CHUNK_SIZE = 1024 * 1024
# Room for multipart boundaries, part headers and the text fields beside the audio bytes.
FORM_OVERHEAD_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 4096
TRACK_FIELDS = ("title", "license", "copyright", "aiTraining")
UPLOAD_DIR_SUFFIX = ".upload"
# Upload directories left behind by a crash are removed at startup once this old.
STALE_UPLOAD_SECONDS = 24 * 3600
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


def upload_name(filename: str | None) -> str:
    """A safe file name for an uploaded file: its base name, printable, suffix kept (lowercase).

    The stem stays because it is the track's title when the file has no title tag.
    """
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".")
    stem, suffix = os.path.splitext(base)
    suffix = suffix.lower() if _SUFFIX.match(suffix.lower()) else ""
    stem = stem.strip() or "upload"
    while len(stem.encode("utf-8")) > 150:
        stem = stem[:-1]
    return stem + suffix


def track_choices(fields: dict[str, Any], *, empty_is_absent: bool) -> TrackChoices:
    """TrackChoices from API fields, each checked with a message naming the field.

    With `empty_is_absent` (HTML forms send empty inputs) an empty string means "not given".
    """
    values: dict[str, str | None] = {}
    for name in TRACK_FIELDS:
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{name}: must be a string")
        if empty_is_absent and value is not None and not value.strip():
            value = None
        values[name] = value
    title = values["title"]
    if title is not None and not title.strip():
        raise UsageError("title: must not be empty")
    license_id, copyright_line, ai_training = (
        values["license"],
        values["copyright"],
        values["aiTraining"],
    )
    return TrackChoices(
        title=title.strip() if title is not None else None,
        license=check_license(license_id, "license") if license_id is not None else None,
        copyright=check_copyright(copyright_line, "copyright")
        if copyright_line is not None
        else None,
        ai_training=check_use(ai_training, "aiTraining") if ai_training is not None else None,
    )


def track_json(node: Node, track: TrackRecord) -> dict[str, Any]:
    """A track as the API shows it: its catalog state and its current signed manifest."""
    bare = track.id.removeprefix("urn:uuid:")
    return {
        "id": track.id,
        "title": track.title,
        "revision": track.revision,
        "published": track.published,
        "withdrawn": track.withdrawn_at is not None,
        "withdrawnAt": track.withdrawn_at,
        "page": f"{node.base_url}tracks/{bare}",
        "manifest": track.manifest,
    }


async def _read_field(part: BodyPartReader, name: str) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(MAX_FIELD_BYTES):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise UsageError(f"{name}: longer than {MAX_FIELD_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{name}: not UTF-8 text") from e


class TrackUploads(AdminToken):
    """The upload use case behind whatever credential `authorize` checks, one write at a time."""

    def __init__(self) -> None:
        super().__init__()
        # One write use case at a time: each ends in the next feed, which must be sequential.
        self._writing = asyncio.Lock()

    async def on_startup(self, app: web.Application) -> None:
        """Read the admin token once, and remove uploads a crash may have left behind."""
        await super().on_startup(app)
        await asyncio.to_thread(_remove_stale_uploads, app[NODE])

    async def add_tracks(self, request: web.Request) -> web.Response:
        """`POST /api/tracks`: publish one or more uploaded audio files in one new feed.

        All of them are published or, on any error, none; the uploaded bytes are always removed.
        """
        return await self.receive_upload(request, "POST /api/tracks", self._receive_tracks)

    async def receive_upload(
        self,
        request: web.Request,
        label: str,
        receive: Callable[[web.Request, Node, int], Awaitable[web.Response]],
    ) -> web.Response:
        """`receive(request, node, limit)` for an authorized multipart upload within the size
        limit, in one of the node's upload slots."""
        self.authorize(request)
        node = request.config_dict[NODE]
        limit: int = node.config["server.max_upload_bytes"]
        if request.content_type != "multipart/form-data":
            raise web.HTTPUnsupportedMediaType(
                text=f"{label}: send multipart/form-data with one or more file parts"
            )
        if request.content_length is not None and (
            request.content_length > limit + FORM_OVERHEAD_BYTES
        ):
            raise too_large(limit)
        limits = limits_of(request)
        if limits is None:
            raise web.HTTPServiceUnavailable(text="the node is starting; try again shortly")
        async with limits.upload_slot():
            return await receive(request, node, limit)

    async def _receive_tracks(self, request: web.Request, node: Node, limit: int) -> web.Response:
        uploads: list[Path] = []
        fields: dict[str, Any] = {}
        try:
            try:
                await read_upload_form(request, node, limit, uploads, fields)
            # aiohttp's words for a malformed body; the last two are warnings, raised only
            # where warnings are errors (otherwise the part has no name, refused below).
            except (
                ValueError,
                HttpProcessingError,
                BadContentDispositionHeader,
                BadContentDispositionParam,
            ) as e:
                reason = shown(str(e))
                raise UsageError(
                    f"upload: not a well-formed multipart/form-data body ({reason})"
                ) from e
            if not uploads:
                raise UsageError("file: the upload has no file part")
            choices = track_choices(fields, empty_is_absent=True)
            if choices.title is not None and len(uploads) > 1:
                raise UsageError("title: give it with one file only")
            async with self._writing:
                manifests = await request.config_dict[PUBLISHER].add_many(uploads, choices)
        finally:
            await asyncio.to_thread(remove_uploads, uploads)
        records = [await node.catalog.track(m["id"]) for m in manifests]
        first = records[0].id.removeprefix("urn:uuid:")
        return web.json_response(
            {"tracks": [track_json(node, r) for r in records]},
            status=201,
            headers={"Location": f"/api/tracks/{first}"},
        )


async def read_upload_form(
    request: web.Request,
    node: Node,
    limit: int,
    uploads: list[Path],
    fields: dict[str, Any],
    allowed: tuple[str, ...] = TRACK_FIELDS,
) -> None:
    """Spool every file part to the store's tmp/ (appending to `uploads`) and read the fields
    named in `allowed`; any other field is refused."""
    reader = await request.multipart()
    received = 0
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise UsageError("upload: nested multipart bodies are not supported")
        if part.name == "file":
            directory = node.store.tmp_path(UPLOAD_DIR_SUFFIX)
            path = directory / upload_name(part.filename)
            uploads.append(path)
            received = await _spool(part, path, received, limit)
        elif part.name in allowed:
            if part.name in fields:
                raise UsageError(f"{part.name}: given more than once")
            fields[part.name] = await _read_field(part, part.name)
        else:
            raise UsageError(
                f"{shown(str(part.name))}: unknown form field; expected file, " + ", ".join(allowed)
            )


def shown(text: str) -> str:
    """`text` as a message can carry it: bytes that are not UTF-8 written as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def too_large(limit: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=limit,
        actual_size=limit + 1,
        text=f"upload: larger than the limit of {limit} bytes (server.max_upload_bytes)",
    )


async def _spool(part: BodyPartReader, path: Path, received: int, limit: int) -> int:
    """Stream one file part to `path`; the running total of upload bytes, or 413 past `limit`."""
    await asyncio.to_thread(path.parent.mkdir)
    out: BinaryIO = await asyncio.to_thread(path.open, "xb")
    try:
        while chunk := await part.read_chunk(CHUNK_SIZE):
            received += len(chunk)
            if received > limit:
                raise too_large(limit)
            await asyncio.to_thread(out.write, chunk)
    finally:
        await asyncio.to_thread(out.close)
    return received


def remove_uploads(uploads: list[Path]) -> None:
    for path in uploads:
        shutil.rmtree(path.parent, ignore_errors=True)


def _remove_stale_uploads(node: Node) -> None:
    tmp = node.store.tmp_path().parent
    cutoff = time.time() - STALE_UPLOAD_SECONDS
    for entry in tmp.glob("*" + UPLOAD_DIR_SUFFIX):
        try:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue
