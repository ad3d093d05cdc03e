"""The admin API under /api/: JSON, bearer token, the same use cases as the `stave` command.

Every route but `/api/openapi.json` needs `Authorization: Bearer <admin token>`; the token is
read at startup, read again whenever its file changes (so `stave admin-token --rotate` takes
effect at once) and compared in constant time. Wrong tokens are counted per client address and
answered 429 beyond a limit (node/web/limits.py). Errors are raised (StaveError subclasses or
aiohttp HTTP exceptions) and turned into `{"error": {"code", "message"}}` by the app's error
middleware. Uploads are streamed to the store's tmp/ a chunk at a time and always removed.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam

from node import __version__
from node.catalog import TrackRecord
from node.datadir import Node
from node.errors import IdentityError, UsageError
from node.publish import TrackChoices
from node.terms import check_copyright, check_license, check_use
from node.web.limits import limits_of
from node.web.openapi import openapi_document
from node.web.pages import track_id_from_path
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


def _unauthorized(message: str) -> web.HTTPUnauthorized:
    return web.HTTPUnauthorized(text=message, headers={"WWW-Authenticate": 'Bearer realm="stave"'})


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


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"request body: not valid JSON ({e})") from e
    if not isinstance(body, dict):
        raise UsageError("request body: must be a JSON object")
    return body


class AdminAPI:
    """The admin routes of one app; holds the admin token, re-read when its file changes."""

    def __init__(self) -> None:
        self._token: bytes | None = None
        self._token_path: Path | None = None
        self._token_stamp: tuple[int, int, int] | None = None
        # One write use case at a time: each ends in the next feed, which must be sequential.
        self._writing = asyncio.Lock()

    async def on_startup(self, app: web.Application) -> None:
        """Read the admin token once, and remove uploads a crash may have left behind."""
        node = app[NODE]
        self._token_path = node.data.token_path
        if self.admin_token() is None:
            raise IdentityError(f"{node.data.token_path}: the admin token is empty")
        await asyncio.to_thread(_remove_stale_uploads, node)

    def admin_token(self) -> bytes | None:
        """The admin token as its file holds it now (one stat per call; read when it changed).

        A file that cannot be read or is empty leaves no valid token: every credential fails.
        """
        if self._token_path is None:
            return None
        try:
            status = os.stat(self._token_path)
            stamp = (status.st_ino, status.st_mtime_ns, status.st_size)
            if stamp != self._token_stamp:
                token = self._token_path.read_text(encoding="utf-8").strip()
                self._token, self._token_stamp = token.encode("utf-8") or None, stamp
        except OSError:
            self._token, self._token_stamp = None, None
        return self._token

    def token_accepted(self, request: web.Request, candidate: str) -> bool:
        """Whether `candidate` is the admin token; a wrong one counts against the client, and
        a client over its limit of wrong ones gets 429 (HTTPTooManyRequests) whatever it sent."""
        limits = limits_of(request)
        if limits is not None:
            limits.refuse_if_throttled(request)
        token = self.admin_token()
        if token is not None and hmac.compare_digest(candidate.strip().encode("utf-8"), token):
            return True
        if limits is not None:
            limits.failed(request)
        return False

    def authorize(self, request: web.Request) -> None:
        """Return if the request carries the admin token; raise 401 (429 when throttled)."""
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _unauthorized("this route needs the admin token: Authorization: Bearer <token>")
        if not self.token_accepted(request, credentials):
            raise _unauthorized("the admin token is not valid")

    async def status(self, request: web.Request) -> web.Response:
        """`GET /api/status`: the node's identity, catalog, feed and store at a glance."""
        self.authorize(request)
        node = request.config_dict[NODE]
        tracks = await node.catalog.tracks(include_withdrawn=True)
        feed = await node.catalog.latest_feed()
        files, size = await asyncio.to_thread(_store_usage, node)
        return web.json_response(
            {
                "did": node.identity.did,
                "name": node.config["node.name"],
                "url": node.base_url,
                "version": __version__,
                "tracks": sum(1 for t in tracks if t.withdrawn_at is None),
                "withdrawn": sum(1 for t in tracks if t.withdrawn_at is not None),
                "feed": None
                if feed is None
                else {
                    "sequence": feed.sequence,
                    "cid": feed.cid,
                    "updated": feed.updated,
                    "expires": feed.expires,
                },
                "store": {"files": files, "bytes": size},
            }
        )

    async def list_tracks(self, request: web.Request) -> web.Response:
        """`GET /api/tracks`: every track, withdrawn ones included, newest first."""
        self.authorize(request)
        node = request.config_dict[NODE]
        tracks = await node.catalog.tracks(include_withdrawn=True)
        return web.json_response({"tracks": [track_json(node, t) for t in tracks]})

    async def get_track(self, request: web.Request) -> web.Response:
        """`GET /api/tracks/{id}`: one track by its full id or bare UUID."""
        self.authorize(request)
        node = request.config_dict[NODE]
        track = await node.catalog.track(track_id_from_path(request.match_info["id"]))
        return web.json_response(track_json(node, track))

    async def add_tracks(self, request: web.Request) -> web.Response:
        """`POST /api/tracks`: publish one or more uploaded audio files in one new feed.

        All of them are published or, on any error, none; the uploaded bytes are always removed.
        """
        self.authorize(request)
        node = request.config_dict[NODE]
        limit: int = node.config["server.max_upload_bytes"]
        if request.content_type != "multipart/form-data":
            raise web.HTTPUnsupportedMediaType(
                text="POST /api/tracks: send multipart/form-data with one or more file parts"
            )
        if request.content_length is not None and (
            request.content_length > limit + FORM_OVERHEAD_BYTES
        ):
            raise _too_large(limit)
        limits = limits_of(request)
        if limits is None:
            raise web.HTTPServiceUnavailable(text="the node is starting; try again shortly")
        async with limits.upload_slot():
            return await self._receive_tracks(request, node, limit)

    async def _receive_tracks(self, request: web.Request, node: Node, limit: int) -> web.Response:
        uploads: list[Path] = []
        fields: dict[str, Any] = {}
        try:
            try:
                await _read_upload_form(request, node, limit, uploads, fields)
            # aiohttp's words for a malformed body; the last two are warnings, raised only
            # where warnings are errors (otherwise the part has no name, refused below).
            except (
                ValueError,
                HttpProcessingError,
                BadContentDispositionHeader,
                BadContentDispositionParam,
            ) as e:
                reason = _shown(str(e))
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
            await asyncio.to_thread(_remove_uploads, uploads)
        records = [await node.catalog.track(m["id"]) for m in manifests]
        first = records[0].id.removeprefix("urn:uuid:")
        return web.json_response(
            {"tracks": [track_json(node, r) for r in records]},
            status=201,
            headers={"Location": f"/api/tracks/{first}"},
        )

    async def edit_track(self, request: web.Request) -> web.Response:
        """`PATCH /api/tracks/{id}`: publish the track's next revision with the given changes."""
        self.authorize(request)
        node = request.config_dict[NODE]
        track = await node.catalog.track(track_id_from_path(request.match_info["id"]))
        body = await _json_object(request)
        unknown = sorted(set(body) - set(TRACK_FIELDS))
        if unknown:
            raise UsageError(
                f"{unknown[0]}: unknown field; expected one of {', '.join(TRACK_FIELDS)}"
            )
        choices = track_choices(body, empty_is_absent=False)
        if choices == TrackChoices():
            raise UsageError(f"nothing to change; give one of {', '.join(TRACK_FIELDS)}")
        async with self._writing:
            _refuse_withdrawn(track)
            await request.config_dict[PUBLISHER].edit(track.id, choices)
        return web.json_response(track_json(node, await node.catalog.track(track.id)))

    async def withdraw_track(self, request: web.Request) -> web.Response:
        """`DELETE /api/tracks/{id}`: withdraw the track; 409 if it already is."""
        self.authorize(request)
        node = request.config_dict[NODE]
        track = await node.catalog.track(track_id_from_path(request.match_info["id"]))
        async with self._writing:
            _refuse_withdrawn(await node.catalog.track(track.id))
            record = await request.config_dict[PUBLISHER].withdraw(track.id)
        return web.json_response(track_json(node, record))


