"""Releases: publish an album, an EP or a single from a folder or several files in one go, edit
one, withdraw one — each ending in the next signed feed (docs/protocol-extensions.md, Releases).

`add_release` keeps `Publisher.add_many`'s promise: every file is probed (and the cover read)
before anything is stored, the tracks, the release and the feed change in one catalog
transaction, and on any failure what was stored for them is removed again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from node.catalog import ReleaseRecord
from node.errors import UnsupportedMedia, UsageError
from node.feed import format_timestamp
from node.manifest import content_ref
from node.publish import Publisher, TrackChoices
from node.release import RELEASE_KINDS, build_release, release_track_entry
from node.renditions import rendition_cids
from node.signing import sign_document
from node.tracklist import (
    PlacedTrack,
    check_released,
    default_kind,
    place_tracks,
    read_folder,
    release_date,
    release_title,
)

if TYPE_CHECKING:
    from node import media

MAX_COVER_BYTES: Final = 20 * 1024 * 1024


@dataclass(frozen=True)
class Credit:
    role: str
    name: str


@dataclass(frozen=True)
class ReleaseChoices:
    """What the artist chose for a release; None keeps the default (from the tags) or, for an
    edit, the current value. An empty description or UPC removes it; empty credits remove them."""

    title: str | None = None
    kind: str | None = None
    released: str | None = None
    credits: tuple[Credit, ...] | None = None
    description: str | None = None
    upc: str | None = None
    # Every track of the release as (track id, disc, number): a new order (for an edit).
    places: tuple[tuple[str, int, int], ...] | None = None

    def checked(self, prefix: str = "--") -> ReleaseChoices:
        """These choices, or UsageError naming the option (`--kind`, or `kind` with the prefix
        "" for a form) that is wrong."""
        if self.title is not None and not self.title.strip():
            raise UsageError(f"{prefix}title: must not be empty")
        if self.kind is not None and self.kind not in RELEASE_KINDS:
            raise UsageError(
                f"{prefix}kind: {self.kind!r} is not one of {', '.join(RELEASE_KINDS)}"
            )
        released = check_released(self.released, prefix) if self.released is not None else None
        for credit in self.credits or ():
            if not credit.role.strip() or not credit.name.strip():
                raise UsageError(f"{prefix}credit: {credit.role}={credit.name}: give ROLE=NAME")
        if self.upc and not (self.upc.isdigit() and len(self.upc) in (12, 13)):
            raise UsageError(f"{prefix}upc: {self.upc!r} is not a UPC or EAN (12 or 13 digits)")
        return replace(self, released=released)


@dataclass(frozen=True)
class ReleaseSources:
    """The files of a release and where they came from."""

    tracks: list[Path]
    folder: Path | None = None
    cover: Path | None = None


def release_sources(names: Sequence[str], cover: str | None = None) -> ReleaseSources:
    """One folder, or several files, as a release's sources; UsageError naming what is wrong."""
    paths = [Path(name) for name in names]
    if len(paths) == 1 and paths[0].is_dir():
        contents = read_folder(paths[0])
        chosen = Path(cover) if cover else contents.cover
        found = ReleaseSources(contents.tracks, paths[0], chosen)
    else:
        for path in paths:
            if path.is_dir():
                raise UsageError(f"{path}: a folder; give one folder alone, or files")
            if not path.is_file():
                reason = "no such file" if not path.exists() else "not a regular file"
                raise UsageError(f"{path}: {reason}")
        found = ReleaseSources(paths, None, Path(cover) if cover else None)
    if found.cover is not None and not found.cover.is_file():
        raise UsageError(f"--cover: {found.cover}: no such file")
    return found


@dataclass(frozen=True)
class PublishedRelease:
    release: dict[str, Any]
    manifests: list[dict[str, Any]]


def reordered(
    entries: list[dict[str, Any]], places: Sequence[tuple[str, int, int]]
) -> list[dict[str, Any]]:
    """The release's track entries at new places: `places` gives every track once as (id,
    disc, number); they are sorted by disc and number and numbered again from 1 on each disc."""
    by_id = {entry["id"]: entry for entry in entries}
    if sorted(track for track, _, _ in places) != sorted(by_id):
        raise UsageError("order: give every track of the release once, and no other")
    for track, disc, number in places:
        if disc < 1 or number < 1:
            raise UsageError(f"order: track {track}: disc and number must be 1 or more")
    result: list[dict[str, Any]] = []
    numbers: dict[int, int] = {}
    for track, disc, _ in sorted(places, key=lambda place: (place[1], place[2])):
        numbers[disc] = numbers.get(disc, 0) + 1
        result.append({**by_id[track], "disc": disc, "number": numbers[disc]})
    return result


