"""Publishing: add a track, edit it, withdraw it — each ending in the next signed feed.

Every use case here leaves the catalog, the store and the feed as they were when it fails:
content is stored under its CID first (invisible until referenced), then the catalog and the
feed change together in one transaction, and unreferenced content is removed afterwards.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.catalog import CatalogWrite, FeedRecord, TrackRecord
from node.datadir import Node, init_data_dir, open_node
from node.errors import StoreError, UsageError
from node.fediverse.outbox import queue_post_changes
from node.feed import build_feed, format_timestamp, serialize
from node.identity import Identity
from node.manifest import build_manifest, content_ref
from node.offers import Offer
from node.release_sync import keep_releases_in_step
from node.renditions import embedded_terms, make_renditions, rendition_cids, retag_renditions
from node.rotation import ROTATION_PATH
from node.signing import sign_document
from node.support import Support
from node.terms import Terms

if TYPE_CHECKING:
    from node import media

# `node.media` (mutagen and the format checks, about 4 MB resident) is imported where a file is
# probed or tagged, not with this module: a running node that only serves never needs it.


async def init_node(root: Path, name: str, url: str | None = None) -> Identity:
    """Create a node's data directory and key, then sign its first feed, still empty."""
    identity = init_data_dir(root, name, url)
    async with open_node(root) as node:
        await Publisher(node).publish_feed()
    return identity


def audio_sources(names: list[str]) -> list[Path]:
    """The files named to `add`, each refused unless it is a regular file."""
    sources = [Path(name) for name in names]
    for source in sources:
        if not source.is_file():
            reason = "no such file" if not source.exists() else "not a regular file"
            raise UsageError(f"{source}: {reason}")
    return sources


@dataclass(frozen=True)
class TrackChoices:
    """What the artist chose for one track; None keeps the default or the current value."""

    title: str | None = None
    license: str | None = None
    copyright: str | None = None
    ai_training: str | None = None
    # A use and its new offer, or None to withdraw it (`stave terms offer --track`).
    offer: tuple[str, Offer | None] | None = None

    def apply(self, terms: Terms) -> Terms:
        return terms.with_choices(
            license=self.license,
            copyright=self.copyright,
            ai_training=self.ai_training,
            offer=self.offer,
        )


