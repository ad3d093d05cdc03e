"""Verifying a published audio file against the manifest its artist signed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from node import media
from node.catalog import Catalog
from node.cid import import_path
from node.errors import StaveError, VerificationError
from node.feed import FollowState, verify_feed
from node.manifest import verify_manifest

FEED_FETCH_TIMEOUT = aiohttp.ClientTimeout(total=20, connect=5, sock_read=10)
MAX_FEED_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Verdict:
    """What `stave verify` found about one file."""

    valid: bool
    reason: str
    cid: str
    track_id: str | None = None
    artist: str | None = None
    revision: int | None = None
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


async def verify_file(path: Path, catalog: Catalog | None, *, use_feed: bool = True) -> Verdict:
    """Check a file's Stave tags and CID against a signed manifest, locally or from its feed."""
    tags = await asyncio.to_thread(media.read_terms, path)
    cid = str((await asyncio.to_thread(import_path, path)).root)
    track_id, artist, feed_url = (
        tags.get("STAVE_TRACK"),
        tags.get("STAVE_ARTIST"),
        tags.get("STAVE_FEED"),
    )
    if not track_id or not artist:
        return Verdict(
            False, f"{path.name}: carries no Stave tags (STAVE_TRACK, STAVE_ARTIST)", cid
        )

    def verdict(
        valid: bool, reason: str, revision: int | None = None, source: str | None = None
    ) -> Verdict:
        return Verdict(valid, reason, cid, track_id, artist, revision, source)

    if catalog is not None:
        for manifest in await catalog.manifests_for_audio(cid):
            if manifest.get("id") == track_id and manifest.get("artist") == artist:
                try:
                    verify_manifest(manifest, artist)
                except VerificationError as e:
                    return verdict(False, f"local manifest does not verify: {e}")
                reason = (
                    f"matches revision {manifest['revision']} of {track_id}, signed by {artist}"
                )
                track = await catalog.track(track_id)
                if track.withdrawn_at is not None:
                    reason += f"; the artist withdrew the track at {track.withdrawn_at}"
                elif track.revision != manifest["revision"]:
                    reason += f"; superseded by revision {track.revision}"
                return verdict(True, reason, revision=manifest["revision"], source="catalog")
    if not use_feed or not feed_url:
        return verdict(False, "no signed manifest for this CID in the local catalog")
    try:
        feed = await _fetch_feed(feed_url, artist)
    except StaveError as e:
        return verdict(False, f"could not check against {feed_url}: {e}")
    for manifest in feed["tracks"]:
        if manifest["id"] == track_id:
            if manifest["audio"]["cid"] != cid:
                return verdict(
                    False,
                    f"CID {cid} is not the signed CID {manifest['audio']['cid']} of {track_id}"
                    f" in {feed_url} (altered, or an older revision)",
                )
            return verdict(
                True,
                f"matches revision {manifest['revision']} of {track_id} in {feed_url},"
                f" signed by {artist}",
                revision=manifest["revision"],
                source=feed_url,
            )
    if any(entry.get("id") == track_id for entry in feed.get("withdrawn", [])):
        return verdict(False, f"{track_id} was withdrawn by the artist")
    return verdict(False, f"{track_id} is not in the artist's feed at {feed_url}")


async def _fetch_feed(url: str, artist: str) -> dict[str, Any]:
    if not url.startswith(("http://", "https://")):
        raise VerificationError(f"feed URL {url!r} is not http(s)")
    try:
        async with (
            aiohttp.ClientSession(timeout=FEED_FETCH_TIMEOUT) as session,
            session.get(url, allow_redirects=True, max_redirects=3) as response,
        ):
            if response.status != 200:
                raise VerificationError(f"HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(65536):
                body += chunk
                if len(body) > MAX_FEED_BYTES:
                    raise VerificationError(f"feed is over {MAX_FEED_BYTES} bytes")
    except (aiohttp.ClientError, TimeoutError) as e:
        raise VerificationError(f"unreachable ({e.__class__.__name__}: {e})") from e
    return verify_feed(bytes(body), FollowState(artist=artist), max_bytes=MAX_FEED_BYTES)