async def _read_upload_form(
    request: web.Request, node: Node, limit: int, uploads: list[Path], fields: dict[str, Any]
) -> None:
    """Spool every file part to the store's tmp/ (appending to `uploads`) and read the fields."""
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
        elif part.name in TRACK_FIELDS:
            if part.name in fields:
                raise UsageError(f"{part.name}: given more than once")
            fields[part.name] = await _read_field(part, part.name)
        else:
            raise UsageError(
                f"{_shown(str(part.name))}: unknown form field; expected file, "
                + ", ".join(TRACK_FIELDS)
            )


def _shown(text: str) -> str:
    """`text` as a message can carry it: bytes that are not UTF-8 written as escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _refuse_withdrawn(track: TrackRecord) -> None:
    if track.withdrawn_at is not None:
        raise web.HTTPConflict(text=f"track {track.id}: was withdrawn at {track.withdrawn_at}")


def _too_large(limit: int) -> web.HTTPRequestEntityTooLarge:
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
                raise _too_large(limit)
            await asyncio.to_thread(out.write, chunk)
    finally:
        await asyncio.to_thread(out.close)
    return received


def _remove_uploads(uploads: list[Path]) -> None:
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


def _store_usage(node: Node) -> tuple[int, int]:
    files = size = 0
    for cid in node.store.roots():
        files += 1
        size += node.store.size(cid)
    return files, size


async def openapi_json(request: web.Request) -> web.Response:
    """`GET /api/openapi.json`: the OpenAPI 3.1 document of this API (public)."""
    return web.json_response(openapi_document())


def setup_routes(app: web.Application) -> None:
    """Add the admin API's routes to `app`, and read the admin token when it starts."""
    api = AdminAPI()
    app.on_startup.append(api.on_startup)
    router = app.router
    router.add_get("/api/openapi.json", openapi_json, allow_head=False)
    router.add_get("/api/status", api.status, allow_head=False)
    router.add_get("/api/tracks", api.list_tracks, allow_head=False)
    router.add_post("/api/tracks", api.add_tracks)
    router.add_get("/api/tracks/{id}", api.get_track, allow_head=False)
    router.add_patch("/api/tracks/{id}", api.edit_track)
    router.add_delete("/api/tracks/{id}", api.withdraw_track)
