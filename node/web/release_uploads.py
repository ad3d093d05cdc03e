"""Publishing an uploaded release, for the admin pages: several audio files, or one zip of a
folder, with the release's fields, streamed to the store's tmp/ like every upload
(node/web/tracks.py) and published as one release (node/releases.py), all or nothing; the
uploaded and unpacked bytes are always removed.
"""

from __future__ import annotations

import asyncio
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam

from node.datadir import Node
from node.errors import UsageError
from node.releases import Credit, ReleaseChoices, ReleasePublisher, ReleaseSources, release_sources
from node.tracklist import IMAGE_SUFFIXES
from node.web.tracks import (
    TRACK_FIELDS,
    TrackUploads,
    read_upload_form,
    remove_uploads,
    shown,
    track_choices,
    track_json,
    upload_name,
)

RELEASE_FIELDS: Final = ("title", "kind", "released", "credits", "description", "upc")
UPLOAD_FIELDS: Final = RELEASE_FIELDS + tuple(f for f in TRACK_FIELDS if f != "title")
ZIP_MAGIC: Final = b"PK\x03\x04"
_COPY_CHUNK: Final = 1024 * 1024


def parse_credits(text: str) -> tuple[Credit, ...]:
    """Credits from a form's text: one a line, `role: name` (or `role = name`)."""
    credits = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        role, sep, name = line.partition(":") if ":" in line else line.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise UsageError(f"credits: line {number}: give ROLE: NAME, as producer: Ada Example")
        credits.append(Credit(role.strip(), name.strip()))
    return tuple(credits)


def release_form_choices(fields: Mapping[str, Any]) -> ReleaseChoices:
    """ReleaseChoices from a form's fields (an empty field is one not given), each checked
    with a message naming the field."""
    values: dict[str, str | None] = {}
    for name in RELEASE_FIELDS:
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{name}: must be a string")
        values[name] = value.strip() if value and value.strip() else None
    credits = values["credits"]
    return ReleaseChoices(
        title=values["title"],
        kind=values["kind"],
        released=values["released"],
        credits=parse_credits(credits) if credits is not None else None,
        description=values["description"],
        upc=values["upc"],
    ).checked(prefix="")


def is_zip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == ZIP_MAGIC


def unpack_zip(archive: Path, limit: int) -> Path:
    """Unpack `archive` beside itself into a folder named after it, streaming each member and
    keeping to `limit` bytes in all; the folder the release is made from (the zip's one
    top-level folder, if that is all it holds). Names are made safe: no absolute paths, no
    `..`, nothing hidden."""
    into = archive.parent / (Path(upload_name(archive.name)).stem or "release")
    if into == archive:  # a zip uploaded without its .zip
        into = archive.parent / "release"
    written = 0
    try:
        into.mkdir()
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist():
                parts = [p for p in PurePosixPath(info.filename.replace("\\", "/")).parts]
                parts = [p for p in parts if p not in ("/", ".", "..")]
                if info.is_dir() or not parts:
                    continue
                if any(p.startswith(".") or p == "__MACOSX" for p in parts):
                    continue
                target = into.joinpath(*(upload_name(p) for p in parts))
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(info) as source, target.open("xb") as out:
                    while chunk := source.read(_COPY_CHUNK):
                        written += len(chunk)
                        if written > limit:
                            raise UsageError(
                                f"{archive.name}: unpacked, larger than the limit of {limit}"
                                " bytes (server.max_upload_bytes)"
                            )
                        out.write(chunk)
    except FileExistsError as e:
        raise UsageError(f"{archive.name}: holds {shown(str(e.filename))} twice") from e
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError) as e:
        raise UsageError(f"{archive.name}: not a zip archive Stave can read ({e})") from e
    except OSError as e:  # a file where the zip also has a folder, a name too long, ...
        raise UsageError(f"{archive.name}: cannot be unpacked ({e.strerror or e})") from e
    entries = list(into.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else into


class ReleaseUploads(TrackUploads):
    """Uploading a release behind whatever credential `authorize` checks."""

    async def add_release(self, request: web.Request) -> web.Response:
        """Publish the upload as one release; answers 201 with the release and its tracks."""
        return await self.receive_upload(request, "upload", self._receive_release)

    async def _receive_release(self, request: web.Request, node: Node, limit: int) -> web.Response:
        uploads: list[Path] = []
        fields: dict[str, Any] = {}
        try:
            try:
                await read_upload_form(request, node, limit, uploads, fields, UPLOAD_FIELDS)
            except (
                ValueError,
                HttpProcessingError,
                BadContentDispositionHeader,
                BadContentDispositionParam,
            ) as e:
                raise UsageError(
                    f"upload: not a well-formed multipart/form-data body ({shown(str(e))})"
                ) from e
            if not uploads:
                raise UsageError("file: the upload has no file part")
            choices = release_form_choices(fields)
            terms = track_choices(
                {k: v for k, v in fields.items() if k != "title"}, empty_is_absent=True
            )
            sources = await asyncio.to_thread(_sources, uploads, limit)
            async with self._writing:
                published = await ReleasePublisher(node).add_release(sources, choices, terms)
        finally:
            await asyncio.to_thread(remove_uploads, uploads)
        release = published.release
        records = [await node.catalog.track(m["id"]) for m in published.manifests]
        return web.json_response(
            {"release": release, "tracks": [track_json(node, r) for r in records]},
            status=201,
            headers={"Location": f"/releases/{release['id'].removeprefix('urn:uuid:')}"},
        )


def _sources(uploads: list[Path], limit: int) -> ReleaseSources:
    zips = [path for path in uploads if is_zip(path)]
    if zips and len(uploads) > 1:
        raise UsageError(f"{zips[0].name}: send a zip alone, or audio files without one")
    if zips:
        return release_sources([str(unpack_zip(zips[0], limit))])
    # A picture sent with the audio is the release's cover.
    pictures = [path for path in uploads if path.suffix in IMAGE_SUFFIXES]
    tracks = [path for path in uploads if path not in pictures]
    if len(pictures) > 1:
        raise UsageError(f"{pictures[1].name}: send one picture, the cover")
    if not tracks:
        raise UsageError("file: the upload has no audio file")
    return release_sources([str(p) for p in tracks], str(pictures[0]) if pictures else None)