class Publisher:
    """The publishing use cases of one open node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        # Covers of releases withdrawn with their last track, to remove after the commit; a
        # cover a rolled-back transaction left referenced is kept (`_collect` checks).
        self._dropped_covers: list[str] = []

    def default_terms(self) -> Terms:
        terms = Terms.from_config(self.node.config)
        if not terms.copyright and self.node.config["node.name"]:
            year = datetime.now(UTC).year
            terms = terms.with_choices(copyright=f"{year} {self.node.config['node.name']}")
        return terms

    async def add(self, source: Path, choices: TrackChoices = TrackChoices()) -> dict[str, Any]:
        """Publish one audio file; returns its signed manifest. The original is never touched."""
        return (await self.add_many([source], choices))[0]

    async def add_many(
        self,
        sources: list[Path],
        choices: TrackChoices = TrackChoices(),
        on_stored: Callable[[Path], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Publish several audio files in one new feed; all of them or, on any error, none.

        Every file is probed before anything is stored, so a bad file changes nothing.
        `on_stored` is called as each file's tagged copy lands in the store.
        """
        if choices.title is not None and not choices.title.strip():
            raise UsageError("--title: must not be empty")
        if choices.title is not None and len(sources) > 1:
            raise UsageError("--title: give it with one file only")
        terms = choices.apply(self.default_terms())
        from node import media

        infos = [await asyncio.to_thread(media.probe, source) for source in sources]
        created: list[str] = []
        try:
            manifests = []
            for source, info in zip(sources, infos, strict=True):
                manifests.append(await self._prepare(source, info, choices, terms, created))
                if on_stored is not None:
                    on_stored(source)
            async with self.node.catalog.transaction() as tx:
                for manifest in manifests:
                    await tx.put_track(manifest)
                created.append((await self._next_feed(tx)).cid)
                await self._queue_pins(tx, pin=created)
        except BaseException:
            await self._collect(created)
            raise
        return manifests

    async def _prepare(
        self,
        source: Path,
        info: media.MediaInfo,
        choices: TrackChoices,
        terms: Terms,
        created: list[str],
    ) -> dict[str, Any]:
        """Store a tagged copy of `source` (and its cover) and sign its first manifest."""
        track_id = f"urn:uuid:{uuid.uuid4()}"
        # The listening renditions first: transcoding is the long part, and until it ends
        # nothing of this track is in the store but a file in tmp/.
        renditions = await make_renditions(self.node, source, track_id, terms, created)
        audio = await asyncio.to_thread(self._tagged_copy, source, track_id, terms)
        created.append(audio.cid)
        cover = None
        if info.cover is not None:
            stored_cover = await asyncio.to_thread(self.node.store.put_bytes, info.cover.data)
            created.append(stored_cover.cid)
            cover = content_ref(stored_cover.cid, info.cover.media_type, stored_cover.size)
        extra: dict[str, Any] = {
            k: v for k, v in {"album": info.album, "creator": info.artist}.items() if v
        }
        if renditions:
            extra["renditions"] = renditions
        return sign_document(
            build_manifest(
                track_id=track_id,
                revision=1,
                artist=self.node.identity.did,
                title=(choices.title or info.title or source.stem).strip(),
                published=format_timestamp(datetime.now(UTC)),
                duration_seconds=info.duration_seconds,
                audio=content_ref(audio.cid, info.media_type, audio.size),
                cover=cover,
                terms=terms,
                extra=extra,
            ),
            self.node.identity,
        )

    async def edit(self, track_id: str, choices: TrackChoices) -> dict[str, Any]:
        """Publish the next revision of a track with new metadata or terms."""
        if choices == TrackChoices():
            raise UsageError(
                "edit: nothing to change; give --title, --license, --copyright or --ai-training"
            )
        if choices.title is not None and not choices.title.strip():
            raise UsageError("--title: must not be empty")
        track = await self._live_track(track_id)
        old = track.manifest
        terms = choices.apply(Terms.from_json(old["terms"]))
        created: list[str] = []
        audio = dict(old["audio"])
        if terms != Terms.from_json(old["terms"]):
            source = self.node.store.path(track.audio_cid)
            stored = await asyncio.to_thread(self._tagged_copy, source, track.id, terms)
            created.append(stored.cid)
            audio = content_ref(stored.cid, old["audio"]["mediaType"], stored.size)
        try:
            unsigned = {k: v for k, v in old.items() if k != "proof"}
            retagged = rendition_cids(old) if terms != Terms.from_json(old["terms"]) else []
            if retagged:
                unsigned["renditions"] = await retag_renditions(
                    self.node, old["renditions"], track.id, terms, created
                )
            unsigned.update(
                revision=old["revision"] + 1,
                title=(choices.title or old["title"]).strip(),
                audio=audio,
                terms=terms.to_json(),
            )
            manifest = sign_document(unsigned, self.node.identity)
            async with self.node.catalog.transaction() as tx:
                await tx.put_track(manifest)
                created.append((await self._next_feed(tx)).cid)
                unpin = [track.audio_cid, *retagged]
                await self._queue_pins(tx, pin=created, unpin=unpin)
        except BaseException:
            await self._collect(created)
            raise
        await self._collect([track.audio_cid, *retagged])
        return manifest

    async def withdraw(self, track_id: str) -> TrackRecord:
        """Withdraw a track: a `withdrawn` entry in the next feed, its content no longer served."""
        track = await self._live_track(track_id)
        created: list[str] = []
        try:
            async with self.node.catalog.transaction() as tx:
                await tx.withdraw(track.id, format_timestamp(datetime.now(UTC)))
                created.append((await self._next_feed(tx)).cid)
                gone = [c for c in (track.audio_cid, track.cover_cid) if c]
                gone += rendition_cids(track.manifest)
                await self._queue_pins(tx, pin=created, unpin=gone)
        except BaseException:
            await self._collect(created)
            raise
        await self._collect(gone + self._take_dropped_covers())
        return await self.node.catalog.track(track.id)

    def _take_dropped_covers(self) -> list[str]:
        """The covers of releases the last transaction withdrew with their last track."""
        dropped, self._dropped_covers = self._dropped_covers, []
        return dropped

    async def publish_change(self, change: Callable[[CatalogWrite], Awaitable[None]]) -> FeedRecord:
        """In one transaction, `change` and the next signed feed (`stave renditions make`)."""
        return await self._feed_after(change)

    async def publish_feed(self) -> FeedRecord:
        """Sign the next feed document from the catalog as it is (also the first one)."""
        return await self._feed_after(None)

    async def resign_all(self) -> tuple[int, FeedRecord]:
        """Sign every current track again, as its next revision by this node's key, and the
        next feed, in one transaction: what a key rotation publishes (node/keys.py). Returns
        how many tracks were signed again and the feed."""
        signed = 0

        async def resign(tx: CatalogWrite) -> None:
            nonlocal signed
            for track in await tx.tracks():
                unsigned = {k: v for k, v in track.manifest.items() if k != "proof"}
                unsigned.update(revision=track.revision + 1, artist=self.node.identity.did)
                await tx.put_track(sign_document(unsigned, self.node.identity))
                signed += 1

        feed = await self._feed_after(resign)
        return signed, feed

    async def _feed_after(
        self, change: Callable[[CatalogWrite], Awaitable[None]] | None
    ) -> FeedRecord:
        """In one transaction, `change` and then the next feed; if anything fails, the feed
        document stored for it is removed again."""
        created: list[str] = []
        try:
            async with self.node.catalog.transaction() as tx:
                if change is not None:
                    await change(tx)
                feed = await self._next_feed(tx)
                created.append(feed.cid)
                await self._queue_pins(tx, pin=created)
        except BaseException:
            await self._collect(created)
            raise
        return feed

    async def _live_track(self, track_id: str) -> TrackRecord:
        track = await self.node.catalog.find_track(track_id)
        if track.withdrawn_at is not None:
            raise UsageError(f"track {track.id}: was withdrawn at {track.withdrawn_at}")
        return track

    async def _next_feed(self, tx: CatalogWrite) -> FeedRecord:
        latest = await tx.latest_feed()
        now = datetime.now(UTC)
        tracks = [t.manifest for t in await tx.tracks()]  # read once, for releases and feed
        dropped = await keep_releases_in_step(tx, self.node.identity, format_timestamp(now), tracks)
        if dropped:  # a release lost its last track: its cover goes once this commits
            await self._queue_pins(tx, pin=[], unpin=dropped)
            self._dropped_covers += dropped
        support = Support.from_config(self.node.config)
        document = build_feed(
            artist=self.node.identity.did,
            name=self.node.config["node.name"],
            url=self.node.base_url,
            sequence=(latest.sequence + 1) if latest else 1,
            previous=latest.cid if latest else None,
            updated=now,
            expires_days=self.node.config["feed.expires_days"],
            terms=self.default_terms(),
            tracks=tracks,
            withdrawn=await tx.withdrawn(),
            releases=[r.document for r in await tx.releases()],
            withdrawn_releases=await tx.withdrawn_releases(),
            rotation=(
                self.node.base_url + ROTATION_PATH
                if self.node.data.rotation_path.exists()
                else None
            ),
            support=support.to_json() if support else None,
        )
        signed = sign_document(document, self.node.identity, created=document["updated"])
        stored = await asyncio.to_thread(self.node.store.put_bytes, serialize(signed))
        record = FeedRecord(
            sequence=document["sequence"],
            cid=stored.cid,
            previous=document["previous"],
            updated=document["updated"],
            expires=document["expires"],
        )
        await tx.append_feed(record)
        # The fediverse posts change with the feed, in the same transaction (node/fediverse/).
        await queue_post_changes(tx, self.node)
        return record

    async def _queue_pins(
        self, tx: CatalogWrite, *, pin: list[str], unpin: list[str] | None = None
    ) -> None:
        """With the kubo backend, queue what this transaction publishes for pinning and what it
        no longer references for unpinning (node/pinning/ does both, durably)."""
        if self.node.config["ipfs.backend"] == "kubo":
            await tx.queue_pins(pin)
            await tx.queue_unpins(unpin or [])

    def _tagged_copy(self, source: Path, track_id: str, terms: Terms) -> Any:
        from node import media

        store = self.node.store
        tmp = store.tmp_path(source.suffix.lower())
        try:
            shutil.copyfile(source, tmp)
            media.write_terms(tmp, embedded_terms(self.node, terms, track_id))
            return store.adopt(tmp)
        except OSError as e:
            raise StoreError(f"{source.name}: cannot copy into the store ({e.strerror})") from e
        finally:
            tmp.unlink(missing_ok=True)

    async def _collect(self, cids: list[str]) -> None:
        """Remove content the catalog no longer references (after a failure or a change)."""
        if not cids:
            return
        referenced = await self.node.catalog.referenced_cids()
        for cid in cids:
            if cid not in referenced:
                await asyncio.to_thread(self.node.store.remove, cid)
