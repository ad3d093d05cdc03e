"""Mirroring a followed artist's content (its tracks' audio and covers, its releases' covers):
fetch it by CID, verify it, store it; remove withdrawn.

Content is fetched from the artist's own node first, then from other nodes known to mirror the
artist, and streamed into the store's writer, which checks the bytes against the CID as they
arrive and keeps nothing that does not match (PROTOCOL §3, §6).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from node.catalog import FollowedRelease, FollowedTrack, FollowRecord
from node.cid import CID
from node.errors import FederationError, InvalidCID, StoreError, VerificationError
from node.federation.context import Federation
from node.pinning import uses_kubo

log = logging.getLogger(__name__)

# Content is refused when it arrives slower than this on average (a slow-drip defence), with
# some fixed allowance for connecting and the first bytes.
MIN_BYTES_PER_SECOND = 128 * 1024
BASE_SECONDS = 30.0


@dataclass(frozen=True)
class Wanted:
    """One file to mirror: its CID, signed size (if the manifest gives one) and what it is."""

    cid: str
    size: int | None
    label: str


@dataclass
class MirrorProgress:
    """How far a mirror download is; passed to the progress callback as bytes arrive."""

    artist: str
    files_total: int
    bytes_total: int
    files_done: int = 0
    bytes_done: int = 0
    current: str | None = None


ProgressCallback = Callable[[MirrorProgress], None]


def content_of(
    tracks: Iterable[FollowedTrack], releases: Iterable[FollowedRelease] = ()
) -> list[Wanted]:
    """Every file the tracks need (audio and covers), then the releases' covers, each once."""
    wanted: dict[str, Wanted] = {}
    for track in tracks:
        audio = track.manifest.get("audio") or {}
        wanted.setdefault(
            track.audio_cid, Wanted(track.audio_cid, _size(audio), f"{track.title} (audio)")
        )
        cover = track.manifest.get("cover")
        if track.cover_cid and isinstance(cover, dict):
            wanted.setdefault(
                track.cover_cid, Wanted(track.cover_cid, _size(cover), f"{track.title} (cover)")
            )
        for rendition in track.manifest.get("renditions") or []:
            if isinstance(rendition, dict) and isinstance(rendition.get("cid"), str):
                label = f"{track.title} ({rendition.get('mediaType')} rendition)"
                wanted.setdefault(
                    rendition["cid"], Wanted(rendition["cid"], _size(rendition), label)
                )
    for release in releases:
        cover = release.document.get("cover")
        if release.cover_cid and isinstance(cover, dict):
            wanted.setdefault(
                release.cover_cid,
                Wanted(release.cover_cid, _size(cover), f"{release.title} (release cover)"),
            )
    return list(wanted.values())


def _size(ref: Any) -> int | None:
    size = ref.get("size") if isinstance(ref, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


class Mirror:
    """Fetches and removes mirrored content for one node."""

    def __init__(self, federation: Federation) -> None:
        self.federation = federation

    async def sources(self, follow: FollowRecord) -> list[str]:
        """Base URLs to fetch the artist's content from: its own node, then known mirrors."""
        mirrors = await self.federation.catalog.known_mirrors(follow.artist)
        own = self.federation.node.base_url
        return [follow.url] + [url for url in mirrors if url not in (follow.url, own)]

    def missing(
        self, tracks: Iterable[FollowedTrack], releases: Iterable[FollowedRelease] = ()
    ) -> list[Wanted]:
        store = self.federation.node.store
        return [w for w in content_of(tracks, releases) if not store.has(w.cid)]

    async def fetch(
        self,
        follow: FollowRecord,
        tracks: Sequence[FollowedTrack],
        progress: ProgressCallback | None = None,
        releases: Sequence[FollowedRelease] = (),
    ) -> list[str]:
        """Fetch every missing file of `tracks` and `releases`; returns one line per file no
        source gave."""
        wanted = self.missing(tracks, releases)
        if not wanted:
            return []
        sources = await self.sources(follow)
        state = MirrorProgress(
            artist=follow.artist,
            files_total=len(wanted),
            bytes_total=sum(w.size or 0 for w in wanted),
        )
        failures = []
        fetched: list[str] = []
        for item in wanted:
            state.current = item.label
            reasons = []
            for base in sources:
                done_before = state.bytes_done
                try:
                    fetched.append(await self._download(base, item, state, progress))
                    break
                except (FederationError, VerificationError, StoreError) as e:
                    state.bytes_done = done_before
                    reasons.append(str(e))
            else:
                failures.append(f"{item.cid} ({item.label}): " + "; ".join(reasons))
            state.files_done += 1
            if progress is not None:
                progress(state)
        if fetched and uses_kubo(self.federation.node):
            # A mirror with the Kubo backend pins what it mirrors, through the durable queue.
            async with self.federation.transaction() as tx:
                await tx.queue_pins(fetched)
        return failures

    async def _download(
        self,
        base: str,
        item: Wanted,
        state: MirrorProgress,
        progress: ProgressCallback | None,
    ) -> str:
        """Fetch one file from `base` into the store, verified against its CID; returns the CID."""
        store = self.federation.node.store
        try:
            cid = str(CID.parse(item.cid).to_v1())
        except InvalidCID as e:
            raise VerificationError(f"{item.cid}: not a CID ({e})") from e
        url = f"{base}ipfs/{cid}"
        # No bigger than this node accepts from its own artist, whatever a manifest claims.
        cap: int = self.federation.node.config["server.max_upload_bytes"]
        if item.size is not None and item.size > cap:
            raise FederationError(
                f"{cid}: {item.size} bytes, more than this node keeps (server.max_upload_bytes)"
            )
        limit = item.size if item.size is not None else cap
        seconds = BASE_SECONDS + limit / MIN_BYTES_PER_SECOND
        async with self.federation.client.stream(
            url,
            max_bytes=limit,
            total_seconds=seconds,
            headers={"Accept-Encoding": "identity"},
        ) as answer:
            if answer.status != 200:
                raise FederationError(f"{url}: HTTP {answer.status}")
            with store.writer(expected=cid, max_bytes=limit) as writer:
                async for chunk in answer.chunks():
                    await asyncio.to_thread(writer.write, chunk)
                    state.bytes_done += len(chunk)
                    if progress is not None:
                        progress(state)
                stored = await asyncio.to_thread(writer.commit)
        if item.size is not None and stored.size != item.size:
            # The bytes match the signed CID, so they are the artist's; only the size is off.
            log.warning("mirror: %s is %d bytes, its manifest says %d", cid, stored.size, limit)
        return cid

    async def remove_unreferenced(self, cids: Iterable[str]) -> list[str]:
        """Remove from the store those of `cids` nothing references any more; returns them."""
        referenced = {_normal(c) for c in await self.federation.catalog.referenced_cids()}
        removed = []
        for cid in {_normal(c) for c in cids} - referenced:
            await asyncio.to_thread(self.federation.node.store.remove, cid)
            removed.append(cid)
        if removed and uses_kubo(self.federation.node):
            async with self.federation.transaction() as tx:
                await tx.queue_unpins(removed)
        return sorted(removed)


def _normal(cid: str) -> str:
    try:
        return str(CID.parse(cid).to_v1())
    except InvalidCID:
        return cid