class ReleasePublisher(Publisher):
    """The release use cases of one open node, beside the track ones it inherits."""

    async def add_release(
        self,
        sources: ReleaseSources,
        choices: ReleaseChoices = ReleaseChoices(),
        track_choices: TrackChoices | None = None,
        on_step: Callable[[str, Path], None] | None = None,
    ) -> PublishedRelease:
        """Publish the files as one release in one new feed: all of them or, on any bad file,
        nothing (the error names the file). `on_step("checked" or "stored", file)` is called
        as each file is probed, then as its tagged copy lands in the store."""
        choices = choices.checked()
        # A single's title is its track's; on a longer release, tracks keep their own.
        single_title = choices.title if len(sources.tracks) == 1 else None
        track_choices = replace(track_choices or TrackChoices(), title=single_title)
        terms = track_choices.apply(self.default_terms())
        from node import media

        probed = []
        for source in sources.tracks:
            probed.append((source, await asyncio.to_thread(media.probe, source)))
            if on_step is not None:
                on_step("checked", source)
        placed = place_tracks(probed, sources.folder)
        title = (choices.title or release_title(placed, sources.folder)).strip()
        cover = await asyncio.to_thread(self._release_cover, sources.cover, placed)
        created: list[str] = []
        try:
            cover_ref = None
            if cover is not None:
                stored = await asyncio.to_thread(self.node.store.put_bytes, cover.data)
                created.append(stored.cid)
                cover_ref = content_ref(stored.cid, cover.media_type, stored.size)
            manifests, entries = [], []
            for track in placed:
                # A track without a picture of its own shows the release's.
                info = track.info if track.info.cover else replace(track.info, cover=cover)
                manifest = await self._prepare(track.source, info, track_choices, terms, created)
                manifests.append(manifest)
                entries.append(release_track_entry(manifest, track.disc, track.number))
                if on_step is not None:
                    on_step("stored", track.source)
            now = datetime.now(UTC)
            release = sign_document(
                build_release(
                    release_id=f"urn:uuid:{uuid.uuid4()}",
                    revision=1,
                    artist=self.node.identity.did,
                    title=title,
                    kind=choices.kind or default_kind(placed),
                    released=choices.released or release_date(placed, now.date()),
                    published=format_timestamp(now),
                    tracks=entries,
                    cover=cover_ref,
                    credits=[{"role": c.role, "name": c.name} for c in choices.credits or ()],
                    description=choices.description or None,
                    upc=choices.upc or None,
                    terms=terms if terms != self.default_terms() else None,
                ),
                self.node.identity,
            )
            async with self.node.catalog.transaction() as tx:
                for manifest in manifests:
                    await tx.put_track(manifest)
                await tx.put_release(release)
                created.append((await self._next_feed(tx)).cid)
                await self._queue_pins(tx, pin=created)
        except BaseException:
            await self._collect(created)
            raise
        return PublishedRelease(release, manifests)

    async def edit_release(self, release_id: str, choices: ReleaseChoices) -> dict[str, Any]:
        """Sign the next revision of a release with new details, in the next feed."""
        if choices == ReleaseChoices():
            raise UsageError(
                "release edit: nothing to change; give --title, --kind, --released, --credit,"
                " --description, --upc or --order"
            )
        choices = choices.checked()
        record = await self._live_release(release_id)
        unsigned = {k: v for k, v in record.document.items() if k != "proof"}
        unsigned["revision"] = record.revision + 1
        for key, value in (
            ("title", choices.title and choices.title.strip()),
            ("kind", choices.kind),
            ("released", choices.released),
        ):
            if value:
                unsigned[key] = value
        if choices.credits is not None:
            unsigned["credits"] = [{"role": c.role, "name": c.name} for c in choices.credits]
        for key, value in (("description", choices.description), ("upc", choices.upc)):
            if value is not None:
                unsigned[key] = value
        for key in ("credits", "description", "upc"):
            if key in unsigned and not unsigned[key]:
                del unsigned[key]
        if choices.places is not None:
            unsigned["tracks"] = reordered(unsigned["tracks"], choices.places)
        release = sign_document(unsigned, self.node.identity)

        async def put(tx: Any) -> None:
            await tx.put_release(release)

        await self._feed_after(put)
        return release

    async def withdraw_release(
        self, release_id: str, *, keep_tracks: bool = False
    ) -> tuple[ReleaseRecord, list[str]]:
        """Withdraw a release and, unless `keep_tracks`, its tracks (those no other current
        release lists): tombstones in the next feed, their content no longer served. Returns
        the withdrawn release and the ids of the tracks withdrawn with it."""
        record = await self._live_release(release_id)
        at = format_timestamp(datetime.now(UTC))
        unpin = [record.cover_cid] if record.cover_cid else []
        withdrawn: list[str] = []
        created: list[str] = []
        try:
            async with self.node.catalog.transaction() as tx:
                await tx.withdraw_release(record.id, at)
                for entry in [] if keep_tracks else record.document["tracks"]:
                    track = await tx.track(entry["id"])
                    if track.withdrawn_at is not None or await tx.release_of_track(track.id):
                        continue
                    await tx.withdraw(track.id, at)
                    withdrawn.append(track.id)
                    unpin += [c for c in (track.audio_cid, track.cover_cid) if c]
                    unpin += rendition_cids(track.manifest)
                created.append((await self._next_feed(tx)).cid)
                await self._queue_pins(tx, pin=created, unpin=unpin)
        except BaseException:
            await self._collect(created)
            raise
        await self._collect(unpin)
        return await self.node.catalog.release(record.id), withdrawn

    async def _live_release(self, release_id: str) -> ReleaseRecord:
        record = await self.node.catalog.find_release(release_id)
        if record.withdrawn_at is not None:
            raise UsageError(f"release {record.id}: was withdrawn at {record.withdrawn_at}")
        return record

    def _release_cover(
        self, path: Path | None, placed: Sequence[PlacedTrack]
    ) -> media.Cover | None:
        """The cover file if there is one, else the first picture embedded in a track."""
        from node import media

        if path is None:
            return next((p.info.cover for p in placed if p.info.cover), None)
        try:
            with path.open("rb") as f:
                data = f.read(MAX_COVER_BYTES + 1)
        except OSError as e:
            raise UnsupportedMedia(f"{path.name}: cannot be read ({e.strerror or e})") from e
        if len(data) > MAX_COVER_BYTES:
            raise UnsupportedMedia(f"{path.name}: a cover over 20 MiB is too large")
        media_type = media.cover_media_type(data)
        if media_type is None:
            raise UnsupportedMedia(f"{path.name}: not a JPEG, PNG, GIF or WebP picture")
        return media.Cover(data, media_type)
